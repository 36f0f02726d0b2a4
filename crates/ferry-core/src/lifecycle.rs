//! The migration's lifecycle as a state machine: one persisted state, one
//! pure function that moves it ([`transition`]), and the commands each
//! state allows ([`permits`]). Nothing here touches a database; the runner
//! loads the state, asks what is legal, acts, and persists what this module
//! returns.
//!
//! States and table stages are serialized by name (`"backfilling"`), never
//! by position, so that adding one never changes what a stored one means.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The forward stages of a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Nothing has been done on any database.
    Planned,
    /// Expand has started: target tables and change capture are being created.
    Expanding,
    /// Expand is complete; existing rows are being copied.
    Backfilling,
    /// Every table is copied; captured changes are replayed.
    Syncing,
    /// The last verification found the target equal to the source.
    Verified,
    /// `ferry cutover` runs the read ramp: a share of the reads goes to the target.
    CuttingOver,
    /// The read ramp reached 100 % and held: every read goes to the target, writes still to the source.
    CutOver,
    /// `ferry switch` has fenced the source and is moving writes to the target.
    Switching,
    /// Writes go to the target; reverse sync keeps the source current (the soak).
    Switched,
    /// `ferry contract --confirm` has started: the point of no return.
    Contracting,
    /// Contract is done: the migration is over.
    Completed,
}

impl Stage {
    pub const ALL: [Stage; 11] = [
        Stage::Planned,
        Stage::Expanding,
        Stage::Backfilling,
        Stage::Syncing,
        Stage::Verified,
        Stage::CuttingOver,
        Stage::CutOver,
        Stage::Switching,
        Stage::Switched,
        Stage::Contracting,
        Stage::Completed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Planned => "planned",
            Stage::Expanding => "expanding",
            Stage::Backfilling => "backfilling",
            Stage::Syncing => "syncing",
            Stage::Verified => "verified",
            Stage::CuttingOver => "cutting_over",
            Stage::CutOver => "cut_over",
            Stage::Switching => "switching",
            Stage::Switched => "switched",
            Stage::Contracting => "contracting",
            Stage::Completed => "completed",
        }
    }

    /// Contract has started: nothing can be rolled back any more.
    pub fn past_no_return(self) -> bool {
        self >= Stage::Contracting
    }

    /// Some or all reads go to the target (the read ramp), writes still to the source.
    pub fn reads_ramped(self) -> bool {
        matches!(self, Stage::CuttingOver | Stage::CutOver)
    }

    /// Writes have (or may have) moved to the target.
    pub fn past_switch(self) -> bool {
        matches!(self, Stage::Switching | Stage::Switched)
    }
}

/// Where a migration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    /// A forward stage.
    #[serde(rename = "forward")]
    At { stage: Stage },
    /// `ferry rollback` has started from `from` and not finished: it resumes.
    RollingBack { from: Stage },
    /// Everything Ferry did is undone; `ferry run` starts over.
    RolledBack,
}

impl State {
    pub const fn at(stage: Stage) -> State {
        State::At { stage }
    }

    pub const PLANNED: State = State::at(Stage::Planned);

    /// Every state, for exhaustive tests.
    pub fn all() -> Vec<State> {
        let mut out: Vec<State> = Stage::ALL.iter().map(|s| State::at(*s)).collect();
        out.extend(Stage::ALL.iter().map(|s| State::RollingBack { from: *s }));
        out.push(State::RolledBack);
        out
    }

    /// The name `ferry status` shows.
    pub fn name(&self) -> &'static str {
        match self {
            State::At { stage } => stage.name(),
            State::RollingBack { .. } => "rolling_back",
            State::RolledBack => "rolled_back",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::At { stage: Stage::Planned } => f.write_str("planned (nothing done yet)"),
            State::At { stage: Stage::Expanding } => f.write_str("expanding (creating the target and capture)"),
            State::At { stage: Stage::Backfilling } => f.write_str("backfilling (copying existing rows)"),
            State::At { stage: Stage::Syncing } => f.write_str("syncing (every row copied, changes replayed)"),
            State::At { stage: Stage::Verified } => f.write_str("verified (the target equals the source)"),
            State::At { stage: Stage::CuttingOver } => {
                f.write_str("cutting over (the read ramp moves a share of the reads to the target)")
            }
            State::At { stage: Stage::CutOver } => {
                f.write_str("cut over (every read goes to the target; writes still to the source)")
            }
            State::At { stage: Stage::Switching } => f.write_str("switching (the source is fenced, writes are moving)"),
            State::At { stage: Stage::Switched } => {
                f.write_str("switched (writes go to the target; reverse sync keeps the source current)")
            }
            State::At { stage: Stage::Contracting } => f.write_str("contracting (past the point of no return)"),
            State::At { stage: Stage::Completed } => f.write_str("completed (past the point of no return)"),
            State::RollingBack { from } => write!(f, "rolling back from {} (not finished)", from.name()),
            State::RolledBack => f.write_str("rolled back"),
        }
    }
}

