//! One suite of state-store behaviour, run against both backends: a SQLite
//! file and a schema in a PostgreSQL database (`FERRY_TEST_PG`, default
//! `postgres://postgres@127.0.0.1:5432`; each test makes and drops its own
//! database).

use super::*;
use crate::state::db::args;

/// A place for a store, removed after the test.
struct Place {
    location: StateLocation,
    _dir: tempfile::TempDir,
    database: Option<String>,
}

fn server() -> String {
    std::env::var("FERRY_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

fn admin() -> Db {
    let url = format!("{}/postgres", server());
    Db::postgres(super::postgres::PgSession::connect(&url, &url).expect("the test PostgreSQL server (FERRY_TEST_PG)"))
}

fn sqlite() -> Place {
    let dir = tempfile::tempdir().unwrap();
    Place { location: StateLocation::File(dir.path().join("m/state.db")), _dir: dir, database: None }
}

fn postgres() -> Place {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("ferry_state_{:016x}", fastrand::u64(..));
    admin().batch(&format!("CREATE DATABASE {database}")).unwrap();
    let location = StateLocation::Postgres {
        url: format!("{}/{database}", server()),
        schema: "ferry_m".into(),
        local: dir.path().join("m"),
    };
    Place { location, _dir: dir, database: Some(database) }
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(database) = &self.database {
            let _ = admin().batch(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"));
        }
    }
}

impl Place {
    fn open(&self) -> StateStore {
        StateStore::open_at(&self.location).unwrap()
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $case() { super::$case(&super::sqlite()) } )*
        }
        mod postgres {
            $( #[test] fn $case() { super::$case(&super::postgres()) } )*
        }
    };
}

conformance!(
    a_new_store_exists_once_opened_and_reopens_as_it_was,
    checkpoints_follow_batches_and_the_target,
    the_audit_chain_holds_with_two_writers,
    chunks_are_claimed_once_and_taken_over_when_a_lease_runs_out,
    claimers_at_once_never_share_a_chunk,
    a_worker_that_lost_its_lease_writes_no_further_batch,
    one_process_at_a_time_holds_the_lock,
    changed_keys_are_marked_and_cleared,
    verifications_and_quarantine_are_kept,
    workers_are_listed_with_the_chunks_they_hold,
);

fn a_new_store_exists_once_opened_and_reopens_as_it_was(place: &Place) {
    assert!(!place.location.exists().unwrap());
    assert!(StateStore::open_existing(&place.location).unwrap().is_none());
    let store = place.open();
    assert!(place.location.exists().unwrap());
    let scope = store.capture_scope("orders").unwrap();
    let other = place.open();
    assert_eq!(other.capture_scope("orders").unwrap(), scope, "the first to choose wins");
    store.set_meta("k", "v").unwrap();
    store.set_meta("k", "w").unwrap();
    store.start_phase(Phase::Expand).unwrap();
    store.complete_phase(Phase::Expand).unwrap();
    store.set_lifecycle(State::at(Stage::Backfilling)).unwrap();
    drop(store);
    let again = StateStore::open_existing(&place.location).unwrap().expect("found");
    assert_eq!(again.capture_scope("other").unwrap(), scope, "kept, not chosen again");
    assert_eq!(again.meta("k").unwrap().as_deref(), Some("w"));
    assert_eq!(again.phase_state(Phase::Expand).unwrap(), PhaseState::Completed);
    assert!(again.phase_started_at(Phase::Expand).unwrap().is_some());
    assert_eq!(again.lifecycle().unwrap(), State::at(Stage::Backfilling));
    assert_eq!(again.phases().unwrap()[0].name, Phase::Expand.name());
}

fn checkpoints_follow_batches_and_the_target(place: &Place) {
    let s = place.open();
    s.register_table("users", "users", "fp", 0).unwrap();
    s.set_rows_total("users", Some(1000), true).unwrap();
    let half = KeyRange { after: None, through: Some(vec![Value::Int(500)]) };
    let rest = KeyRange { after: Some(vec![Value::Int(500)]), through: None };
    s.plan_chunks("users", &[half, rest]).unwrap();
    assert!(s.begin_batch("users", 0, "me").unwrap());
    let written = WrittenBatch { last_key: &[Value::Int(42)], display: "id=42", rows: 100, redone: false };
    s.complete_batch("users", 0, &written).unwrap();
    assert!(s.begin_batch("users", 1, "me").unwrap());
    drop(s);
    let s = place.open();
    let t = s.table("users").unwrap().unwrap();
    assert_eq!((t.rows_copied, t.rows_total, t.rows_total_exact), (100, Some(1000), true));
    assert_eq!(t.last_key, Some(vec![Value::Int(42)]));
    assert!(t.pending_batch);
    let chunks = s.chunks("users").unwrap();
    assert_eq!((chunks[0].rows_copied, chunks[0].pending_batch), (100, false));
    assert_eq!(chunks[1].range.after, Some(vec![Value::Int(500)]));
    assert!(chunks[1].pending_batch);
    // The target's checkpoint of chunk 1 is taken; the table's totals are the chunks' sums.
    let committed = ChunkProgress {
        rows_copied: 30,
        batches: 1,
        last_key: Some(vec![Value::Int(530)]),
        pending_batch: false,
        ..chunks[1].clone()
    };
    s.follow_target("users", 1, &committed).unwrap();
    let t = s.table("users").unwrap().unwrap();
    assert_eq!((t.rows_copied, t.batches, t.pending_batch), (130, 2, false));
    s.finish_chunk("users", 0).unwrap();
    s.finish_chunk("users", 1).unwrap();
    assert_eq!(s.chunks_left().unwrap(), 0);
    s.complete_backfill("users").unwrap();
    assert!(s.table_stage("users").unwrap().copied());
    let status = s.table_statuses().unwrap();
    assert_eq!((status[0].chunks, status[0].chunks_done, status[0].backfill_complete), (2, 2, true));
    s.reset_table("users").unwrap();
    assert!(s.table("users").unwrap().is_none() && s.chunks("users").unwrap().is_empty());
}

fn the_audit_chain_holds_with_two_writers(place: &Place) {
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let store = place.open();
                for _ in 0..20 {
                    store.audit(&AuditEvent::PhaseStarted { phase: Phase::Backfill, operator: String::new() }).unwrap();
                }
            });
        }
    });
    let (first, second) = (place.open(), place.open());
    assert_eq!(first.verify_audit_chain().unwrap(), 40);
    // Each process mirrors the lines it wrote into this machine's audit.log.
    let log = std::fs::read_to_string(place.location.local_dir().join("audit.log")).unwrap();
    assert_eq!(log.lines().count(), 40);
    assert!(log.lines().next().unwrap().ends_with("phase-started: phase=2 \"backfill\""), "{log}");
    assert_eq!(second.audit_tail(5).unwrap().len(), 5);
    assert_eq!(first.audit_since(38, 10).unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), [39, 40]);
    assert_eq!(first.audit_events(&["phase-started"]).unwrap().len(), 40);
    // Changing an entry breaks the chain.
    first.db.execute("UPDATE audit SET data = replace(data, 'backfill', 'b') WHERE seq = 7", args![]).unwrap();
    assert!(first.verify_audit_chain().is_err());
}

