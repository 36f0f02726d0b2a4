//! The routes: the dashboard, `/api/v1/*` and `/metrics`.

use crate::{auth, metrics, App, MAX_BODY_BYTES};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_run::StateStore;
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// How often an event stream looks at the state store for news.
const STREAM_EVERY: Duration = Duration::from_secs(1);
/// History points per table sent to the dashboard's chart.
const HISTORY_POINTS: usize = 500;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const DASHBOARD_JS: &str = include_str!("../assets/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("../assets/dashboard.css");

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/assets/dashboard.js", get(|| async { asset("text/javascript; charset=utf-8", DASHBOARD_JS) }))
        .route("/assets/dashboard.css", get(|| async { asset("text/css; charset=utf-8", DASHBOARD_CSS) }))
        .route("/metrics", get(metrics_text))
        .route("/api/v1/status", get(status))
        .route("/api/v1/events", get(events))
        .route("/api/v1/history", get(history))
        .route("/api/v1/verification/{table}", get(verification))
        .route("/api/v1/stream", get(stream_updates))
        .route("/api/v1/flags", get(flags))
        .route("/api/v1/flags/flagd.json", get(flagd))
        .route("/api/v1/cutover/next", post(cutover_next))
        .route("/api/v1/shadow", post(shadow_report))
        .route("/api/v1/pause", post(pause))
        .route("/api/v1/resume", post(resume))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such page; see docs/serve.md for the API") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// Runs a state-store read off the async threads; its error becomes a 500 saying what failed.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ferry_run::RunError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, format!("{}: {e}", e.code()))),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the state store failed: {e}"))),
    }
}

/// The state store, when the migration has one yet.
fn store(app: &App) -> Result<Option<StateStore>, ferry_run::RunError> {
    StateStore::open_existing(&ferry_run::state_location(&app.spec)?)
}

async fn status(State(app): State<Arc<App>>) -> Response {
    match blocking(move || ferry_run::status(&app.spec)).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => e,
    }
}

#[derive(Deserialize)]
struct EventsQuery {
    /// Entries after this sequence number; absent: the newest `limit`.
    after: Option<i64>,
    limit: Option<usize>,
}

async fn events(State(app): State<Arc<App>>, Query(q): Query<EventsQuery>) -> Response {
    let limit = q.limit.unwrap_or(200).clamp(1, 1000);
    let read = blocking(move || {
        Ok(match store(&app)? {
            None => Vec::new(),
            Some(s) => match q.after {
                Some(after) => s.audit_since(after, limit)?,
                None => s.audit_tail(limit)?,
            },
        })
    });
    match read.await {
        Ok(entries) => Json(entries).into_response(),
        Err(e) => e,
    }
}

async fn history(State(app): State<Arc<App>>) -> Response {
    let read = blocking(move || Ok(store(&app)?.map(|s| s.history(HISTORY_POINTS)).transpose()?.unwrap_or_default()));
    match read.await {
        Ok(samples) => Json(samples).into_response(),
        Err(e) => e,
    }
}

/// The last verification report of one table: its differing rows.
async fn verification(State(app): State<Arc<App>>, Path(table): Path<String>) -> Response {
    let lookup = table.clone();
    let read = blocking(move || Ok(store(&app)?.map(|s| s.last_verification_report(&lookup)).transpose()?.flatten()));
    match read.await {
        Ok(Some(report)) => ([(header::CONTENT_TYPE, "application/json")], report).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("table {table} has not been verified")),
        Err(e) => e,
    }
}

/// OpenMetrics when the scraper asks for it (Prometheus does), else the classic text format.
async fn metrics_text(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    match blocking(move || metrics::render(&app.spec)).await {
        Ok(text) if openmetrics => ([(header::CONTENT_TYPE, metrics::OPENMETRICS)], text).into_response(),
        Ok(text) => ([(header::CONTENT_TYPE, metrics::PROMETHEUS_TEXT)], metrics::classic_text(&text)).into_response(),
        Err(e) => e,
    }
}