/// What moves the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// `ferry run` begins (or resumes) expand.
    ExpandStarted,
    /// Every target table exists and capture is installed.
    Expanded,
    /// Every table's existing rows are copied and its constraints added.
    Backfilled,
    /// A verification finished.
    VerifyFinished { passed: bool },
    /// The spec gained a table, or a table entry changed before its copy: expand again.
    TablesAdded,
    /// `ferry cutover` starts (or resumes) the read ramp.
    CutoverStarted,
    /// The read ramp reached 100 % and held.
    CutoverCompleted,
    /// Reads went back to the source: `ferry cutover --abort`, or a rollback trigger.
    CutoverAborted,
    /// `ferry switch` fences the source (or resumes).
    SwitchStarted,
    /// Writes are recorded as going to the target.
    SwitchCompleted,
    /// The switch found rows it could not make equal behind the fence, and
    /// lifted the fence: writes stay on the source.
    SwitchAborted,
    /// `ferry contract --confirm` begins (or resumes): the point of no return.
    ContractStarted,
    /// Contract is done.
    ContractCompleted,
    /// `ferry rollback` begins (or resumes).
    RollbackStarted,
    /// `ferry rollback` undid everything.
    RollbackFinished,
}

/// The commands whose legality depends on the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    Run,
    Sync,
    Verify,
    Cutover,
    Switch,
    Contract,
    Rollback,
}

impl Command {
    pub const ALL: [Command; 7] = [
        Command::Run,
        Command::Sync,
        Command::Verify,
        Command::Cutover,
        Command::Switch,
        Command::Contract,
        Command::Rollback,
    ];

    /// The subcommand, as typed.
    pub fn name(self) -> &'static str {
        match self {
            Command::Run => "run",
            Command::Sync => "sync",
            Command::Verify => "verify",
            Command::Cutover => "cutover",
            Command::Switch => "switch",
            Command::Contract => "contract",
            Command::Rollback => "rollback",
        }
    }

    /// What it does from `state`, for the message that lists what is legal.
    fn purpose(self, state: State) -> &'static str {
        match (self, state) {
            (Command::Run, State::At { stage: Stage::Planned } | State::RolledBack) => "start the migration",
            (Command::Run, State::At { stage: Stage::Verified }) => "replay and verify again",
            (Command::Run, _) => "continue where it stopped",
            (Command::Sync, State::At { stage: Stage::Switched }) => "replay the target's changes into the source",
            (Command::Sync, _) => "replay captured changes",
            (Command::Verify, _) => "compare source and target",
            (Command::Cutover, State::At { stage: Stage::CuttingOver }) => "go on with the read ramp",
            (Command::Cutover, State::At { stage: Stage::CutOver }) => "with --abort: move reads back to the source",
            (Command::Cutover, _) => "move reads to the target step by step",
            (Command::Switch, State::At { stage: Stage::Switching }) => "finish the switch",
            (Command::Switch, _) => "move writes to the target",
            (Command::Contract, State::At { stage: Stage::Contracting }) => "finish the contract",
            (Command::Contract, State::At { stage: Stage::Verified }) => {
                "with --keep-source: end a one-off copy, keeping both tables"
            }
            (Command::Contract, _) => "archive the source: the point of no return",
            (Command::Rollback, State::RollingBack { .. }) => "finish the rollback",
            (Command::Rollback, _) => "undo everything Ferry did",
        }
    }
}

/// A command or event the state does not allow, and what it does allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub state: State,
    /// What was refused, in words.
    pub what: String,
    /// Why, in words.
    pub why: String,
    pub legal: Vec<Command>,
}

