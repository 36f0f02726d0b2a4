//! What an engine can do: [`Capabilities`] (defined in ferry-core, where the
//! plan reads them as facts) and the conditions only some engines need.

pub use ferry_core::Capabilities;

/// Conditions that find dates only MySQL/MariaDB store (`0000-00-00`,
/// `2024-00-10`) in one column: [`crate::Engine::zero_date_conditions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZeroDateConditions {
    /// A zero month or day.
    pub any_zero: String,
    /// Year, month and day all zero.
    pub all_zero: String,
}
