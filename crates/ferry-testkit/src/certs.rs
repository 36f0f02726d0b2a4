//! A test certificate authority and the server certificates the TLS tests
//! need: a good one for `localhost`, an expired one, and a CA that signed
//! nothing the servers use.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair};

pub struct TestCerts {
    dir: tempfile::TempDir,
}

struct Authority {
    cert: Certificate,
    key: KeyPair,
}

fn authority(name: &str) -> Authority {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    Authority { cert: params.self_signed(&key).unwrap(), key }
}

impl TestCerts {
    /// `ca.pem`; `server.pem`/`server.key` valid for the name `localhost`
    /// only (so `127.0.0.1` is a host-name mismatch); `expired.pem`/`expired.key`;
    /// `other-ca.pem`, a CA that signed none of them; `client.pem`/`client.key`
    /// for the user `certuser`.
    pub fn generate() -> TestCerts {
        let dir = tempfile::tempdir().unwrap();
        let ca = authority("Ferry test CA");
        let other = authority("Another CA");
        std::fs::write(dir.path().join("ca.pem"), ca.cert.pem()).unwrap();
        std::fs::write(dir.path().join("other-ca.pem"), other.cert.pem()).unwrap();
        let server = |stem: &str, expired: bool| {
            let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
            params.distinguished_name.push(DnType::CommonName, "localhost");
            if expired {
                params.not_before = rcgen::date_time_ymd(2020, 1, 1);
                params.not_after = rcgen::date_time_ymd(2021, 1, 1);
            }
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
            std::fs::write(dir.path().join(format!("{stem}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.path().join(format!("{stem}.key")), key.serialize_pem()).unwrap();
        };
        server("server", false);
        server("expired", true);
        // A client certificate for the user `certuser`.
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "certuser");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
        std::fs::write(dir.path().join("client.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("client.key"), key.serialize_pem()).unwrap();
        TestCerts { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