impl Refusal {
    /// `ferry run` (continue where it stopped), `ferry rollback` (...).
    pub fn legal_now(&self) -> String {
        self.legal
            .iter()
            .map(|c| format!("`ferry {}` ({})", c.name(), c.purpose(self.state)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is not possible now: the migration is {}", self.what, self.state)?;
        if !self.why.is_empty() {
            write!(f, "; {}", self.why)?;
        }
        Ok(())
    }
}

impl std::error::Error for Refusal {}

/// The commands `state` allows.
pub fn legal(state: State) -> Vec<Command> {
    Command::ALL.into_iter().filter(|c| why_not(state, *c).is_none()).collect()
}

fn why_not(state: State, command: Command) -> Option<&'static str> {
    use Stage::*;
    match (command, state) {
        (_, State::At { stage: Completed }) => Some("contract is done: the point of no return is passed"),
        (Command::Contract, State::At { stage: Verified | Switched | Contracting }) => None,
        (_, State::At { stage: Contracting }) => Some("contract has started and must finish: it cannot be undone"),
        (Command::Contract, _) => Some(
            "contract comes after the switch, or after a passing verification for a one-off copy or a change in place",
        ),
        (Command::Rollback, _) => None,
        (_, State::RollingBack { .. }) => Some("a rollback has started and must finish first"),
        (Command::Cutover, State::At { stage: Verified | CuttingOver | CutOver }) => None,
        (Command::Cutover, State::At { stage: Switching | Switched }) => Some("writes already go to the target"),
        (Command::Cutover, _) => Some("the read ramp comes after verification"),
        (Command::Switch, State::At { stage: Verified | CutOver | Switching }) => None,
        (Command::Switch, State::At { stage: CuttingOver }) => {
            Some("the read ramp must reach 100 % first (or `ferry cutover --abort` moves reads back)")
        }
        (Command::Switch, State::At { stage: Switched }) => Some("writes already go to the target"),
        (Command::Switch, _) => Some("the target must be verified first"),
        (_, State::At { stage: Switching }) => Some("a switch has started and must finish (or be rolled back) first"),
        (Command::Run, State::At { stage: Switched }) => {
            Some("writes go to the target now; `ferry run` replays the other way")
        }
        (Command::Run, State::At { stage: CuttingOver | CutOver }) => {
            Some("reads are moving to the target; `ferry cutover` replays while it runs")
        }
        (Command::Run, _) => None,
        (Command::Sync, State::At { stage: Backfilling | Syncing | Verified | CuttingOver | CutOver | Switched }) => {
            None
        }
        (Command::Sync, _) => Some("change capture is not installed yet"),
        (Command::Verify, State::At { stage: Syncing | Verified | CuttingOver | CutOver | Switched }) => None,
        (Command::Verify, State::At { stage: Backfilling | Expanding }) => Some("the backfill is not complete"),
        (Command::Verify, _) => Some("there is no copy to verify"),
    }
}

/// Whether `command` may run in `state`; the refusal says what may.
pub fn permits(state: State, command: Command) -> Result<(), Refusal> {
    match why_not(state, command) {
        None => Ok(()),
        Some(why) => Err(Refusal {
            state,
            what: format!("`ferry {}`", command.name()),
            why: why.to_string(),
            legal: legal(state),
        }),
    }
}

/// The one function that moves the state. An event the state does not
/// allow is refused (a bug in the caller, or a state store edited by hand).
pub fn transition(state: State, event: Event) -> Result<State, Refusal> {
    use Stage::*;
    let next = match (state, event) {
        (State::At { stage: Planned | Expanding } | State::RolledBack, Event::ExpandStarted) => {
            Some(State::at(Expanding))
        }
        (State::At { stage: Expanding }, Event::Expanded) => Some(State::at(Backfilling)),
        (State::At { stage: Backfilling }, Event::Backfilled) => Some(State::at(Syncing)),
        (State::At { stage: Syncing | Verified }, Event::VerifyFinished { passed: true }) => Some(State::at(Verified)),
        (State::At { stage: Syncing | Verified }, Event::VerifyFinished { passed: false }) => Some(State::at(Syncing)),
        // After the switch a verification informs; it moves nothing.
        (State::At { stage: Switched }, Event::VerifyFinished { .. }) => Some(state),
        // During the ramp a passing one informs; a failing one moves reads back to the source.
        (State::At { stage: CuttingOver | CutOver }, Event::VerifyFinished { passed: true }) => Some(state),
        (State::At { stage: CuttingOver | CutOver }, Event::VerifyFinished { passed: false }) => {
            Some(State::at(Syncing))
        }
        (State::At { stage: Verified | CuttingOver }, Event::CutoverStarted) => Some(State::at(CuttingOver)),
        (State::At { stage: CuttingOver }, Event::CutoverCompleted) => Some(State::at(CutOver)),
        (State::At { stage: CuttingOver | CutOver }, Event::CutoverAborted) => Some(State::at(Verified)),
        (State::At { stage: Verified | CutOver | Switching }, Event::SwitchStarted) => Some(State::at(Switching)),
        (State::At { stage: Switching }, Event::SwitchCompleted) => Some(State::at(Switched)),
        (State::At { stage: Switching }, Event::SwitchAborted) => Some(State::at(Verified)),
        (State::At { stage: Verified | Switched | Contracting }, Event::ContractStarted) => {
            Some(State::at(Contracting))
        }
        (State::At { stage: Contracting }, Event::ContractCompleted) => Some(State::at(Completed)),
        (State::At { stage: Backfilling | Syncing | Verified }, Event::TablesAdded) => Some(State::at(Expanding)),
        (State::At { stage: Planned | Expanding }, Event::TablesAdded) => Some(state),
        (State::At { stage }, Event::RollbackStarted) if !stage.past_no_return() => {
            Some(State::RollingBack { from: stage })
        }
        (State::RollingBack { .. }, Event::RollbackStarted) => Some(state),
        (State::RolledBack, Event::RollbackStarted) => Some(State::RollingBack { from: Planned }),
        (State::RollingBack { .. }, Event::RollbackFinished) => Some(State::RolledBack),
        _ => None,
    };
    next.ok_or_else(|| Refusal {
        state,
        what: format!("{event:?}"),
        why: "the state store does not allow this step".to_string(),
        legal: legal(state),
    })
}

/// How far one operation of an in-place change (a `[[change]]`: a column
/// added, renamed, retyped or dropped, an index, a check, a foreign key) has
/// come. Like a table's stage, each step's intent is recorded before it acts:
/// expand starts an operation, contract completes it, rollback aborts it
/// (Reshape's and pgroll's start / complete / abort).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationStage {
    /// Nothing done yet.
    #[default]
    Pending,
    /// Expand is adding it (what it adds may exist).
    Starting,
    /// Added beside the old shape: both application versions work.
    Started,
    /// Contract is finishing it (the point of no return is passed).
    Completing,
    /// Finished: only the new shape is left.
    Completed,
    /// Rollback is removing what it added.
    Aborting,
    /// Removed: the table is as it was.
    Aborted,
}

