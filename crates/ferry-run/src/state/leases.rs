//! Chunk leases: how several workers — threads of one process, or processes
//! on several machines sharing a PostgreSQL state store — split a copy
//! without copying a chunk twice at once.
//!
//! A worker claims a chunk that is not done and not held (never claimed,
//! released, or its lease expired) and holds it for [`LEASE`], renewed by
//! each batch and by its process's heartbeat. A killed worker's lease runs
//! out and another takes the chunk over, after its checkpoint in the target;
//! a dead process on this very host is seen at once and its chunks taken
//! without waiting. Before each batch the worker checks that the chunk is
//! still its own (`begin_batch`), so a worker that lost its lease (a long
//! partition) stops at the next batch; the batch in flight is harmless, as
//! every batch is an idempotent upsert.

use super::{args, row_to_chunk, timestamp, Backend, ChunkProgress, StateStore};
use crate::error::Result;
use std::time::Duration;

/// How long a claim holds without being renewed.
pub const LEASE: Duration = Duration::from_secs(10);

impl StateStore {
    /// A lease's end: `LEASE` from now, by the store's clock.
    pub(crate) fn lease_end(&self) -> String {
        timestamp(self.clock() + chrono::Duration::from_std(LEASE).unwrap_or_default())
    }

    /// Claims the next chunk to copy (tables in their order, chunks in
    /// theirs) for `owner`; `None` when every chunk is done or held.
    pub fn claim_chunk(&self, owner: &str) -> Result<Option<(String, ChunkProgress)>> {
        self.release_dead_owners()?;
        // SKIP LOCKED: claimers on other machines pass over the row one of
        // them is taking; the conditions are checked again on the row as it
        // is once its lock is had. (The chunk is chosen in a CTE: as an `IN`
        // subquery PostgreSQL may run it more than once and claim two.)
        let skip_locked = match self.db.backend() {
            Backend::Postgres => " FOR UPDATE OF c SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "WITH next AS (
                 SELECT c.target AS next_target, c.chunk AS next_chunk
                 FROM chunks c JOIN tables t ON t.target = c.target
                 WHERE c.done = 0 AND (c.owner IS NULL OR c.lease_until IS NULL OR c.lease_until < ?3)
                 ORDER BY t.position, c.target, c.chunk LIMIT 1{skip_locked})
             UPDATE chunks SET owner = ?1, lease_until = ?2
             FROM next
             WHERE target = next_target AND chunk = next_chunk
               AND done = 0 AND (owner IS NULL OR lease_until IS NULL OR lease_until < ?3)
             RETURNING target, chunk, after, through, rows_copied, batches, last_key, pending_batch, done"
        );
        let claimed = self.db.query_opt(&sql, args![owner, self.lease_end(), timestamp(self.clock())])?;
        claimed.map(|row| Ok((row.get(0)?, row_to_chunk_at(&row)?))).transpose()
    }

    /// Renews every lease `owner` holds (its heartbeat does).
    pub fn renew_leases(&self, owner: &str) -> Result<()> {
        self.db.execute(
            "UPDATE chunks SET lease_until = ?2 WHERE owner = ?1 AND done = 0",
            args![owner, self.lease_end()],
        )?;
        Ok(())
    }

    /// Gives up every chunk `owner` holds and has not finished (it stops).
    pub fn release_leases(&self, owner: &str) -> Result<()> {
        self.db.execute(
            "UPDATE chunks SET owner = NULL, lease_until = NULL WHERE owner = ?1 AND done = 0",
            args![owner],
        )?;
        Ok(())
    }

    /// The chunks of every table not copied yet, held or not.
    pub fn chunks_left(&self) -> Result<u64> {
        self.db.query_value("SELECT count(*) FROM chunks WHERE done = 0", args![])
    }

    /// Chunks held by processes of this host that are gone are released at
    /// once: a killed run resumed here need not wait for its own leases.
    fn release_dead_owners(&self) -> Result<()> {
        let owners =
            self.db.query("SELECT DISTINCT owner FROM chunks WHERE done = 0 AND owner IS NOT NULL", args![])?;
        for row in owners {
            let owner: String = row.get(0)?;
            if !crate::heartbeat::owner_alive(&owner) {
                self.release_leases(&owner)?;
            }
        }
        Ok(())
    }
}

/// A claimed chunk's row: target first, then the columns `row_to_chunk` reads.
fn row_to_chunk_at(row: &super::Row) -> Result<ChunkProgress> {
    row_to_chunk(&super::Row(row.0[1..].to_vec()))
}