/// The flags as the state store has them (0 % before a store exists).
async fn current_flags(app: Arc<App>) -> Result<ferry_run::cutover::Flags, Response> {
    blocking(move || match store(&app)? {
        Some(s) => ferry_run::cutover::flags(&app.spec, &s),
        None => Ok(ferry_run::cutover::Flags::before_any_run(&app.spec)),
    })
    .await
}

/// `GET /api/v1/flags`, with `ETag` / `If-None-Match` so pollers pay for news only.
async fn flags(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let flags = match current_flags(app).await {
        Ok(f) => f,
        Err(e) => return e,
    };
    let etag = format!("\"{}\"", flags.version());
    let unchanged = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v == etag);
    let etag = header::HeaderValue::from_str(&etag).expect("hex is a valid header value");
    if unchanged {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        [(header::ETAG, etag), (header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache"))],
        Json(flags.document()),
    )
        .into_response()
}

/// `GET /api/v1/flags/flagd.json`: the flag definitions in flagd's format.
async fn flagd(State(app): State<Arc<App>>) -> Response {
    match current_flags(app).await {
        Ok(f) => Json(f.flagd()).into_response(),
        Err(e) => e,
    }
}

/// `POST /api/v1/cutover/next`: as `ferry cutover --next`.
async fn cutover_next(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(refused) = unauthorized(&app, &headers) {
        return refused;
    }
    match blocking(move || ferry_run::cutover::request_next(&app.spec)).await {
        Ok(()) => Json(serde_json::json!({ "next": true })).into_response(),
        Err(e) => e,
    }
}

/// What an application that dual-reads reports (`POST /api/v1/shadow`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ShadowReport {
    compared: u64,
    mismatched: u64,
    #[serde(default)]
    examples: Vec<ShadowExample>,
    /// Its requests and errors over the same period: the error-rate trigger's value when no Prometheus is set.
    requests: Option<u64>,
    errors: Option<u64>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ShadowExample {
    key: String,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    columns: Vec<String>,
    #[serde(default)]
    detail: Option<String>,
}

/// Examples kept from one report.
const EXAMPLES_KEPT: usize = 20;

/// `POST /api/v1/shadow`: the application's own shadow reads, joined to Ferry's.
async fn shadow_report(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = unauthorized(&app, &headers) {
        return refused;
    }
    let report: ShadowReport = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "the body must be JSON like {{\"compared\": 100, \"mismatched\": 0, \"examples\": [], \
                     \"requests\": 1000, \"errors\": 0}}: {e}"
                ),
            )
        }
    };
    if report.mismatched > report.compared || report.errors.unwrap_or(0) > report.requests.unwrap_or(u64::MAX) {
        return error(StatusCode::BAD_REQUEST, "`mismatched` exceeds `compared`, or `errors` exceeds `requests`");
    }
    let recorded = blocking(move || {
        let Some(state) = store(&app)? else {
            return Err(ferry_run::RunError::new(ferry_run::RunErrorKind::Refused, "the migration has not started"));
        };
        let tally = ferry_run::shadow::ShadowTally {
            compared: report.compared,
            mismatched: report.mismatched,
            rechecked: 0,
            requests: report.requests,
            errors: report.errors,
        };
        state.record_shadow(ferry_run::shadow::ShadowOrigin::Application, &tally)?;
        let at = ferry_run::state::timestamp(ferry_run::state::now());
        for example in report.examples.into_iter().take(EXAMPLES_KEPT) {
            state.record_shadow_mismatch(&ferry_run::shadow::ShadowMismatch {
                at: at.clone(),
                origin: "application".into(),
                subject: example.subject.unwrap_or_else(|| "application".into()),
                key: example.key,
                columns: example.columns,
                detail: example.detail,
            })?;
        }
        Ok(tally)
    })
    .await;
    match recorded {
        Ok(tally) => Json(serde_json::json!({ "recorded": tally })).into_response(),
        Err(e) => e,
    }
}

