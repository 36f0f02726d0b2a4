//! Ferry's HTTP face: a dashboard at `/`, the JSON API under `/api/v1`, and
//! `/metrics` for Prometheus.
//!
//! Everything served is read from the migration's state store, the one
//! source of truth `ferry status` reads too, so `ferry serve` beside a runner
//! and `--http` inside it show the same figures. Requests that change
//! something (pause, resume) need the server's token.

mod api;
mod auth;
mod metrics;

use ferry_core::Spec;
use ferry_run::{RunError, RunErrorKind};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The port Ferry listens on unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9187";
/// No request Ferry accepts has a body larger than this.
pub const MAX_BODY_BYTES: usize = 4096;

/// How to serve: where, and the token that guards changes.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Required for a non-loopback address; generated for loopback when absent.
    pub token: Option<String>,
}

/// What every handler reads: the spec (without secrets) and the token.
pub(crate) struct App {
    pub spec: Spec,
    pub token: String,
    /// Flips to true when the server stops: open event streams end.
    pub stopping: watch::Receiver<bool>,
}

/// A bound server, not yet serving: its address and token are known, so the
/// caller can print them first.
pub struct Bound {
    listener: TcpListener,
    app: Arc<App>,
    stop: watch::Sender<bool>,
    token_generated: bool,
}

/// Binds the listener. A non-loopback address without a token is refused:
/// pause and resume must not be open to the network.
pub async fn bind(spec: Spec, options: ServeOptions) -> Result<Bound, RunError> {
    let token_generated = options.token.as_deref().is_none_or(str::is_empty);
    if token_generated && !options.listen.ip().is_loopback() {
        return Err(RunError::new(
            RunErrorKind::Usage,
            format!("{} is reachable from other hosts, and no token was given", options.listen),
        )
        .with_hint("pass --token (or set FERRY_HTTP_TOKEN) to guard pause and resume, or listen on 127.0.0.1"));
    }
    let token = match options.token.filter(|t| !t.is_empty()) {
        Some(t) => t,
        None => auth::random_token(),
    };
    let listener = TcpListener::bind(options.listen).await.map_err(|e| {
        RunError::new(RunErrorKind::Usage, format!("cannot listen on {}: {e}", options.listen))
            .with_hint("choose another address with --listen (or --http), e.g. 127.0.0.1:0 for any free port")
    })?;
    let (stop, stopping) = watch::channel(false);
    Ok(Bound { listener, app: Arc::new(App { spec, token, stopping }), stop, token_generated })
}

impl Bound {
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The dashboard's address; with a generated token, carrying it in the
    /// fragment (which browsers never send), so the page's buttons work.
    pub fn dashboard_url(&self) -> String {
        let addr = self.local_addr();
        if self.token_generated {
            format!("http://{addr}/#token={}", self.app.token)
        } else {
            format!("http://{addr}/")
        }
    }

    /// Serves until `shutdown` completes; open event streams end with it.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let router = api::router(self.app.clone());
        let stop = self.stop;
        axum::serve(self.listener, router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                let _ = stop.send(true);
            })
            .await
    }
}
