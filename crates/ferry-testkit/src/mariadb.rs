//! A MariaDB server of a test's own, in a temporary directory, with a
//! row-based binary log: a replication primary or replica, or a source for
//! binlog capture. The shared server keeps its own settings.

use std::process::{Child, Command};
use std::time::Duration;

pub struct PrivateMariadb {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
    /// Takes TLS connections only.
    tls: bool,
    /// How the server was started, to start it again.
    args: Vec<String>,
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

impl PrivateMariadb {
    pub fn start(server_id: u32) -> PrivateMariadb {
        PrivateMariadb::start_with(server_id, None)
    }

    /// A server that takes TLS connections only, with `server.pem` from
    /// `certs`: a certificate for `localhost`.
    pub fn start_tls_only(server_id: u32, certs: &crate::certs::TestCerts) -> PrivateMariadb {
        PrivateMariadb::start_with(server_id, Some(certs))
    }

    /// Swaps the server's certificate for `expired.pem` and reloads it.
    pub async fn use_expired_certificate(&self) {
        for (from, to) in [("expired.pem", "server.pem"), ("expired.key", "server.key")] {
            std::fs::copy(self.dir.path().join(from), self.dir.path().join(to)).unwrap();
        }
        self.exec("FLUSH SSL").await;
    }

    fn start_with(server_id: u32, certs: Option<&crate::certs::TestCerts>) -> PrivateMariadb {
        let dir = tempfile::tempdir().unwrap();
        let mut tls_args = Vec::new();
        if let Some(certs) = certs {
            for name in ["server.pem", "server.key", "ca.pem", "expired.pem", "expired.key"] {
                std::fs::copy(certs.path(name), dir.path().join(name)).unwrap();
            }
            let file = |name: &str| dir.path().join(name).display().to_string();
            tls_args = vec![
                format!("--ssl-ca={}", file("ca.pem")),
                format!("--ssl-cert={}", file("server.pem")),
                format!("--ssl-key={}", file("server.key")),
                "--require-secure-transport=ON".to_string(),
            ];
        }
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
        let mut args: Vec<String> = vec!["--no-defaults".into()];
        args.extend(user.iter().map(|u| u.to_string()));
        args.extend([
            format!("--datadir={}", data.display()),
            format!("--tmpdir={}", tmp.display()),
            format!("--port={port}"),
            format!("--socket={}", dir.path().join("sock").display()),
            format!("--pid-file={}", dir.path().join("pid").display()),
            format!("--log-bin={}", dir.path().join("bin").display()),
            format!("--server-id={server_id}"),
            "--binlog-format=ROW".into(),
            "--bind-address=127.0.0.1".into(),
            "--skip-name-resolve".into(),
            "--innodb-buffer-pool-size=16M".into(),
        ]);
        args.extend(tls_args);
        let child = spawn(dir.path(), &args);
        let server = PrivateMariadb { dir, port, child, tls: certs.is_some(), args };
        server.wait_ready();
        server
    }

    /// Kills the server (as a crash does: its sessions die), keeps it down
    /// for `down`, and starts it again on the same port.
    pub fn restart(&mut self, down: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down);
        self.child = spawn(self.dir.path(), &self.args);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("mariadbd did not start: {}", std::fs::read_to_string(self.dir.path().join("server.log")).unwrap());
    }

    /// `mysql://root@127.0.0.1:PORT`, without a database.
    pub fn server(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    pub fn url(&self, database: &str) -> String {
        format!("{}/{database}", self.server())
    }

    /// Waits until `SHOW SLAVE HOSTS` lists `n` replicas: a replica
    /// registers when its I/O thread connects, a moment after `START SLAVE`,
    /// and a primary that lists none yet has no replica to throttle on.
    pub async fn wait_for_replicas(&self, n: usize) {
        use mysql_async::prelude::Queryable;
        let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&self.url("")).unwrap()).await.unwrap();
        for _ in 0..300 {
            let hosts: Vec<mysql_async::Row> = conn.query("SHOW SLAVE HOSTS").await.unwrap();
            if hosts.len() >= n {
                let _ = conn.disconnect().await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the primary on port {} lists fewer than {n} replicas after 30 s", self.port);
    }

    pub async fn exec(&self, sql: &str) {
        use mysql_async::prelude::Queryable;
        // The test's own connection encrypts without checking: what Ferry checks is under test.
        let params = if self.tls { "?require_ssl=true&verify_ca=false&verify_identity=false" } else { "" };
        let opts = mysql_async::Opts::from_url(&format!("{}{params}", self.url(""))).unwrap();
        let mut conn = mysql_async::Conn::new(opts).await.unwrap();
        conn.query_drop(sql).await.unwrap_or_else(|e| panic!("{e}\n{sql}"));
        let _ = conn.disconnect().await;
    }
}

fn spawn(dir: &std::path::Path, args: &[String]) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log")).unwrap();
    Command::new("/usr/sbin/mariadbd")
        .args(args)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start mariadbd")
}

impl Drop for PrivateMariadb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
