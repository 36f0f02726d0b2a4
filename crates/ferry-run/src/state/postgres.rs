//! The state store's PostgreSQL session.
//!
//! The store is synchronous (its callers record progress between awaits, as
//! they did with SQLite), so its PostgreSQL connection lives on a thread of
//! its own with a single-threaded Tokio runtime; each statement is sent
//! there and answered. A caller blocked on an answer never waits for its own
//! runtime, so the store works the same from async code and from plain
//! threads (the heartbeat).

use super::db::{dollar_placeholders, Cell, Param, Row};
use crate::error::{Result, RunError, RunErrorKind};
use bytes::BytesMut;
use std::collections::HashMap;
use std::error::Error;
use std::sync::mpsc;
use std::thread::JoinHandle;
use tokio_postgres::types::{IsNull, ToSql, Type};
use tokio_postgres::{Client, Statement};

enum Work {
    Execute(String, Vec<Param>),
    Query(String, Vec<Param>),
    Batch(String),
}

enum Answer {
    Count(u64),
    Rows(Vec<Row>),
    Done,
}

type Reply = mpsc::Sender<Result<Answer>>;

/// One connection to the PostgreSQL database that keeps the state.
pub(crate) struct PgSession {
    requests: Option<mpsc::Sender<(Work, Reply)>>,
    thread: Option<JoinHandle<()>>,
    display: String,
}

impl PgSession {
    /// Connects to `url` (`display`: the URL with the password hidden).
    pub(crate) fn connect(url: &str, display: &str) -> Result<PgSession> {
        let (requests, inbox) = mpsc::channel::<(Work, Reply)>();
        let (ready, connected) = mpsc::channel::<Result<()>>();
        let (url, shown) = (url.to_string(), display.to_string());
        let thread = std::thread::Builder::new()
            .name("ferry-state".into())
            .spawn(move || serve(&url, &shown, &inbox, &ready))
            .map_err(|e| RunError::state(format!("cannot start the state store's thread: {e}")))?;
        let failed = || RunError::state(format!("the state store's connection to {display} ended while connecting"));
        connected.recv().map_err(|_| failed())??;
        Ok(PgSession { requests: Some(requests), thread: Some(thread), display: display.to_string() })
    }

    fn ask(&self, work: Work) -> Result<Answer> {
        let gone =
            || RunError::new(RunErrorKind::State, format!("the state store's connection to {} is gone", self.display));
        let (reply, answer) = mpsc::channel();
        self.requests.as_ref().ok_or_else(gone)?.send((work, reply)).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }

    pub(crate) fn execute(&self, sql: &str, args: Vec<Param>) -> Result<u64> {
        match self.ask(Work::Execute(sql.to_string(), args))? {
            Answer::Count(n) => Ok(n),
            _ => Ok(0),
        }
    }

    pub(crate) fn query(&self, sql: &str, args: Vec<Param>) -> Result<Vec<Row>> {
        match self.ask(Work::Query(sql.to_string(), args))? {
            Answer::Rows(rows) => Ok(rows),
            _ => Ok(Vec::new()),
        }
    }

    pub(crate) fn batch(&self, sql: &str) -> Result<()> {
        self.ask(Work::Batch(sql.to_string())).map(|_| ())
    }
}

