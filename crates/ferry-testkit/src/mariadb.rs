//! A MariaDB server of a test's own, in a temporary directory, with a
//! row-based binary log: a replication primary or replica, or a source for
//! binlog capture. The shared server keeps its own settings.

use std::process::{Child, Command};
use std::time::Duration;

pub struct PrivateMariadb {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

impl PrivateMariadb {
    pub fn start(server_id: u32) -> PrivateMariadb {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // A temporary directory of its own: bootstraps running side by side
        // in the shared /tmp remove each other's temporary tables.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        // mariadbd refuses to run as root unless told to.
        let user: &[&str] = if running_as_root() { &["--user=root"] } else { &[] };
        let out = Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                &format!("--datadir={}", data.display()),
                &format!("--tmpdir={}", tmp.display()),
                "--auth-root-authentication-method=normal",
            ])
            .args(user)
            .output()
            .expect("mariadb-install-db (Debian package mariadb-server; scripts/test installs it)");
        assert!(out.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&out.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new("/usr/sbin/mariadbd")
            .arg("--no-defaults")
            .args(user)
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(format!("--log-bin={}", dir.path().join("bin").display()))
            .arg(format!("--server-id={server_id}"))
            .args(["--binlog-format=ROW", "--bind-address=127.0.0.1", "--skip-name-resolve"])
            .arg("--innodb-buffer-pool-size=16M")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start mariadbd");
        let server = PrivateMariadb { dir, port, child };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("mariadbd did not start: {}", std::fs::read_to_string(server.dir.path().join("server.log")).unwrap());
    }

    /// `mysql://root@127.0.0.1:PORT`, without a database.
    pub fn server(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    pub fn url(&self, database: &str) -> String {
        format!("{}/{database}", self.server())
    }

    pub async fn exec(&self, sql: &str) {
        use mysql_async::prelude::Queryable;
        let opts = mysql_async::Opts::from_url(&self.url("")).unwrap();
        let mut conn = mysql_async::Conn::new(opts).await.unwrap();
        conn.query_drop(sql).await.unwrap_or_else(|e| panic!("{e}\n{sql}"));
        let _ = conn.disconnect().await;
    }
}

impl Drop for PrivateMariadb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
