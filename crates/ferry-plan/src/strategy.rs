//! Strategy selection: the method's decision table, in code.
//!
//! Rows are tried in order; the first that matches decides. The same table is
//! rendered into docs/strategy.md and every plan's ADR, with the reason the
//! alternatives were not chosen.

use super::facts::Shape;
use super::lint::{Finding, Severity};
use ferry_core::audit::format_duration;
use ferry_core::spec::RollbackRequirement;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Stop writes, copy, verify, switch: only for small data inside an accepted window.
    BigBang,
    /// In place: add the new shape, keep both in step, move readers and writers, drop the old.
    ExpandContract,
    /// Copy the rows, capture and replay changes, ramp reads, switch writes.
    CopyCaptureCutover,
    /// Copy + capture for very large tables: batched snapshot, then replay.
    SnapshotAndReplay,
}

impl Strategy {
    pub fn title(self) -> &'static str {
        match self {
            Strategy::BigBang => "Big bang in a maintenance window",
            Strategy::ExpandContract => "Expand/contract in place",
            Strategy::CopyCaptureCutover => "Copy + change capture + cutover (dual write)",
            Strategy::SnapshotAndReplay => "Snapshot and replay in batches",
        }
    }

    pub const ALL: [Strategy; 4] =
        [Strategy::BigBang, Strategy::ExpandContract, Strategy::CopyCaptureCutover, Strategy::SnapshotAndReplay];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Risk {
    Low,
    Medium,
    High,
    Critical,
}