fn two_chunks(s: &StateStore) {
    s.register_table("a", "a", "fp", 0).unwrap();
    s.register_table("b", "b", "fp", 1).unwrap();
    let cut = |at: i64| {
        [
            KeyRange { after: None, through: Some(vec![Value::Int(at)]) },
            KeyRange { after: Some(vec![Value::Int(at)]), through: None },
        ]
    };
    s.plan_chunks("b", &cut(5)).unwrap();
    s.plan_chunks("a", &cut(7)).unwrap();
}

fn chunks_are_claimed_once_and_taken_over_when_a_lease_runs_out(place: &Place) {
    let (one, two) = (place.open(), place.open());
    two_chunks(&one);
    // Tables in their order, chunks in theirs; a held chunk is not claimed again.
    let claimed = |s: &StateStore, owner: &str| s.claim_chunk(owner).unwrap().map(|(t, c)| (t, c.chunk));
    assert_eq!(claimed(&one, "here/1"), Some(("a".into(), 0)));
    assert_eq!(claimed(&two, "there/2"), Some(("a".into(), 1)));
    assert_eq!(claimed(&one, "here/1"), Some(("b".into(), 0)));
    assert_eq!(claimed(&two, "there/2"), Some(("b".into(), 1)));
    assert_eq!(claimed(&one, "here/1"), None, "every chunk is held");
    // A finished chunk is never claimed again; a released one is, at once.
    one.finish_chunk("a", 0).unwrap();
    two.release_leases("there/2").unwrap();
    assert_eq!(claimed(&one, "here/1"), Some(("a".into(), 1)));
    assert_eq!(claimed(&one, "here/1"), Some(("b".into(), 1)));
    // A lease that ran out (its holder stopped beating) is taken over.
    one.db.execute("UPDATE chunks SET lease_until = '2000-01-01T00:00:00.000Z' WHERE target = 'b'", args![]).unwrap();
    assert_eq!(claimed(&two, "there/2"), Some(("b".into(), 0)));
    // Renewing keeps a lease; the renewed chunk is not free.
    two.renew_leases("there/2").unwrap();
    assert_eq!(claimed(&one, "elsewhere/3"), Some(("b".into(), 1)));
    assert_eq!(claimed(&one, "elsewhere/3"), None);
    assert_eq!(one.chunks_left().unwrap(), 3);
}