/// `401` unless the request carries the server's token.
fn unauthorized(app: &App, headers: &HeaderMap) -> Option<Response> {
    if auth::authorized(headers, &app.token) {
        return None;
    }
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "this request changes the migration: send the server's token as `Authorization: Bearer TOKEN`",
    );
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    Some(response)
}

/// What a stream has sent so far.
struct StreamState {
    app: Arc<App>,
    last_status: String,
    last_seq: Option<i64>,
    pending: std::collections::VecDeque<Event>,
}

/// Server-Sent Events: `status` (the whole document, when it changed) and
/// `audit` (each new entry), checked every second; ends when the server stops.
async fn stream_updates(State(app): State<Arc<App>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let start = StreamState { app, last_status: String::new(), last_seq: None, pending: Default::default() };
    let updates = stream::unfold(start, |mut st| async move {
        loop {
            if let Some(event) = st.pending.pop_front() {
                return Some((Ok(event), st));
            }
            if *st.app.stopping.borrow() {
                return None;
            }
            if !st.last_status.is_empty() {
                let mut stopping = st.app.stopping.clone();
                tokio::select! {
                    _ = tokio::time::sleep(STREAM_EVERY) => {}
                    _ = stopping.changed() => return None,
                }
            }
            st.pending = news(&mut st).await;
        }
    });
    Sse::new(updates).keep_alive(KeepAlive::default())
}

/// The events to send since the last look; an error is sent as an `error` event.
async fn news(st: &mut StreamState) -> std::collections::VecDeque<Event> {
    let app = st.app.clone();
    let after = st.last_seq;
    let read = blocking(move || {
        let report = ferry_run::status(&app.spec)?;
        let entries = match (store(&app)?, after) {
            (None, _) => Vec::new(),
            (Some(s), Some(after)) => s.audit_since(after, 1000)?,
            // A new stream starts with the audit log's tail, as the page shows it.
            (Some(s), None) => s.audit_tail(50)?,
        };
        Ok((report, entries))
    });
    let mut out = std::collections::VecDeque::new();
    match read.await {
        Ok((report, entries)) => {
            if let Some(last) = entries.last() {
                st.last_seq = Some(last.seq);
            } else if st.last_seq.is_none() {
                st.last_seq = Some(0);
            }
            for entry in entries {
                if let Ok(json) = serde_json::to_string(&entry) {
                    out.push_back(Event::default().event("audit").id(entry.seq.to_string()).data(json));
                }
            }
            // generated_at changes every time: compare the rest.
            let mut comparable = report.clone();
            comparable.generated_at.clear();
            let key = serde_json::to_string(&comparable).unwrap_or_default();
            if key != st.last_status {
                st.last_status = key;
                if let Ok(json) = serde_json::to_string(&report) {
                    out.push_back(Event::default().event("status").data(json));
                }
            }
        }
        Err(_) => {
            st.last_status = "error".into();
            out.push_back(Event::default().event("error").data("the state store could not be read"));
        }
    }
    out
}

#[derive(Deserialize, Default)]
struct PauseBody {
    reason: Option<String>,
}

async fn pause(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let parsed: PauseBody = if body.is_empty() {
        PauseBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("the body must be JSON like {{\"reason\": \"...\"}}: {e}"),
                )
            }
        }
    };
    let reason = parsed.reason.filter(|r| !r.trim().is_empty()).unwrap_or_else(|| "paused from the dashboard".into());
    set_pause(app, headers, Some(reason)).await
}

async fn resume(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    set_pause(app, headers, None).await
}

async fn set_pause(app: Arc<App>, headers: HeaderMap, reason: Option<String>) -> Response {
    if let Some(refused) = unauthorized(&app, &headers) {
        return refused;
    }
    let paused = reason.is_some();
    let answer = reason.clone();
    match blocking(move || ferry_run::set_operator_pause(&app.spec, reason.as_deref())).await {
        Ok(()) => Json(serde_json::json!({ "paused": paused, "reason": answer })).into_response(),
        Err(e) => e,
    }
}