impl OperationStage {
    pub const ALL: [OperationStage; 7] = [
        OperationStage::Pending,
        OperationStage::Starting,
        OperationStage::Started,
        OperationStage::Completing,
        OperationStage::Completed,
        OperationStage::Aborting,
        OperationStage::Aborted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OperationStage::Pending => "pending",
            OperationStage::Starting => "starting",
            OperationStage::Started => "started",
            OperationStage::Completing => "completing",
            OperationStage::Completed => "completed",
            OperationStage::Aborting => "aborting",
            OperationStage::Aborted => "aborted",
        }
    }

    pub fn from_name(name: &str) -> Option<OperationStage> {
        OperationStage::ALL.into_iter().find(|s| s.name() == name)
    }

    /// What it adds may exist: rollback has something to remove.
    pub fn may_exist(self) -> bool {
        matches!(self, OperationStage::Starting | OperationStage::Started | OperationStage::Aborting)
    }
}

/// How far one table has come. Each forward step records its intent (the
/// `-ing` stage) before it acts, so that a run killed in between knows the
/// object may exist: the next run does the step again (every step is
/// idempotent), a rollback removes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableStage {
    /// Known to the state store; nothing created.
    #[default]
    Registered,
    /// The target table is being created (it may exist).
    Creating,
    /// The target table exists (created by Ferry, or reused).
    Created,
    /// Change capture is being installed on the source (it may exist).
    CaptureInstalling,
    /// Change capture is installed.
    Capturing,
    /// Existing rows are being copied.
    Copying,
    /// Every existing row is copied.
    Copied,
    /// Unique keys, indexes and foreign keys are added: the copy is complete.
    Constrained,
}

