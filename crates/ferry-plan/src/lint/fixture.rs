//! The rules' cases: each rule flags the smallest change to a clean
//! fixture that it must flag, and passes the nearest ones it must not.

use super::{lint, Finding};
pub use crate::fixture::*;
use serde_json::{json, Value};
use std::fmt::Write;

/// One case of a rule: the rule must flag the change (compared with the
/// unchanged fixture), or must not flag the changed fixture at all.
pub enum Case {
    Flags(&'static str, fn() -> Value, fn(&mut Value)),
    Passes(&'static str, fn() -> Value, fn(&mut Value)),
}

/// Runs a rule's cases and says what each raised, for its snapshot: the
/// rule's findings, and the codes of any other rule the change set off.
pub fn run(code: &str, cases: &[Case]) -> String {
    let mut shown = String::new();
    for case in cases {
        let (name, base, change, flags) = match case {
            Case::Flags(name, base, change) => (name, base, change, true),
            Case::Passes(name, base, change) => (name, base, change, false),
        };
        let mut changed = base();
        change(&mut changed);
        said(code, name, flags, base(), changed, &mut shown);
    }
    shown
}

/// One case: asserts that `code` flags `changed` (beyond `base`), or does
/// not flag it at all, and says what it raised.
fn said(code: &str, name: &str, flags: bool, base: Value, changed: Value, shown: &mut String) {
    let before = lint(&assessment(base));
    let after = lint(&assessment(changed));
    let own: Vec<&Finding> = after.iter().filter(|f| f.code == code).collect();
    if !flags {
        assert!(own.is_empty(), "{code} must not flag {name}: {own:#?}");
        let _ = writeln!(shown, "passes: {name}");
        return;
    }
    let new: Vec<&Finding> = own.iter().copied().filter(|f| !before.contains(f)).collect();
    assert!(!new.is_empty(), "{code} must flag {name}: {after:#?}");
    let _ = writeln!(shown, "flags: {name}");
    for f in new {
        let column = f.column.as_deref().unwrap_or("-");
        let _ = writeln!(shown, "  {:?} {column}: {}", f.severity, f.message);
    }
    let mut others: Vec<&str> =
        after.iter().filter(|f| f.code != code && !before.contains(f)).map(|f| f.code.as_str()).collect();
    others.dedup();
    if !others.is_empty() {
        let _ = writeln!(shown, "  also: {}", others.join(", "));
    }
}

/// The cases of a rule over one class of schema problem (F010, F011, F015,
/// F016, F017): an item of `kind` (`label` in words) the target cannot
/// keep is flagged, as a warning or as information; kept, or with a
/// problem of another class, it is not.
pub fn schema_problem_cases(code: &str, kind: &str, label: &str, class: &str) -> String {
    let with = |item: Value| {
        let mut a = clean();
        table(&mut a)["schema"] = json!([item]);
        a
    };
    let mut in_part = problem(kind, class);
    in_part["problem"]["info"] = json!(true);
    let mut kept = problem(kind, class);
    kept["problem"] = json!(null);
    let other = problem(kind, if class == "index" { "expression" } else { "index" });
    let mut shown = String::new();
    said(code, &format!("{label} it cannot translate"), true, clean(), with(problem(kind, class)), &mut shown);
    said(code, "one it can keep only in part (information)", true, clean(), with(in_part), &mut shown);
    said(code, &format!("{label} translated"), false, clean(), with(kept), &mut shown);
    said(code, "another class of problem", false, clean(), with(other), &mut shown);
    shown
}

/// A table move always says, as information, that the old table goes at
/// contract; nothing else flags the clean table, on any pair of engines or
/// in place.
#[test]
fn the_clean_table_raises_only_the_contract_note() {
    for (source, target) in [("postgres", "postgres"), ("mysql", "postgres"), ("sqlite", "mysql")] {
        let said: Vec<String> = lint(&assessment(between(source, target)))
            .iter()
            .map(|f| format!("{} {}", f.code, f.severity.label()))
            .collect();
        assert_eq!(said, vec!["F004 info"], "{source} -> {target}");
    }
    for engine in ["sqlite", "postgres", "mysql"] {
        assert_eq!(lint(&assessment(in_place(engine))), vec![], "in place on {engine}");
    }
}