impl Risk {
    fn raise(self) -> Risk {
        match self {
            Risk::Low => Risk::Medium,
            Risk::Medium => Risk::High,
            _ => Risk::Critical,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RollbackComplexity {
    Trivial,
    Easy,
    Hard,
    #[serde(rename = "Manual restore")]
    ManualRestore,
}

impl RollbackComplexity {
    pub fn title(self) -> &'static str {
        match self {
            RollbackComplexity::Trivial => "Trivial",
            RollbackComplexity::Easy => "Easy",
            RollbackComplexity::Hard => "Hard",
            RollbackComplexity::ManualRestore => "Manual restore",
        }
    }
}

/// What the decision table needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    pub shape: Shape,
    pub largest_table_rows: u64,
    pub total_rows: u64,
    /// The accepted downtime; `None` while the spec leaves it open.
    pub downtime: Option<Duration>,
    /// Backfill plus verification, as measured.
    pub estimated: Duration,
    /// A change existing readers or writers cannot live with (rename, narrowing, drop).
    pub backward_incompatible: bool,
    pub big_bang_max_rows: u64,
    pub very_large_rows: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub strategy: Strategy,
    /// The row of the decision table that chose it.
    pub rule: String,
    /// Why each other strategy was not chosen.
    pub rejected: Vec<(Strategy, String)>,
}

/// Big bang needs the window to cover the estimate with this much to spare.
pub const WINDOW_MARGIN: f64 = 1.5;

/// The decision table, in order; the first matching row decides.
pub fn decide(i: &Inputs) -> Decision {
    let window_covers =
        i.downtime.is_some_and(|w| !w.is_zero() && w.as_secs_f64() >= i.estimated.as_secs_f64() * WINDOW_MARGIN);
    let small = i.total_rows < i.big_bang_max_rows;
    // In place nothing is copied: a very large table is filled in batches by expand/contract.
    let very_large = i.largest_table_rows >= i.very_large_rows && i.shape == Shape::TableMove;
    let window_text = match i.downtime {
        None => "the accepted downtime is not known yet".to_string(),
        Some(w) if w.is_zero() => "no downtime is accepted".to_string(),
        Some(w) => format!(
            "the {} window does not cover {} × {}",
            format_duration(w),
            WINDOW_MARGIN,
            format_duration(i.estimated)
        ),
    };
    let (strategy, rule) = if very_large {
        (
            Strategy::SnapshotAndReplay,
            format!(
                "large data (a table of {} rows, at least {}): batch, never one long lock",
                i.largest_table_rows, i.very_large_rows
            ),
        )
    } else if i.shape == Shape::InPlace && i.backward_incompatible {
        (Strategy::ExpandContract, "the change is not backward compatible: redesign it as expand/contract".to_string())
    } else if small && window_covers {
        (
            Strategy::BigBang,
            format!(
                "small data ({} rows, under {}) and an accepted window ({}) longer than the estimate ({})",
                i.total_rows,
                i.big_bang_max_rows,
                format_duration(i.downtime.unwrap_or_default()),
                format_duration(i.estimated)
            ),
        )
    } else if i.shape == Shape::InPlace {
        (
            Strategy::ExpandContract,
            "an in-place change: apply it backward compatibly first (expand), then move readers".to_string(),
        )
    } else {
        (
            Strategy::CopyCaptureCutover,
            "a table move without an accepted window: copy, capture changes, cut over by flags".to_string(),
        )
    };
    let rejected = Strategy::ALL
        .into_iter()
        .filter(|s| *s != strategy)
        .map(|s| {
            let why = match s {
                Strategy::BigBang if very_large => "the data is too large for any window".to_string(),
                Strategy::BigBang if !small => {
                    format!("{} rows is not small data (big bang only under {})", i.total_rows, i.big_bang_max_rows)
                }
                Strategy::BigBang if i.shape == Shape::InPlace && i.backward_incompatible => {
                    "a change that is not backward compatible breaks readers at once".to_string()
                }
                Strategy::BigBang => window_text.clone(),
                Strategy::ExpandContract if i.shape == Shape::TableMove => {
                    "the data moves to another table or engine; there is no in-place change to expand".to_string()
                }
                Strategy::ExpandContract => "a big bang fits the window and is simpler".to_string(),
                Strategy::CopyCaptureCutover if i.shape == Shape::InPlace => {
                    "nothing moves: the table changes where it is".to_string()
                }
                Strategy::CopyCaptureCutover if very_large => {
                    "a single snapshot of this size outlives any safe transaction; it must be batched and replayed"
                        .to_string()
                }
                Strategy::CopyCaptureCutover => {
                    "a big bang inside the accepted window is simpler and as safe".to_string()
                }
                Strategy::SnapshotAndReplay if i.shape == Shape::InPlace => {
                    "nothing moves: the table changes where it is, in batches".to_string()
                }
                Strategy::SnapshotAndReplay => {
                    format!("no table reaches {} rows; plain batched copy with capture is enough", i.very_large_rows)
                }
            };
            (s, why)
        })
        .collect();
    Decision { strategy, rule, rejected }
}

/// Risk from the strategy, the findings and the kind of move.
pub fn risk(strategy: Strategy, findings: &[Finding], cross_engine: bool) -> Risk {
    let mut risk = match strategy {
        Strategy::BigBang => Risk::Low,
        Strategy::ExpandContract | Strategy::CopyCaptureCutover => Risk::Medium,
        Strategy::SnapshotAndReplay => Risk::High,
    };
    let errors = findings.iter().filter(|f| f.severity == Severity::Error).count();
    let warnings = findings.iter().filter(|f| f.severity == Severity::Warning).count();
    if cross_engine {
        risk = risk.raise();
    }
    if warnings >= 3 {
        risk = risk.raise();
    }
    if errors > 0 {
        risk = risk.max(Risk::High);
        if strategy == Strategy::SnapshotAndReplay || errors > 1 {
            risk = risk.raise();
        }
    }
    risk
}

pub fn rollback_complexity(
    strategy: Strategy,
    shape: Shape,
    requirement: Option<RollbackRequirement>,
) -> RollbackComplexity {
    match (strategy, shape) {
        // The source is untouched: point the application back at it.
        (Strategy::BigBang, Shape::TableMove) => RollbackComplexity::Easy,
        (Strategy::BigBang, Shape::InPlace) => RollbackComplexity::ManualRestore,
        (Strategy::ExpandContract, _) => RollbackComplexity::Easy,
        (Strategy::CopyCaptureCutover, _) if requirement == Some(RollbackRequirement::LossAcceptedAfterSwitch) => {
            RollbackComplexity::Trivial
        }
        (Strategy::CopyCaptureCutover, _) => RollbackComplexity::Easy,
        (Strategy::SnapshotAndReplay, _) => RollbackComplexity::Hard,
    }
}

/// Expected downtime, in words.
pub fn expected_downtime(strategy: Strategy, estimated: Duration, window: Option<Duration>) -> String {
    match strategy {
        Strategy::BigBang => format!(
            "writes stop for about {} (inside the accepted {} window)",
            format_duration(estimated),
            window.map(format_duration).unwrap_or_else(|| "?".into())
        ),
        _ => "none: the application keeps reading and writing throughout".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs {
        Inputs {
            shape: Shape::TableMove,
            largest_table_rows: 1_000,
            total_rows: 1_000,
            downtime: Some(Duration::from_secs(900)),
            estimated: Duration::from_secs(10),
            backward_incompatible: false,
            big_bang_max_rows: 1_000_000,
            very_large_rows: 100_000_000,
        }
    }

    #[test]
    fn big_bang_only_for_small_data_inside_the_window() {
        assert_eq!(decide(&inputs()).strategy, Strategy::BigBang);
        let at_limit = Inputs { total_rows: 1_000_000, largest_table_rows: 1_000_000, ..inputs() };
        assert_eq!(decide(&at_limit).strategy, Strategy::CopyCaptureCutover, "the limit itself is not small");
        let under = Inputs { total_rows: 999_999, largest_table_rows: 999_999, ..inputs() };
        assert_eq!(decide(&under).strategy, Strategy::BigBang);
    }

    #[test]
    fn the_window_must_cover_the_estimate_with_margin() {
        let exactly = Inputs { downtime: Some(Duration::from_secs(15)), ..inputs() };
        assert_eq!(decide(&exactly).strategy, Strategy::BigBang, "15s covers 1.5 × 10s");
        let short = Inputs { downtime: Some(Duration::from_millis(14_999)), ..inputs() };
        assert_eq!(decide(&short).strategy, Strategy::CopyCaptureCutover);
        let zero = Inputs { downtime: Some(Duration::ZERO), ..inputs() };
        assert_eq!(decide(&zero).strategy, Strategy::CopyCaptureCutover);
        let unknown = Inputs { downtime: None, ..inputs() };
        assert_eq!(decide(&unknown).strategy, Strategy::CopyCaptureCutover);
    }

    #[test]
    fn very_large_tables_are_snapshot_and_replay() {
        let at = Inputs { largest_table_rows: 100_000_000, total_rows: 100_000_000, ..inputs() };
        assert_eq!(decide(&at).strategy, Strategy::SnapshotAndReplay);
        let under = Inputs {
            largest_table_rows: 99_999_999,
            total_rows: 99_999_999,
            downtime: Some(Duration::ZERO),
            ..inputs()
        };
        assert_eq!(decide(&under).strategy, Strategy::CopyCaptureCutover);
    }

    #[test]
    fn in_place_changes_expand_and_contract() {
        let in_place = Inputs { shape: Shape::InPlace, downtime: Some(Duration::ZERO), ..inputs() };
        assert_eq!(decide(&in_place).strategy, Strategy::ExpandContract);
        let small_in_window = Inputs { shape: Shape::InPlace, ..inputs() };
        assert_eq!(decide(&small_in_window).strategy, Strategy::BigBang, "compatible, small and in a window");
        let incompatible = Inputs { shape: Shape::InPlace, backward_incompatible: true, ..inputs() };
        let d = decide(&incompatible);
        assert_eq!(d.strategy, Strategy::ExpandContract, "an incompatible change forces expand/contract");
        assert!(d.rejected.iter().any(|(s, why)| *s == Strategy::BigBang && why.contains("backward compatible")));
    }

    /// The decision table at each of its boundaries, with the row that
    /// decided and why each alternative lost, as the ADR prints them.
    #[test]
    fn the_decision_table_at_its_boundaries() {
        let secs = Duration::from_secs;
        let cases: Vec<(&str, Inputs)> = vec![
            ("small, a window of 1.5 x the estimate", Inputs { downtime: Some(secs(15)), ..inputs() }),
            ("small, a window just short of it", Inputs { downtime: Some(Duration::from_millis(14_999)), ..inputs() }),
            ("small, no downtime accepted", Inputs { downtime: Some(Duration::ZERO), ..inputs() }),
            ("small, downtime not said", Inputs { downtime: None, ..inputs() }),
            ("one row under big-bang size", Inputs { total_rows: 999_999, largest_table_rows: 999_999, ..inputs() }),
            ("big-bang size itself", Inputs { total_rows: 1_000_000, largest_table_rows: 1_000_000, ..inputs() }),
            (
                "one row under very large, no window",
                Inputs { total_rows: 99_999_999, largest_table_rows: 99_999_999, downtime: None, ..inputs() },
            ),
            ("very large", Inputs { total_rows: 100_000_000, largest_table_rows: 100_000_000, ..inputs() }),
            ("in place, compatible, small, in a window", Inputs { shape: Shape::InPlace, ..inputs() }),
            (
                "in place, compatible, no window",
                Inputs { shape: Shape::InPlace, downtime: Some(Duration::ZERO), ..inputs() },
            ),
            (
                "in place, incompatible, small, in a window",
                Inputs { shape: Shape::InPlace, backward_incompatible: true, ..inputs() },
            ),
            (
                "in place, very large",
                Inputs {
                    shape: Shape::InPlace,
                    total_rows: 100_000_000,
                    largest_table_rows: 100_000_000,
                    downtime: None,
                    ..inputs()
                },
            ),
        ];
        let mut shown = String::new();
        for (name, i) in cases {
            let d = decide(&i);
            shown.push_str(&format!("{name}: {:?}\n  because {}\n", d.strategy, d.rule));
            for (s, why) in &d.rejected {
                shown.push_str(&format!("  not {s:?}: {why}\n"));
            }
        }
        insta::assert_snapshot!(shown);
    }

    #[test]
    fn every_alternative_says_why_not() {
        let d = decide(&inputs());
        assert_eq!(d.rejected.len(), 3);
        assert!(d.rejected.iter().all(|(_, why)| !why.is_empty()));
    }

    #[test]
    fn risk_rises_with_findings_and_engines() {
        assert_eq!(risk(Strategy::BigBang, &[], false), Risk::Low);
        assert_eq!(risk(Strategy::CopyCaptureCutover, &[], true), Risk::High);
        let error = Finding {
            code: "F007".into(),
            rule: "table-without-key".into(),
            severity: Severity::Error,
            table: "t".into(),
            column: None,
            message: String::new(),
            help: String::new(),
            docs: String::new(),
        };
        assert_eq!(risk(Strategy::BigBang, std::slice::from_ref(&error), false), Risk::High);
        assert_eq!(risk(Strategy::BigBang, &[error.clone(), error], false), Risk::Critical);
    }
}
