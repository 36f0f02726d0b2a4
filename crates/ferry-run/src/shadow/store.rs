//! Shadow reads in the state store: counts per report (Ferry's own, once a
//! second, and each `POST /api/v1/shadow` of the application), and every
//! confirmed mismatch with its key and differing columns.

use crate::error::Result;
use crate::state::args;
use crate::state::{now, timestamp, StateStore};
pub use ferry_core::status::ShadowMismatch;
use serde::{Deserialize, Serialize};

/// Who compared: Ferry's own shadow reads, or the application's dual reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShadowOrigin {
    Ferry,
    Application,
}

impl ShadowOrigin {
    pub fn name(self) -> &'static str {
        match self {
            ShadowOrigin::Ferry => "ferry",
            ShadowOrigin::Application => "application",
        }
    }
}

/// Counts of one report, or summed over many.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowTally {
    pub compared: u64,
    /// Reads that still differed once replay had passed them.
    pub mismatched: u64,
    /// Reads that differed at first and were equal once replay passed them (lag, not a mismatch).
    pub rechecked: u64,
    /// The application's requests and errors, when it reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<u64>,
}

impl ShadowTally {
    fn add(&mut self, other: &ShadowTally) {
        self.compared += other.compared;
        self.mismatched += other.mismatched;
        self.rechecked += other.rechecked;
        let sum = |a: Option<u64>, b: Option<u64>| {
            if a.is_none() && b.is_none() {
                None
            } else {
                Some(a.unwrap_or(0) + b.unwrap_or(0))
            }
        };
        self.requests = sum(self.requests, other.requests);
        self.errors = sum(self.errors, other.errors);
    }

    pub fn is_empty(&self) -> bool {
        *self == ShadowTally::default()
    }
}

/// Ferry's and the application's counts, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ShadowTotals {
    pub ferry: ShadowTally,
    pub application: ShadowTally,
}

impl ShadowTotals {
    pub fn compared(&self) -> u64 {
        self.ferry.compared + self.application.compared
    }

    pub fn mismatched(&self) -> u64 {
        self.ferry.mismatched + self.application.mismatched
    }

    /// Mismatches in percent of the reads compared; `None` before any.
    pub fn mismatch_percent(&self) -> Option<f64> {
        let compared = self.compared();
        (compared > 0).then(|| self.mismatched() as f64 * 100.0 / compared as f64)
    }

    /// The application's errors in percent of its requests; `None` when it reported none.
    pub fn error_percent(&self) -> Option<f64> {
        let requests = self.application.requests.filter(|&r| r > 0)?;
        Some(self.application.errors.unwrap_or(0) as f64 * 100.0 / requests as f64)
    }
}

impl StateStore {
    pub fn record_shadow(&self, origin: ShadowOrigin, tally: &ShadowTally) -> Result<()> {
        if tally.is_empty() {
            return Ok(());
        }
        self.db().execute(
            "INSERT INTO shadow_reports (at, origin, compared, mismatched, rechecked, requests, errors)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            args![
                timestamp(now()),
                origin.name(),
                tally.compared as i64,
                tally.mismatched as i64,
                tally.rechecked as i64,
                tally.requests.map(|n| n as i64),
                tally.errors.map(|n| n as i64)
            ],
        )?;
        Ok(())
    }

    /// The counts reported at or after `since` (every report when `None`).
    pub fn shadow_totals(&self, since: Option<&str>) -> Result<ShadowTotals> {
        let mut totals = ShadowTotals::default();
        let rows = self.db().query(
            "SELECT origin, CAST(sum(compared) AS BIGINT), CAST(sum(mismatched) AS BIGINT),
                    CAST(sum(rechecked) AS BIGINT), CAST(sum(requests) AS BIGINT), CAST(sum(errors) AS BIGINT)
             FROM shadow_reports WHERE at >= ?1 GROUP BY origin",
            args![since.unwrap_or("")],
        )?;
        for r in &rows {
            let count = |i: usize| r.get::<Option<i64>>(i).map(|n| n.map(|n| n.max(0) as u64));
            let (origin, tally) = (
                r.get::<String>(0)?,
                ShadowTally {
                    compared: count(1)?.unwrap_or(0),
                    mismatched: count(2)?.unwrap_or(0),
                    rechecked: count(3)?.unwrap_or(0),
                    requests: count(4)?,
                    errors: count(5)?,
                },
            );
            let slot =
                if origin == ShadowOrigin::Application.name() { &mut totals.application } else { &mut totals.ferry };
            slot.add(&tally);
        }
        Ok(totals)
    }

    pub fn record_shadow_mismatch(&self, m: &ShadowMismatch) -> Result<()> {
        self.db().execute(
            "INSERT INTO shadow_mismatches (at, origin, subject, key, columns, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            args![m.at, m.origin, m.subject, m.key, m.columns.join(", "), m.detail],
        )?;
        Ok(())
    }

    /// The newest `limit` mismatches recorded at or after `since`, newest first.
    pub fn shadow_mismatches(&self, since: Option<&str>, limit: usize) -> Result<Vec<ShadowMismatch>> {
        let rows = self.db().query(
            "SELECT at, origin, subject, key, columns, detail FROM shadow_mismatches
             WHERE at >= ?1 ORDER BY id DESC LIMIT ?2",
            args![since.unwrap_or(""), limit],
        )?;
        rows.iter()
            .map(|r| {
                let columns: String = r.get(4)?;
                Ok(ShadowMismatch {
                    at: r.get(0)?,
                    origin: r.get(1)?,
                    subject: r.get(2)?,
                    key: r.get(3)?,
                    columns: columns.split(", ").filter(|c| !c.is_empty()).map(str::to_string).collect(),
                    detail: r.get(5)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_sum_by_origin_and_rates_follow() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("state.db")).unwrap();
        assert_eq!(store.shadow_totals(None).unwrap().mismatch_percent(), None);
        let ferry = ShadowTally { compared: 9_000, mismatched: 0, rechecked: 3, ..Default::default() };
        store.record_shadow(ShadowOrigin::Ferry, &ferry).unwrap();
        let app = ShadowTally {
            compared: 1_000,
            mismatched: 1,
            requests: Some(2_000),
            errors: Some(4),
            ..Default::default()
        };
        store.record_shadow(ShadowOrigin::Application, &app).unwrap();
        let totals = store.shadow_totals(None).unwrap();
        assert_eq!((totals.compared(), totals.mismatched(), totals.ferry.rechecked), (10_000, 1, 3));
        assert_eq!(totals.mismatch_percent(), Some(0.01));
        assert_eq!(totals.error_percent(), Some(0.2));
        assert_eq!(store.shadow_totals(Some("9999")).unwrap(), ShadowTotals::default());
        let m = ShadowMismatch {
            at: timestamp(now()),
            origin: "ferry".into(),
            subject: "users".into(),
            key: "id=7".into(),
            columns: vec!["email".into(), "name".into()],
            detail: None,
        };
        store.record_shadow_mismatch(&m).unwrap();
        assert_eq!(store.shadow_mismatches(None, 10).unwrap(), vec![m]);
    }
}