impl TableStage {
    pub fn name(self) -> &'static str {
        match self {
            TableStage::Registered => "registered",
            TableStage::Creating => "creating",
            TableStage::Created => "created",
            TableStage::CaptureInstalling => "capture_installing",
            TableStage::Capturing => "capturing",
            TableStage::Copying => "copying",
            TableStage::Copied => "copied",
            TableStage::Constrained => "constrained",
        }
    }

    pub fn from_name(name: &str) -> Option<TableStage> {
        [
            TableStage::Registered,
            TableStage::Creating,
            TableStage::Created,
            TableStage::CaptureInstalling,
            TableStage::Capturing,
            TableStage::Copying,
            TableStage::Copied,
            TableStage::Constrained,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }

    /// Capture may be on the source (installed, or its install was started).
    pub fn capture_may_exist(self) -> bool {
        self >= TableStage::CaptureInstalling
    }

    /// Capture is installed and its log is being filled.
    pub fn capturing(self) -> bool {
        self >= TableStage::Capturing
    }

    /// The target table may exist.
    pub fn table_may_exist(self) -> bool {
        self >= TableStage::Creating
    }

    pub fn copied(self) -> bool {
        self >= TableStage::Copied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: [Event; 16] = [
        Event::CutoverStarted,
        Event::CutoverCompleted,
        Event::CutoverAborted,
        Event::ContractStarted,
        Event::ContractCompleted,
        Event::SwitchStarted,
        Event::SwitchCompleted,
        Event::SwitchAborted,
        Event::ExpandStarted,
        Event::Expanded,
        Event::Backfilled,
        Event::VerifyFinished { passed: true },
        Event::VerifyFinished { passed: false },
        Event::TablesAdded,
        Event::RollbackStarted,
        Event::RollbackFinished,
    ];

    fn at(stage: Stage) -> State {
        State::at(stage)
    }

    /// Every (state, event) pair: the legal ones and where they lead, written
    /// out by hand; every other pair is refused.
    #[test]
    fn every_transition_legal_and_illegal() {
        use Stage::*;
        let legal: Vec<(State, Event, State)> = vec![
            (at(Planned), Event::ExpandStarted, at(Expanding)),
            (at(Expanding), Event::ExpandStarted, at(Expanding)),
            (State::RolledBack, Event::ExpandStarted, at(Expanding)),
            (at(Expanding), Event::Expanded, at(Backfilling)),
            (at(Backfilling), Event::Backfilled, at(Syncing)),
            (at(Syncing), Event::VerifyFinished { passed: true }, at(Verified)),
            (at(Verified), Event::VerifyFinished { passed: true }, at(Verified)),
            (at(Syncing), Event::VerifyFinished { passed: false }, at(Syncing)),
            (at(Verified), Event::VerifyFinished { passed: false }, at(Syncing)),
            (at(Switched), Event::VerifyFinished { passed: true }, at(Switched)),
            (at(Switched), Event::VerifyFinished { passed: false }, at(Switched)),
            (at(CuttingOver), Event::VerifyFinished { passed: true }, at(CuttingOver)),
            (at(CutOver), Event::VerifyFinished { passed: true }, at(CutOver)),
            (at(CuttingOver), Event::VerifyFinished { passed: false }, at(Syncing)),
            (at(CutOver), Event::VerifyFinished { passed: false }, at(Syncing)),
            (at(Verified), Event::CutoverStarted, at(CuttingOver)),
            (at(CuttingOver), Event::CutoverStarted, at(CuttingOver)),
            (at(CuttingOver), Event::CutoverCompleted, at(CutOver)),
            (at(CuttingOver), Event::CutoverAborted, at(Verified)),
            (at(CutOver), Event::CutoverAborted, at(Verified)),
            (at(CutOver), Event::SwitchStarted, at(Switching)),
            (at(Verified), Event::SwitchStarted, at(Switching)),
            (at(Switching), Event::SwitchStarted, at(Switching)),
            (at(Switching), Event::SwitchCompleted, at(Switched)),
            (at(Switching), Event::SwitchAborted, at(Verified)),
            (at(Verified), Event::ContractStarted, at(Contracting)),
            (at(Switched), Event::ContractStarted, at(Contracting)),
            (at(Contracting), Event::ContractStarted, at(Contracting)),
            (at(Contracting), Event::ContractCompleted, at(Completed)),
            (at(Planned), Event::TablesAdded, at(Planned)),
            (at(Expanding), Event::TablesAdded, at(Expanding)),
            (at(Backfilling), Event::TablesAdded, at(Expanding)),
            (at(Syncing), Event::TablesAdded, at(Expanding)),
            (at(Verified), Event::TablesAdded, at(Expanding)),
            (State::RolledBack, Event::RollbackStarted, State::RollingBack { from: Planned }),
            (State::RollingBack { from: Syncing }, Event::RollbackFinished, State::RolledBack),
        ];
        let mut checked = 0;
        for state in State::all() {
            for event in EVENTS {
                let expected = legal.iter().find(|(s, e, _)| *s == state && *e == event).map(|(_, _, to)| *to).or(
                    match (state, event) {
                        (State::At { stage }, Event::RollbackStarted) if !stage.past_no_return() => {
                            Some(State::RollingBack { from: stage })
                        }
                        (State::RollingBack { .. }, Event::RollbackStarted) => Some(state),
                        (State::RollingBack { .. }, Event::RollbackFinished) => Some(State::RolledBack),
                        _ => None,
                    },
                );
                match (transition(state, event), expected) {
                    (Ok(to), Some(want)) => assert_eq!(to, want, "{state:?} + {event:?}"),
                    (Err(refusal), None) => {
                        assert_eq!(refusal.state, state);
                        let over = state == at(Completed);
                        assert!(over || !refusal.legal.is_empty(), "a refusal always says what is legal");
                    }
                    (got, want) => panic!("{state:?} + {event:?}: got {got:?}, expected {want:?}"),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, State::all().len() * EVENTS.len());
    }

    #[test]
    fn commands_per_state() {
        use Command::*;
        use Stage::*;
        let expect = |state: State| -> Vec<Command> {
            match state {
                State::At { stage: Planned } | State::RolledBack => vec![Run, Rollback],
                State::At { stage: Expanding } => vec![Run, Rollback],
                State::At { stage: Backfilling } => vec![Run, Sync, Rollback],
                State::At { stage: Syncing } => vec![Run, Sync, Verify, Rollback],
                State::At { stage: Verified } => vec![Run, Sync, Verify, Cutover, Switch, Contract, Rollback],
                State::At { stage: CuttingOver } => vec![Sync, Verify, Cutover, Rollback],
                State::At { stage: CutOver } => vec![Sync, Verify, Cutover, Switch, Rollback],
                State::At { stage: Switching } => vec![Switch, Rollback],
                State::At { stage: Switched } => vec![Sync, Verify, Contract, Rollback],
                State::At { stage: Contracting } => vec![Contract],
                State::At { stage: Completed } => vec![],
                State::RollingBack { .. } => vec![Rollback],
            }
        };
        for state in State::all() {
            assert_eq!(legal(state), expect(state), "{state:?}");
            for command in Command::ALL {
                let allowed = expect(state).contains(&command);
                assert_eq!(permits(state, command).is_ok(), allowed, "{state:?} {command:?}");
            }
        }
        let refusal = permits(at(Backfilling), Verify).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "`ferry verify` is not possible now: the migration is backfilling (copying existing rows); \
             the backfill is not complete"
        );
        assert_eq!(
            refusal.legal_now(),
            "`ferry run` (continue where it stopped), `ferry sync` (replay captured changes), \
             `ferry rollback` (undo everything Ferry did)"
        );
    }

    #[test]
    fn stored_by_name() {
        let json = serde_json::to_string(&State::RollingBack { from: Stage::Verified }).unwrap();
        assert_eq!(json, r#"{"state":"rolling_back","from":"verified"}"#);
        assert_eq!(
            serde_json::to_string(&State::at(Stage::Syncing)).unwrap(),
            r#"{"state":"forward","stage":"syncing"}"#
        );
        for state in State::all() {
            let back: State = serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
            assert_eq!(back, state);
        }
        for stage in [TableStage::Registered, TableStage::CaptureInstalling, TableStage::Constrained] {
            assert_eq!(TableStage::from_name(stage.name()), Some(stage));
            assert_eq!(serde_json::to_value(stage).unwrap(), stage.name());
        }
    }
}
