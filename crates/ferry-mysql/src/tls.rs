//! MySQL's `ssl-mode` on mysql_async's rustls support.

use ferry_engine::tls::{TlsFailure, TlsMode, TlsSettings};
use ferry_engine::{EngineError, Result};
use mysql_async::{ClientIdentity, Conn, Opts, OptsBuilder, SslOpts};

/// The driver's TLS options for these settings; `None` never encrypts.
pub(crate) fn ssl_opts(tls: &TlsSettings) -> Result<Option<SslOpts>> {
    if tls.mode == TlsMode::Disable {
        return Ok(None);
    }
    let mut opts = SslOpts::default();
    if let (Some(cert), Some(key)) = (&tls.client_cert, &tls.client_key) {
        opts = opts.with_client_identity(Some(ClientIdentity::new(cert.clone().into(), key.clone().into())));
    }
    if !tls.mode.verifies_chain() {
        // `PREFERRED` and `REQUIRED` encrypt without checking, as MySQL's own clients do.
        return Ok(Some(opts.with_danger_accept_invalid_certs(true)));
    }
    // The system's roots (the driver would bring its own bundle) and the given CA.
    let roots = tls.trusted_roots()?.into_iter().map(|der| der.to_vec().into()).collect();
    Ok(Some(opts.with_root_certs(roots).with_disable_built_in_roots(true)))
}

/// `VERIFY_CA` checks the chain, not the name. The driver's own switch for
/// that no longer matches rustls' errors, so Ferry asks once with the name
/// check on and, if only the name failed, names the host as the
/// certificate does: the chain is then checked in full, and the name passes.
pub(crate) async fn verify_ca_opts(tls: &TlsSettings, opts: Opts) -> Result<Opts> {
    if tls.mode != TlsMode::VerifyCa {
        return Ok(opts);
    }
    let attempt = tokio::time::timeout(std::time::Duration::from_secs(10), Conn::new(opts.clone())).await;
    let e = match attempt {
        Ok(Ok(conn)) => {
            let _ = conn.disconnect().await;
            return Ok(opts);
        }
        // Not a name problem: the real connect reports it.
        Ok(Err(e)) => e,
        Err(_) => return Ok(opts),
    };
    let Some(name) = ferry_engine::tls::presented_names(&e).and_then(|names| names.into_iter().next()) else {
        return Ok(opts);
    };
    let ssl = opts.ssl_opts().cloned().map(|ssl| ssl.with_danger_tls_hostname_override(Some(name)));
    Ok(OptsBuilder::from_opts(opts).ssl_opts(ssl).into())
}

/// A connection failure caused by TLS, explained; any other failure back.
pub(crate) fn connect_error(
    tls: &TlsSettings,
    e: mysql_async::Error,
    display: &str,
) -> std::result::Result<EngineError, mysql_async::Error> {
    let server = format!("MySQL at {display}");
    if let mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer) = e {
        return Ok(tls.explain(TlsFailure::NotOffered, &server));
    }
    tls.explain_failure(&e, &server).ok_or(e)
}
