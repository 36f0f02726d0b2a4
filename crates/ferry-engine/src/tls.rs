//! TLS to a database server: the URL parameters people already write
//! (libpq's `sslmode`, MySQL's `ssl-mode`), one meaning for both engines,
//! and certificate failures explained by the check that failed.

use crate::error::{EngineError, ErrorKind, Result};
use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// How much TLS a connection asks for, weakest first. The names are libpq's;
/// MySQL's `DISABLED`, `PREFERRED`, `REQUIRED`, `VERIFY_CA` and
/// `VERIFY_IDENTITY` mean the same, in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsMode {
    /// Never encrypt.
    Disable,
    /// Encrypt when the server offers it, without checking its certificate.
    Prefer,
    /// Always encrypt, without checking the certificate.
    Require,
    /// Always encrypt; the certificate must chain to a trusted CA.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host in the URL.
    VerifyFull,
}

impl TlsMode {
    pub fn verifies_chain(self) -> bool {
        self >= TlsMode::VerifyCa
    }

    /// The mode as the engine's own URL parameter spells it.
    pub fn url_value(self, dialect: TlsDialect) -> &'static str {
        let i = self as usize;
        match dialect {
            TlsDialect::Libpq => ["disable", "prefer", "require", "verify-ca", "verify-full"][i],
            TlsDialect::Mysql => ["DISABLED", "PREFERRED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"][i],
        }
    }
}

/// Whose URL parameter names a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsDialect {
    /// `sslmode`, `sslrootcert`, `sslcert`, `sslkey`.
    Libpq,
    /// `ssl-mode`, `ssl-ca`, `ssl-cert`, `ssl-key` (or with underscores).
    Mysql,
}

impl TlsDialect {
    fn mode_param(self) -> &'static str {
        match self {
            TlsDialect::Libpq => "sslmode",
            TlsDialect::Mysql => "ssl-mode",
        }
    }

    fn ca_param(self) -> &'static str {
        match self {
            TlsDialect::Libpq => "sslrootcert",
            TlsDialect::Mysql => "ssl-ca",
        }
    }
}

