//! How Ferry reaches a database: what the plan reports beside each endpoint.

use serde::{Deserialize, Serialize};

/// How a connection to a database travels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Transport {
    /// A file on this machine (SQLite): no network.
    #[default]
    LocalFile,
    /// Over the network in clear text.
    Unencrypted,
    /// Over TLS; `mode` is the URL's setting (`sslmode` or `ssl-mode`) that
    /// says what of the server's certificate was checked.
    Tls { protocol: String, mode: String },
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::LocalFile => f.write_str("local file"),
            Transport::Unencrypted => f.write_str("NOT encrypted"),
            Transport::Tls { protocol, mode } => write!(f, "encrypted ({protocol}, {mode})"),
        }
    }
}
