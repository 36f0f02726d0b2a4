//! A PostgreSQL server of a test's own with `wal_level = logical`, for
//! logical capture: the shared server keeps its own settings, and the
//! test needs no restart of anything it does not own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

pub struct LogicalPostgres {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
    settings: Vec<String>,
}

/// The newest installed server's binaries (Debian: /usr/lib/postgresql/N/bin).
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (scripts/test installs them)")
        .filter_map(|e| {
            let e = e.ok()?;
            Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL server under /usr/lib/postgresql").1
}

/// PostgreSQL refuses to run as root: as root, run it as the `postgres` user.
fn as_server_user(command: &mut Command, owned: &Path) {
    use std::os::unix::process::CommandExt;
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    let running_as_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if running_as_root {
        let (uid, gid) = (id("-u").expect("a postgres user"), id("-g").expect("a postgres group"));
        std::os::unix::fs::chown(owned, Some(uid), Some(gid)).expect("chown the server's directory");
        command.uid(uid).gid(gid);
    }
}

impl LogicalPostgres {
    pub fn start() -> LogicalPostgres {
        LogicalPostgres::start_with(&[], |_| {})
    }

    /// A server with these settings (`name=value`) on top of the usual ones.
    pub fn start_with_settings(settings: &[&str]) -> LogicalPostgres {
        LogicalPostgres::start_with(settings, |_| {})
    }

    /// A server that takes TLS connections only (Unix sockets aside), with
    /// `server.pem` from `certs`: a certificate for `localhost`.
    pub fn start_tls_only(certs: &crate::certs::TestCerts) -> LogicalPostgres {
        let settings = ["ssl=on", "ssl_cert_file=server.pem", "ssl_key_file=server.key", "ssl_ca_file=ca.pem"];
        LogicalPostgres::start_with(&settings, |data| {
            for name in ["server.pem", "server.key", "ca.pem", "expired.pem", "expired.key"] {
                std::fs::copy(certs.path(name), data.join(name)).unwrap();
                restrict(&data.join(name));
            }
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all certuser 127.0.0.1/32 cert\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n\
                 hostnossl all all 0.0.0.0/0 reject\nhostnossl all all ::/0 reject\n",
            )
            .unwrap();
        })
    }

    /// Swaps the server's certificate for `expired.pem` and reloads it.
    pub fn use_expired_certificate(&self) {
        let data = self.dir.path().join("data");
        std::fs::copy(data.join("expired.pem"), data.join("server.pem")).unwrap();
        std::fs::copy(data.join("expired.key"), data.join("server.key")).unwrap();
        // SIGHUP: the postmaster rereads its configuration and certificates.
        let signalled = Command::new("kill").args(["-HUP", &self.child.id().to_string()]).status();
        assert!(signalled.is_ok_and(|s| s.success()), "reload the server's configuration");
        std::thread::sleep(Duration::from_millis(500));
    }

    /// Runs SQL through the server's Unix socket (never refused, TLS or not).
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = Command::new(bin_dir().join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-h"])
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), "-d", database, "-c", sql])
            .output()
            .expect("run psql");
        assert!(out.status.success(), "psql: {}\n{sql}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn start_with(settings: &[&str], prepare: impl FnOnce(&Path)) -> LogicalPostgres {
        let dir = tempfile::tempdir().unwrap();
        let bin = bin_dir();
        let data = dir.path().join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb.args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "-D"]).arg(&data);
        as_server_user(&mut initdb, dir.path());
        let out = initdb.output().expect("run initdb");
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        prepare(&data);
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let settings: Vec<String> = settings.iter().map(|s| s.to_string()).collect();
        let child = spawn(dir.path(), port, &settings);
        let server = LogicalPostgres { dir, port, child, settings };
        server.wait_ready();
        server
    }

    /// Stops the server at once, as a crash or a failover does (its sessions
    /// die), keeps it down for `down`, and starts it again on the same port.
    pub fn restart(&mut self, down: Duration) {
        self.stop_now();
        std::thread::sleep(down);
        self.child = spawn(self.dir.path(), self.port, &self.settings);
        self.wait_ready();
    }

    /// Freezes the server and its sessions (SIGSTOP), as a paused VM or a
    /// hung disk does: connections stay open and nothing answers, not even a
    /// new connection's handshake. Thawed (SIGCONT) after `down`.
    pub fn freeze(&self, down: Duration) {
        let pid = self.child.id().to_string();
        let signal = |sig: &str| {
            // The sessions first, then the postmaster, so that none is started between.
            let _ = Command::new("pkill").args([sig, "-P", &pid]).status();
            let _ = Command::new("kill").args([sig, &pid]).status();
        };
        signal("-STOP");
        std::thread::sleep(down);
        signal("-CONT");
    }

    fn stop_now(&mut self) {
        // SIGQUIT: immediate shutdown, and the server ends its backends itself.
        let _ = Command::new("kill").args(["-QUIT", &self.child.id().to_string()]).status();
        for _ in 0..100 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait_ready(&self) {
        for _ in 0..300 {
            let ready = Command::new(bin_dir().join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("postgres did not start: {}", std::fs::read_to_string(self.dir.path().join("server.log")).unwrap());
    }

    /// `postgres://postgres@127.0.0.1:PORT`, without a database.
    pub fn server(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }
}

fn spawn(dir: &Path, port: u16, settings: &[String]) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log")).unwrap();
    let mut postgres = Command::new(bin_dir().join("postgres"));
    postgres
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-k")
        .arg(dir)
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c", "wal_level=logical"])
        .args(["-c", "max_replication_slots=4", "-c", "max_wal_senders=4", "-c", "fsync=off"])
        .args(["-c", "shared_buffers=32MB"])
        .args(settings.iter().flat_map(|s| ["-c", s.as_str()]))
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    as_server_user(&mut postgres, dir);
    postgres.spawn().expect("start postgres")
}

/// A key file the server reads: its own, and private (PostgreSQL checks both).
fn restrict(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut probe = Command::new("true");
    as_server_user(&mut probe, path);
}

impl Drop for LogicalPostgres {
    fn drop(&mut self) {
        self.stop_now();
    }
}
