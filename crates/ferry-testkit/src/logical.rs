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
        let dir = tempfile::tempdir().unwrap();
        let bin = bin_dir();
        let data = dir.path().join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb.args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "-D"]).arg(&data);
        as_server_user(&mut initdb, dir.path());
        let out = initdb.output().expect("run initdb");
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let mut postgres = Command::new(bin.join("postgres"));
        postgres
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(dir.path())
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c", "wal_level=logical"])
            .args(["-c", "max_replication_slots=4", "-c", "max_wal_senders=4", "-c", "fsync=off"])
            .args(["-c", "shared_buffers=32MB"])
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        as_server_user(&mut postgres, dir.path());
        let child = postgres.spawn().expect("start postgres");
        let server = LogicalPostgres { dir, port, child };
        for _ in 0..300 {
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return server;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("postgres did not start: {}", std::fs::read_to_string(server.dir.path().join("server.log")).unwrap());
    }

    /// `postgres://postgres@127.0.0.1:PORT`, without a database.
    pub fn server(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }
}

impl Drop for LogicalPostgres {
    fn drop(&mut self) {
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
}