/// The TLS parameters of one database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub dialect: TlsDialect,
    pub mode: TlsMode,
    /// A CA certificate (PEM) trusted in addition to the system's roots.
    pub root_cert: Option<PathBuf>,
    /// A client certificate and its key (PEM), for servers that ask for one.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl TlsSettings {
    /// Takes the TLS parameters out of `url` (the driver does not know them
    /// all) and returns what they ask for. Without any, libpq's and MySQL's
    /// own default holds: `prefer`.
    pub fn take_from(url: &mut url::Url, dialect: TlsDialect) -> Result<TlsSettings> {
        let mut settings =
            TlsSettings { dialect, mode: TlsMode::Prefer, root_cert: None, client_cert: None, client_key: None };
        let mut kept = Vec::new();
        let pairs: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        for (key, value) in pairs {
            let name = match dialect {
                TlsDialect::Libpq => key.clone(),
                TlsDialect::Mysql => key.replace('_', "-"),
            };
            match (dialect, name.as_str()) {
                (TlsDialect::Libpq, "sslmode") | (TlsDialect::Mysql, "ssl-mode") => {
                    settings.mode = parse_mode(&value, dialect)?
                }
                (TlsDialect::Libpq, "sslrootcert") | (TlsDialect::Mysql, "ssl-ca") => {
                    settings.root_cert = Some(value.into())
                }
                (TlsDialect::Libpq, "sslcert") | (TlsDialect::Mysql, "ssl-cert") => {
                    settings.client_cert = Some(value.into())
                }
                (TlsDialect::Libpq, "sslkey") | (TlsDialect::Mysql, "ssl-key") => {
                    settings.client_key = Some(value.into())
                }
                _ => kept.push((key, value)),
            }
        }
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
        if settings.client_cert.is_some() != settings.client_key.is_some() {
            let (cert, key) = match dialect {
                TlsDialect::Libpq => ("sslcert", "sslkey"),
                TlsDialect::Mysql => ("ssl-cert", "ssl-key"),
            };
            return Err(EngineError::new(
                ErrorKind::Other,
                format!("`{cert}` and `{key}` go together: one is missing"),
            )
            .with_hint(format!(
                "give both the client certificate ({cert}=PATH) and its key ({key}=PATH), or neither"
            )));
        }
        Ok(settings)
    }

    /// The rustls configuration for these settings: the system's roots and
    /// the given CA, a client certificate if given, and a verifier that
    /// checks what the mode asks for.
    pub fn client_config(&self) -> Result<ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_setup_error(format!("no TLS version available: {e}")))?;
        let chain = match self.mode {
            TlsMode::Disable | TlsMode::Prefer | TlsMode::Require => None,
            TlsMode::VerifyCa | TlsMode::VerifyFull => Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(self.root_store()?), provider.clone())
                    .build()
                    .map_err(|e| tls_setup_error(format!("cannot check server certificates: {e}")))?,
            ),
        };
        let verifier = Arc::new(Checker { provider, chain, check_name: self.mode == TlsMode::VerifyFull });
        let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
        Ok(match self.client_identity()? {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| self.file_error("client certificate", self.client_cert.as_ref(), &e.to_string()))?,
            None => builder.with_no_client_auth(),
        })
    }

    /// The system's trusted roots and the CA the URL names.
    pub fn root_store(&self) -> Result<RootCertStore> {
        let mut store = RootCertStore::empty();
        let extra = self.extra_roots()?;
        store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        for cert in extra {
            store.add(cert).map_err(|e| self.file_error("CA certificate", self.root_cert.as_ref(), &e.to_string()))?;
        }
        Ok(store)
    }

    /// The same roots as [`root_store`](Self::root_store), as DER certificates.
    pub fn trusted_roots(&self) -> Result<Vec<CertificateDer<'static>>> {
        let extra = self.extra_roots()?;
        // A system without a readable certificate store still trusts the given CA.
        let mut roots = rustls_native_certs::load_native_certs().certs;
        roots.extend(extra);
        Ok(roots)
    }

    /// The certificates in the CA file the URL names.
    pub fn extra_roots(&self) -> Result<Vec<CertificateDer<'static>>> {
        let Some(path) = &self.root_cert else { return Ok(Vec::new()) };
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| self.file_error("CA certificate", Some(path), &e.to_string()))?;
        if certs.is_empty() {
            return Err(self.file_error("CA certificate", Some(path), "no PEM certificate in it"));
        }
        Ok(certs)
    }

    fn client_identity(&self) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>> {
        let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) else { return Ok(None) };
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| self.file_error("client certificate", Some(cert), &e.to_string()))?;
        // Never quote the key file's contents: only its path and what is wrong.
        let key =
            PrivateKeyDer::from_pem_file(key).map_err(|e| self.file_error("client key", Some(key), &e.to_string()))?;
        Ok(Some((chain, key)))
    }

    fn file_error(&self, what: &str, path: Option<&PathBuf>, why: &str) -> EngineError {
        let path = path.map(|p| p.display().to_string()).unwrap_or_default();
        tls_setup_error(format!("cannot use the {what} {path}: {why}"))
            .with_hint("give the path of a readable PEM file in the URL (relative paths are read from the directory ferry runs in)")
    }

    /// Explains a failed connection when TLS caused it: which check failed
    /// and which URL parameter changes it. `None` when TLS was not the cause.
    pub fn explain_failure(&self, error: &(dyn std::error::Error + 'static), server: &str) -> Option<EngineError> {
        Some(self.explain(tls_failure(error)?, server))
    }

    /// The error for a TLS failure: the check that failed and the URL parameter that changes it.
    pub fn explain(&self, failure: TlsFailure, server: &str) -> EngineError {
        let mode = self.dialect.mode_param();
        let ca = self.dialect.ca_param();
        let full = TlsMode::VerifyFull.url_value(self.dialect);
        let verify_ca = TlsMode::VerifyCa.url_value(self.dialect);
        let (check, hint) = match failure {
            TlsFailure::UnknownCa => (
                "the server's certificate is not signed by a trusted CA (unknown CA)".to_string(),
                format!("give the CA that signed it with `{ca}=PATH` (PEM), or lower `{mode}` to `require` to encrypt without checking"),
            ),
            TlsFailure::HostMismatch => (
                "the server's certificate does not name this host (host name mismatch)".to_string(),
                format!("connect by a name the certificate lists, or use `{mode}={verify_ca}` to check the CA but not the name (weaker than {full})"),
            ),
            TlsFailure::Expired => (
                "the server's certificate has expired (or is not valid yet)".to_string(),
                "renew the server's certificate; check the clocks of both machines".to_string(),
            ),
            TlsFailure::NotOffered => (
                "the server does not offer TLS".to_string(),
                format!("enable TLS on the server, or lower `{mode}` (to `{}`) to allow an unencrypted connection", TlsMode::Prefer.url_value(self.dialect)),
            ),
            TlsFailure::Other(why) => (
                format!("the TLS handshake failed: {why}"),
                format!("check the server's TLS settings and `{mode}`, `{ca}` in the URL"),
            ),
        };
        EngineError::new(ErrorKind::Tls, format!("TLS to {server} failed: {check}")).with_hint(hint)
    }
}

fn parse_mode(value: &str, dialect: TlsDialect) -> Result<TlsMode> {
    let modes = [TlsMode::Disable, TlsMode::Prefer, TlsMode::Require, TlsMode::VerifyCa, TlsMode::VerifyFull];
    let found = modes.into_iter().find(|m| match dialect {
        TlsDialect::Libpq => m.url_value(dialect) == value,
        TlsDialect::Mysql => m.url_value(dialect).eq_ignore_ascii_case(value),
    });
    found.ok_or_else(|| {
        let all: Vec<&str> = modes.iter().map(|m| m.url_value(dialect)).collect();
        EngineError::new(ErrorKind::Other, format!("unknown `{}` value `{value}`", dialect.mode_param()))
            .with_hint(format!("use one of {}", all.join(", ")))
    })
}