impl Drop for PgSession {
    fn drop(&mut self) {
        // Closing the channel ends the thread, which closes the connection
        // (and with it any advisory lock the session held).
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(url: &str, display: &str, inbox: &mpsc::Receiver<(Work, Reply)>, ready: &mpsc::Sender<Result<()>>) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(RunError::state(format!("cannot start the state store's runtime: {e}"))));
            return;
        }
    };
    let client = match runtime.block_on(ferry_postgres::connect_client(url, display)) {
        Ok(client) => client,
        Err(e) => {
            let _ = ready.send(Err(RunError::from(e).context("the state store")));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let mut statements: HashMap<String, Statement> = HashMap::new();
    while let Ok((work, reply)) = inbox.recv() {
        // The timer is made inside the runtime, which drives it.
        let answer = runtime
            .block_on(async { tokio::time::timeout(ANSWER_WITHIN, perform(&client, &mut statements, work)).await });
        let Ok(answer) = answer else {
            // A server that stopped answering: the session is given up (its
            // statement may still run there), so every later call fails
            // and the command stops instead of hanging.
            let _ = reply.send(Err(RunError::state(format!(
                "the state store at {display} did not answer within {ANSWER_WITHIN:?}"
            ))
            .with_hint("check that the state database is up and reachable, then run the command again")));
            return;
        };
        let _ = reply.send(answer.map_err(|e| failure(&e, display)));
    }
}

/// How long a statement of the state store may take before the session is given up.
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

async fn perform(
    client: &Client,
    statements: &mut HashMap<String, Statement>,
    work: Work,
) -> std::result::Result<Answer, tokio_postgres::Error> {
    match work {
        Work::Batch(sql) => {
            client.batch_execute(&sql).await?;
            // A statement prepared before a schema change may no longer fit it.
            let upper = sql.to_ascii_uppercase();
            if ["CREATE", "ALTER", "DROP", "SEARCH_PATH"].iter().any(|w| upper.contains(w)) {
                statements.clear();
            }
            Ok(Answer::Done)
        }
        Work::Execute(sql, args) => {
            let statement = prepared(client, statements, &sql).await?;
            Ok(Answer::Count(client.execute(&statement, &bound(&args)).await?))
        }
        Work::Query(sql, args) => {
            let statement = prepared(client, statements, &sql).await?;
            let rows = client.query(&statement, &bound(&args)).await?;
            Ok(Answer::Rows(rows.iter().map(row).collect()))
        }
    }
}

async fn prepared(
    client: &Client,
    statements: &mut HashMap<String, Statement>,
    sql: &str,
) -> std::result::Result<Statement, tokio_postgres::Error> {
    if let Some(statement) = statements.get(sql) {
        return Ok(statement.clone());
    }
    let statement = client.prepare(&dollar_placeholders(sql)).await?;
    statements.insert(sql.to_string(), statement.clone());
    Ok(statement)
}

fn bound(args: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter().map(|a| a as &(dyn ToSql + Sync)).collect()
}

fn failure(e: &tokio_postgres::Error, display: &str) -> RunError {
    let message = match e.as_db_error() {
        Some(db) => format!("state store at {display}: {} ({})", db.message(), db.code().code()),
        None => format!("state store at {display}: {e}"),
    };
    RunError::state(message)
}

/// A row as cells; the store's columns are integers, reals and text.
fn row(r: &tokio_postgres::Row) -> Row {
    Row((0..r.len()).map(|i| cell(r, i)).collect())
}

fn cell(r: &tokio_postgres::Row, i: usize) -> Cell {
    let ty = r.columns()[i].type_();
    let read = |v: Option<Cell>| v.unwrap_or(Cell::Null);
    match *ty {
        Type::INT8 => read(r.get::<_, Option<i64>>(i).map(Cell::Int)),
        Type::INT4 => read(r.get::<_, Option<i32>>(i).map(|v| Cell::Int(v.into()))),
        Type::INT2 => read(r.get::<_, Option<i16>>(i).map(|v| Cell::Int(v.into()))),
        Type::BOOL => read(r.get::<_, Option<bool>>(i).map(|v| Cell::Int(v.into()))),
        Type::FLOAT8 => read(r.get::<_, Option<f64>>(i).map(Cell::Real)),
        Type::FLOAT4 => read(r.get::<_, Option<f32>>(i).map(|v| Cell::Real(v.into()))),
        _ => read(r.try_get::<_, Option<String>>(i).ok().flatten().map(Cell::Text)),
    }
}

/// A parameter takes the type PostgreSQL inferred for its place.
impl ToSql for Param {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, Box<dyn Error + Sync + Send>> {
        match (self, ty) {
            (Param::Null, _) => Ok(IsNull::Yes),
            (Param::Int(v), &Type::INT8) => v.to_sql(ty, out),
            (Param::Int(v), &Type::INT4) => i32::try_from(*v)?.to_sql(ty, out),
            (Param::Int(v), &Type::INT2) => i16::try_from(*v)?.to_sql(ty, out),
            (Param::Int(v), &Type::BOOL) => (*v != 0).to_sql(ty, out),
            (Param::Int(v), &Type::FLOAT8) => (*v as f64).to_sql(ty, out),
            (Param::Int(v), _) => v.to_string().to_sql(ty, out),
            (Param::Real(v), &Type::FLOAT4) => (*v as f32).to_sql(ty, out),
            (Param::Real(v), &Type::FLOAT8) => v.to_sql(ty, out),
            (Param::Real(v), _) => v.to_string().to_sql(ty, out),
            (Param::Text(v), &Type::INT8) => v.parse::<i64>()?.to_sql(ty, out),
            (Param::Text(v), &Type::FLOAT8) => v.parse::<f64>()?.to_sql(ty, out),
            (Param::Text(v), &Type::TEXT | &Type::VARCHAR | &Type::BPCHAR | &Type::NAME | &Type::UNKNOWN) => {
                v.as_str().to_sql(ty, out)
            }
            (Param::Text(_), _) => Err(format!("text for a parameter of type {ty}").into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}
