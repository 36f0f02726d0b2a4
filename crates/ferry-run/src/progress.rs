//! How the runner reports progress; the CLI draws bars or prints lines.

use ferry_core::Phase;

pub trait Progress: Send + Sync {
    fn phase_started(&self, _phase: Phase) {}
    /// A unit of work (copying or verifying one table) starts; `total` may be an estimate.
    fn task_started(&self, _task: &str, _total: Option<u64>, _done: u64) {}
    fn advanced(&self, _task: &str, _rows: u64) {}
    fn task_finished(&self, _task: &str) {}
    /// Something the operator should read (resumed a table, skipped a key...).
    fn note(&self, _message: &str) {}
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {}