fn tls_setup_error(message: String) -> EngineError {
    EngineError::new(ErrorKind::Tls, message)
}

/// Why a TLS handshake failed, as far as a person needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    UnknownCa,
    HostMismatch,
    Expired,
    NotOffered,
    Other(String),
}

/// Why a TLS handshake failed, found in an error's chain.
pub fn tls_failure(error: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
    rustls_error(error).map(classify)
}

/// The names a certificate that failed the host-name check presents (a
/// wildcard made concrete), so that a `verify-ca` connection can name one.
pub fn presented_names(error: &(dyn std::error::Error + 'static)) -> Option<Vec<String>> {
    match rustls_error(error)? {
        rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { presented, .. }) => {
            // webpki writes them as `DnsName("db.example.com")` or `IpAddress(10.0.0.1)`.
            let names = presented.iter().filter_map(|name| {
                let dns = name.strip_prefix("DnsName(\"").and_then(|n| n.strip_suffix("\")"));
                let ip = name.strip_prefix("IpAddress(").and_then(|n| n.strip_suffix(')'));
                Some(dns.or(ip)?.replacen("*.", "ferry.", 1))
            });
            Some(names.collect())
        }
        _ => None,
    }
}

/// The rustls error in an error's chain (drivers wrap it in I/O errors).
fn rustls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(rustls) = e.downcast_ref::<rustls::Error>() {
            return Some(rustls);
        }
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            if let Some(rustls) = inner.downcast_ref::<rustls::Error>() {
                return Some(rustls);
            }
        }
        next = e.source();
    }
    None
}

fn classify(error: &rustls::Error) -> TlsFailure {
    match error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => TlsFailure::UnknownCa,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsFailure::HostMismatch
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => TlsFailure::Expired,
            other => TlsFailure::Other(format!("invalid certificate: {other:?}")),
        },
        other => TlsFailure::Other(other.to_string()),
    }
}

/// Checks what the mode asks for: for `prefer` and `require` nothing of the
/// certificate (as libpq), for `verify-ca` the chain against the roots, for
/// `verify-full` the host name too. The handshake's signatures are always
/// checked, so the session key is the certificate holder's, whoever it is.
#[derive(Debug)]
struct Checker {
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// `None`: the certificate is not checked.
    chain: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
}

impl ServerCertVerifier for Checker {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(url: &str, dialect: TlsDialect) -> (TlsSettings, String) {
        let mut url = url::Url::parse(url).unwrap();
        let settings = TlsSettings::take_from(&mut url, dialect).unwrap();
        (settings, url.to_string())
    }

    #[test]
    fn takes_libpq_parameters_and_leaves_the_rest() {
        let (s, rest) =
            take("postgres://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem&connect_timeout=5", TlsDialect::Libpq);
        assert_eq!(s.mode, TlsMode::VerifyFull);
        assert_eq!(s.root_cert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(rest, "postgres://u@h/db?connect_timeout=5");
        let (s, rest) = take("postgres://u@h/db", TlsDialect::Libpq);
        assert_eq!(s.mode, TlsMode::Prefer, "libpq's default");
        assert_eq!(rest, "postgres://u@h/db");
    }

    #[test]
    fn takes_mysql_parameters_in_either_spelling() {
        let (s, rest) = take("mysql://u@h/db?ssl-mode=verify_identity&ssl_ca=ca.pem", TlsDialect::Mysql);
        assert_eq!(s.mode, TlsMode::VerifyFull);
        assert_eq!(s.root_cert, Some(PathBuf::from("ca.pem")));
        assert_eq!(rest, "mysql://u@h/db");
        assert_eq!(take("mysql://u@h/db?ssl-mode=DISABLED", TlsDialect::Mysql).0.mode, TlsMode::Disable);
    }

    #[test]
    fn refuses_unknown_modes_and_half_identities() {
        let mut url = url::Url::parse("postgres://u@h/db?sslmode=verify_full").unwrap();
        let e = TlsSettings::take_from(&mut url, TlsDialect::Libpq).unwrap_err();
        assert!(e.to_string().contains("verify-full"), "{e}");
        let mut url = url::Url::parse("mysql://u@h/db?ssl-cert=c.pem").unwrap();
        let e = TlsSettings::take_from(&mut url, TlsDialect::Mysql).unwrap_err();
        assert!(e.to_string().contains("ssl-key"), "{e}");
    }

    #[test]
    fn classifies_certificate_failures() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        assert_eq!(tls_failure(&io), Some(TlsFailure::UnknownCa));
        let expired = rustls::Error::InvalidCertificate(CertificateError::Expired);
        assert_eq!(tls_failure(&expired), Some(TlsFailure::Expired));
        assert_eq!(tls_failure(&std::io::Error::other("refused")), None);
    }
}
