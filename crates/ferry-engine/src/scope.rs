//! Which migration a capture object belongs to.
//!
//! Two migrations may capture the same source table (two targets fed from one
//! table, or a second spec written beside the first). Each needs its own
//! change log, triggers, slot and binlog position: with one shared log, replay
//! by one acknowledged the changes the other still needed, and rolling one back
//! removed the other's capture. The scope is part of every capture object's
//! name, so the two never touch each other's.
//!
//! A migration's scope is chosen once, when its state store is new, and kept
//! there. A state store from before scopes existed keeps the unscoped names
//! ([`CaptureScope::legacy`]) so that a migration in progress resumes with the
//! objects it already created.

/// The part of capture object names that says which migration owns them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CaptureScope(String);

/// Longest scope: names stay within every engine's 63-64 character limit
/// (and `bounded_name` hashes what would not).
const MAX_LEN: usize = 20;

impl CaptureScope {
    /// The unscoped names of a migration started before scopes existed.
    pub const LEGACY: CaptureScope = CaptureScope(String::new());

    pub fn legacy() -> CaptureScope {
        CaptureScope::LEGACY
    }

    /// A new scope for the migration of the spec named `stem`: the stem made
    /// a valid identifier (at most 12 characters), then 4 random hex digits,
    /// so that two specs with one name in two folders still differ.
    pub fn generate(stem: &str) -> CaptureScope {
        let mut clean: String = stem
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
            .take(12)
            .collect();
        if clean.is_empty() || clean.starts_with(|c: char| c.is_ascii_digit()) {
            clean.insert(0, 'm');
        }
        CaptureScope(format!("{clean}_{:04x}", fastrand::u16(..)))
    }

    /// A scope as stored: `[a-z0-9_]`, at most 20 characters, or empty (legacy).
    pub fn parse(stored: &str) -> Result<CaptureScope, String> {
        let valid =
            stored.len() <= MAX_LEN && stored.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if valid {
            Ok(CaptureScope(stored.to_string()))
        } else {
            Err(format!("`{stored}` is not a capture scope (at most {MAX_LEN} of a-z, 0-9 and _)"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_legacy(&self) -> bool {
        self.0.is_empty()
    }

    /// `name` with the scope inserted after `prefix` (`ferry_changes_` +
    /// `orders_1a2b_` + `users`); unchanged for the legacy scope.
    pub fn qualify(&self, prefix: &str, name: &str) -> String {
        if self.0.is_empty() {
            format!("{prefix}{name}")
        } else {
            format!("{prefix}{}_{name}", self.0)
        }
    }
}

impl std::fmt::Display for CaptureScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "(unscoped)" } else { &self.0 })
    }
}

/// A capture scope an engine holds: set once by the migration that owns the
/// engine, before it installs or reads capture.
#[derive(Debug, Default)]
pub struct ScopeCell(std::sync::RwLock<CaptureScope>);

impl ScopeCell {
    pub fn get(&self) -> CaptureScope {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the scope; returns whether it changed.
    pub fn set(&self, scope: CaptureScope) -> bool {
        let mut held = self.0.write().unwrap_or_else(|e| e.into_inner());
        let changed = *held != scope;
        *held = scope;
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_scopes_are_valid_and_differ() {
        let a = CaptureScope::generate("Orders-Migration.v2");
        assert!(a.as_str().starts_with("orders_migra_"), "{a}");
        assert_eq!(CaptureScope::parse(a.as_str()), Ok(a.clone()));
        assert!(CaptureScope::generate("9").as_str().starts_with("m9_"));
        assert!(CaptureScope::generate("").as_str().starts_with("m_"));
        let many: std::collections::HashSet<_> = (0..50).map(|_| CaptureScope::generate("a")).collect();
        assert!(many.len() > 40, "random suffixes repeat too often");
    }

    #[test]
    fn legacy_scope_keeps_the_old_names() {
        assert_eq!(CaptureScope::legacy().qualify("ferry_changes_", "users"), "ferry_changes_users");
        let s = CaptureScope::parse("orders_1a2b").unwrap();
        assert_eq!(s.qualify("ferry_changes_", "users"), "ferry_changes_orders_1a2b_users");
        assert!(CaptureScope::parse("Bad-Name").is_err());
        assert!(CaptureScope::parse(&"a".repeat(21)).is_err());
    }
}