fn claimers_at_once_never_share_a_chunk(place: &Place) {
    let s = place.open();
    s.register_table("t", "t", "fp", 0).unwrap();
    let ranges: Vec<KeyRange> = (0..40)
        .map(|i| KeyRange { after: Some(vec![Value::Int(i * 10)]), through: Some(vec![Value::Int(i * 10 + 10)]) })
        .collect();
    s.plan_chunks("t", &ranges).unwrap();
    let claimed: Vec<Vec<i64>> = std::thread::scope(|scope| {
        let claimers: Vec<_> = (0..4)
            .map(|n| {
                scope.spawn(move || {
                    let store = place.open();
                    let mut mine = Vec::new();
                    while let Some((_, chunk)) = store.claim_chunk(&format!("elsewhere/{n}")).unwrap() {
                        mine.push(chunk.chunk);
                    }
                    mine
                })
            })
            .collect();
        claimers.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let mut all: Vec<i64> = claimed.concat();
    all.sort_unstable();
    assert_eq!(all, (0..40).collect::<Vec<_>>(), "every chunk claimed exactly once: {claimed:?}");
}

fn a_worker_that_lost_its_lease_writes_no_further_batch(place: &Place) {
    let s = place.open();
    two_chunks(&s);
    let (_, chunk) = s.claim_chunk("slow/1").unwrap().unwrap();
    assert!(s.begin_batch("a", chunk.chunk, "slow/1").unwrap());
    s.db.execute("UPDATE chunks SET lease_until = '2000-01-01T00:00:00.000Z'", args![]).unwrap();
    let (target, taken) = s.claim_chunk("quick/2").unwrap().unwrap();
    assert_eq!((target.as_str(), taken.chunk), ("a", chunk.chunk), "the expired chunk comes first");
    assert!(taken.pending_batch, "its batch in flight is redone by the new holder");
    assert!(!s.begin_batch("a", chunk.chunk, "slow/1").unwrap(), "the chunk is no longer slow's");
    assert!(s.begin_batch("a", chunk.chunk, "quick/2").unwrap());
    // A copy not cut into chunks (a change in place) holds no lease.
    s.register_table("c", "c", "fp", 2).unwrap();
    assert!(s.begin_batch("c", 0, "anyone/9").unwrap());
}

fn one_process_at_a_time_holds_the_lock(place: &Place) {
    let (one, two) = (place.open(), place.open());
    let held = one.lock().unwrap();
    assert!(held.is_some());
    assert!(two.lock().unwrap().is_none(), "held by the first");
    // The lock ends with its holder (its guard, or its session).
    drop(held);
    drop(one);
    // A PostgreSQL session ends when the server sees its connection close:
    // the lock is free a moment after the client lets go, not at once.
    let free = (0..100).any(|_| {
        let taken = two.lock().unwrap().is_some();
        if !taken {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        taken
    });
    assert!(free, "free once the first is gone");
}

fn changed_keys_are_marked_and_cleared(place: &Place) {
    let s = place.open();
    let keys = |ids: &[i64]| ids.iter().map(|&i| vec![Value::Int(i)]).collect::<Vec<_>>();
    s.record_changed_keys("t", Direction::Forward, &keys(&[1, 2])).unwrap();
    let first = s.changed_mark().unwrap();
    s.record_changed_keys("t", Direction::Forward, &keys(&[2, 3])).unwrap();
    s.record_changed_keys("t", Direction::Reverse, &keys(&[9])).unwrap();
    let last = s.changed_mark().unwrap();
    assert!(last > first);
    assert_eq!(s.changed_keys("t", Direction::Forward, first, last).unwrap(), keys(&[2, 3]));
    assert_eq!(s.changed_keys("t", Direction::Forward, 0, last).unwrap(), keys(&[1, 2, 3]));
    assert_eq!(s.recent_changed_keys("t", 2).unwrap().len(), 2);
    s.clear_changed_keys("t", Direction::Forward, last).unwrap();
    assert!(s.changed_keys("t", Direction::Forward, 0, last).unwrap().is_empty());
    assert_eq!(s.changed_keys("t", Direction::Reverse, 0, last).unwrap(), keys(&[9]));
}

fn verifications_and_quarantine_are_kept(place: &Place) {
    let s = place.open();
    s.quarantine("t", "id=1", "c", "x", "not a number").unwrap();
    assert_eq!(s.quarantined_rows().unwrap(), 1);
    s.save_verify_checkpoint("t", "then", "{\"after\":1}").unwrap();
    s.save_verify_checkpoint("t", "then", "{\"after\":2}").unwrap();
    assert_eq!(s.verify_checkpoint("t").unwrap(), Some(("then".into(), "{\"after\":2}".into())));
    let v = TableVerification {
        at: "now".into(),
        passed: true,
        rows_source: 3,
        rows_target: 3,
        checksum_match: true,
        sample_size: 3,
        sample_mismatches: 0,
        differences: 0,
    };
    s.record_verification("t", &v, "{}").unwrap();
    assert_eq!(s.last_verification("t").unwrap(), Some(v));
    assert_eq!(s.last_verification_report("t").unwrap().as_deref(), Some("{}"));
    assert_eq!(s.quarantined_rows().unwrap(), 0, "a table found equal holds its quarantined rows now");
    s.clear_verify_checkpoint("t").unwrap();
    assert!(s.verify_checkpoint("t").unwrap().is_none());
}

fn workers_are_listed_with_the_chunks_they_hold(place: &Place) {
    let s = place.open();
    two_chunks(&s);
    let beat = crate::Heartbeat::start_as(&place.location, "run --worker", crate::Role::Worker).unwrap();
    let me = crate::heartbeat::owner_id();
    s.claim_chunk(&me).unwrap().unwrap();
    let workers = s.workers().unwrap();
    assert_eq!(workers.len(), 1);
    assert_eq!((workers[0].id.as_str(), workers[0].command.as_str()), (me.as_str(), "run --worker"));
    assert!(workers[0].running);
    assert_eq!(workers[0].chunks, ["a#0"]);
    assert!(s.runner_status().unwrap().is_none(), "a worker is not the runner");
    drop(beat);
    let workers = s.workers().unwrap();
    assert!(!workers[0].running && workers[0].exited_at.is_some());
    assert!(workers[0].chunks.is_empty(), "a worker that stops gives its chunks up");
    assert_eq!(s.claim_chunk("other/1").unwrap().map(|(t, c)| (t, c.chunk)), Some(("a".into(), 0)));
}
