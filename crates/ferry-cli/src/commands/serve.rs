use crate::EXIT_OK;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Where to listen. Another host's address needs --token.
    #[arg(long, default_value = ferry_web::DEFAULT_LISTEN, value_name = "ADDR")]
    listen: SocketAddr,
    /// The token that requests changing something need: pause, resume, next stage (default: a random one,
    /// printed in the dashboard's address).
    #[arg(long, env = "FERRY_HTTP_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// `--http ADDR` on a long-running command: serve the dashboard from inside it.
#[derive(clap::Args, Clone, Default)]
pub struct HttpArgs {
    /// Serve the dashboard, /api/v1 and /metrics on ADDR while this command runs (e.g. 127.0.0.1:9187).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// The token that HTTP requests changing something need: pause, resume, next stage (default: a random
    /// one, printed in the dashboard's address).
    // Not `requires = "http"`: FERRY_HTTP_TOKEN set for `ferry serve` must not break `ferry run`.
    #[arg(long, env = "FERRY_HTTP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// `ferry serve`: the migration's dashboard from its state store, until Ctrl-C or SIGTERM.
pub async fn run(spec_path: &Path, args: Args, invocation: ferry_run::Invocation) -> anyhow::Result<u8> {
    let spec = super::load_spec_without_secrets(spec_path)?;
    let bound = ferry_web::bind(spec, ferry_web::ServeOptions { listen: args.listen, token: args.token }).await?;
    announce(&bound);
    let cancel = invocation.cancel;
    bound.serve(async move { stopped(&cancel).await }).await?;
    Ok(EXIT_OK)
}

pub async fn stopped(cancel: &ferry_run::Cancel) {
    while !cancel.requested() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn announce(bound: &ferry_web::Bound) {
    // On stderr: a command's own output stays as it was; scripts read the address from here.
    eprintln!("dashboard: {}", bound.dashboard_url());
    eprintln!("metrics:   http://{}/metrics", bound.local_addr());
}

/// Serves beside the work of a command; stops when dropped.
pub struct Serving {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts serving when `--http` was given.
pub async fn start(spec_path: &Path, http: &HttpArgs) -> anyhow::Result<Option<Serving>> {
    let Some(listen) = http.http else { return Ok(None) };
    // The server needs no password: it reads the state store only.
    let spec = super::load_spec_without_secrets(spec_path)?;
    let bound = ferry_web::bind(spec, ferry_web::ServeOptions { listen, token: http.token.clone() }).await?;
    announce(&bound);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        if let Err(e) = bound.serve(async move { drop(stopped.await) }).await {
            tracing::warn!("the dashboard server stopped: {e}");
        }
    });
    Ok(Some(Serving { stop: Some(stop) }))
}
