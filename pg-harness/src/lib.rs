//! Throwaway PostgreSQL clusters for tests, started from the installed server binaries.
//!
//! - [`Cluster::start`] runs `initdb` into a fresh temporary directory and starts a server on a
//!   free loopback port with fsync off, as the `postgres` OS user when the tests run as root
//!   (PostgreSQL refuses to run as root). Dropping the cluster stops it and removes its files; a
//!   watchdog process does the same if the test process dies without dropping it (panic = abort,
//!   SIGKILL, or a shared cluster that lives in a `static`).
//! - [`test_database`] gives each test its own database on one cluster shared by the test
//!   process, or on the server named by `MIGRATE_TEST_DATABASE_URL` when that is set.
//!
//! This crate is for tests: it panics with a clear message when the environment is unusable.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Settings of a cluster beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Extra `postgresql.conf` lines, e.g. `ssl = on`.
    pub config: Vec<String>,
    /// Replaces the default `pg_hba.conf` (trust for everyone on loopback).
    pub hba: Option<String>,
    /// Files written into the data directory before start (e.g. a TLS key pair), owned by the
    /// server's user with mode 0600.
    pub files: Vec<(String, Vec<u8>)>,
    /// The directory the cluster's own directory is made in; the system's temporary directory
    /// when `None`. A benchmark puts its server in memory (`/dev/shm`) this way.
    pub parent_dir: Option<PathBuf>,
}

/// A running (or stopped) throwaway PostgreSQL server.
pub struct Cluster {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
    run_as_postgres: bool,
    running: bool,
    watchdog: Option<Child>,
}

fn running_as_root() -> bool {
    // The owner of /proc/self is the effective user of this process.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// The directory of the newest installed PostgreSQL server binaries, or `MIGRATE_PG_BIN`.
pub fn server_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MIGRATE_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin: install them (apt-get install -y postgresql) or set MIGRATE_PG_BIN"
        ),
    }
}

fn id_of(flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .expect("run `id`");
    assert!(
        out.status.success(),
        "the `postgres` OS user is missing: install the postgresql package"
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("numeric id")
}

/// A new empty directory under the system's temp dir, unique to this process.
fn fresh_dir(prefix: &str) -> PathBuf {
    fresh_dir_in(&std::env::temp_dir(), prefix)
}

fn fresh_dir_in(parent: &Path, prefix: &str) -> PathBuf {
    let dir = parent.join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Runs `script` in the background, detached from the test's output: the cleanup that must
/// happen even when the test process is killed.
fn spawn_watchdog(script: &str) -> Option<Child> {
    Command::new("sh")
        .args(["-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a loopback port")
}

impl Cluster {
    pub fn start() -> Cluster {
        Cluster::start_with(ClusterOptions::default())
    }

    pub fn start_with(options: ClusterOptions) -> Cluster {
        let bin = server_bin_dir();
        let run_as_postgres = running_as_root();
        let dir = match &options.parent_dir {
            Some(parent) => fresh_dir_in(parent, "migrate-pg"),
            None => fresh_dir("migrate-pg"),
        };
        let mut cluster = Cluster {
            dir,
            port: 0,
            bin,
            run_as_postgres,
            running: false,
            watchdog: None,
        };
        if run_as_postgres {
            std::os::unix::fs::chown(&cluster.dir, Some(id_of("-u")), Some(id_of("-g")))
                .expect("chown the cluster directory");
        }
        cluster.spawn_watchdog();
        let data = cluster.data_dir();
        cluster.run_checked(
            "initdb",
            &[
                "-D",
                data.to_str().expect("utf-8 temp path"),
                "--auth=trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        let mut conf = String::from(
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\nlisten_addresses = '127.0.0.1'\n",
        );
        conf.push_str(&format!(
            "unix_socket_directories = '{}'\n",
            cluster.dir.display()
        ));
        for line in &options.config {
            conf.push_str(line);
            conf.push('\n');
        }
        cluster.append_as_owner(&data.join("postgresql.conf"), &conf);
        if let Some(hba) = &options.hba {
            cluster.write_as_owner(&data.join("pg_hba.conf"), hba.as_bytes());
        }
        for (name, bytes) in &options.files {
            cluster.write_as_owner(&data.join(name), bytes);
        }
        cluster.start_server();
        cluster
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn owner_ids(&self) -> Option<(u32, u32)> {
        self.run_as_postgres.then(|| (id_of("-u"), id_of("-g")))
    }

    fn write_as_owner(&self, path: &Path, bytes: &[u8]) {
        std::fs::write(path, bytes).expect("write a cluster file");
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
        if let Some((uid, gid)) = self.owner_ids() {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown a cluster file");
        }
    }

    fn append_as_owner(&self, path: &Path, text: &str) {
        let mut current = std::fs::read(path).expect("read postgresql.conf");
        current.extend_from_slice(text.as_bytes());
        self.write_as_owner(path, &current);
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.run_as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    fn run_checked(&self, program: &str, args: &[&str]) {
        let out = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the cluster when this process is gone, however it ended.
    fn spawn_watchdog(&mut self) {
        let stop = self.command("pg_ctl");
        let mut stop_line: Vec<String> = vec![stop.get_program().to_string_lossy().into_owned()];
        stop_line.extend(stop.get_args().map(|a| a.to_string_lossy().into_owned()));
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} -D '{data}' -m immediate stop; rm -rf '{dir}'",
            pid = std::process::id(),
            stop = stop_line.join(" "),
            data = self.data_dir().display(),
            dir = self.dir.display(),
        );
        self.watchdog = spawn_watchdog(&script);
    }

    /// `pg_ctl start` on the current port; whether the server came up.
    fn pg_ctl_start(&self) -> bool {
        let data = self.data_dir();
        let log = self.dir.join("server.log");
        self.command("pg_ctl")
            .args([
                "-D",
                data.to_str().expect("utf-8 path"),
                "-l",
                log.to_str().expect("utf-8 path"),
                "-w",
                "-t",
                "60",
            ])
            .args(["-o", &format!("-p {}", self.port)])
            .arg("start")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run pg_ctl")
            .success()
    }

    fn start_server(&mut self) {
        for attempt in 0.. {
            if self.port == 0 || attempt > 0 {
                self.port = free_port();
            }
            if self.pg_ctl_start() {
                self.running = true;
                return;
            }
            // Another process may have taken the port between our probe and the server's bind.
            assert!(
                attempt < 3,
                "PostgreSQL did not start: {}",
                std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
            );
        }
    }

    /// Stops the server (fast shutdown) and keeps its data for [`Cluster::restart`].
    pub fn stop(&mut self) {
        if self.running {
            self.pg_ctl_stop("fast");
        }
    }

    /// Stops the server at once, as a crash would (`immediate` shutdown: no checkpoint).
    pub fn crash(&mut self) {
        if self.running {
            self.pg_ctl_stop("immediate");
        }
    }

    fn pg_ctl_stop(&mut self, mode: &str) {
        let data = self.data_dir();
        let _ = self
            .command("pg_ctl")
            .args([
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                mode,
                "-w",
                "-t",
                "60",
                "stop",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        self.running = false;
    }

    /// Starts the server again on the same port after [`Cluster::stop`].
    pub fn restart(&mut self) {
        if !self.running {
            assert!(self.pg_ctl_start(), "PostgreSQL did not restart");
            self.running = true;
        }
    }

    pub fn is_running(&self) -> bool {
        self.running
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's directory (data directory, socket and server log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A URL for `database` as the `postgres` superuser over loopback TCP.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, empty database on this cluster, dropped with the returned guard.
    pub fn create_database(&self) -> TestDatabase {
        TestDatabase::create(&self.url("postgres"), |name| self.url(name))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.crash();
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The cluster shared by every test of this process (started on first use).
pub fn shared_cluster() -> &'static Cluster {
    static SHARED: OnceLock<Cluster> = OnceLock::new();
    SHARED.get_or_init(Cluster::start)
}

/// One database for one test, dropped (with its connections) when the guard goes.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    fn create(admin_url: &str, url_for: impl Fn(&str) -> String) -> TestDatabase {
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = connect_with_retry(admin_url, Duration::from_secs(30));
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        TestDatabase {
            admin_url: admin_url.to_owned(),
            url: url_for(&name),
            name,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn client(&self) -> postgres::Client {
        connect_with_retry(&self.url, Duration::from_secs(30))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Connects, retrying while the server is starting up.
pub fn connect_with_retry(url: &str, budget: Duration) -> postgres::Client {
    let deadline = Instant::now() + budget;
    loop {
        match postgres::Client::connect(url, postgres::NoTls) {
            Ok(client) => return client,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("cannot connect to the test server: {e}"),
        }
    }
}

/// The URL of the server's maintenance database that [`test_database`] creates databases on:
/// `MIGRATE_TEST_DATABASE_URL` when set, else this process's shared throwaway cluster's.
pub fn server_url() -> String {
    match std::env::var("MIGRATE_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => shared_cluster().url("postgres"),
    }
}

/// A fresh database for one test: on `MIGRATE_TEST_DATABASE_URL`'s server when set (its user
/// must be allowed to create databases), else on this process's shared throwaway cluster.
pub fn test_database() -> TestDatabase {
    match std::env::var("MIGRATE_TEST_DATABASE_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            let base = admin_url.clone();
            TestDatabase::create(&admin_url, |name| replace_database(&base, name))
        }
        _ => shared_cluster().create_database(),
    }
}

/// `postgres://u@h:p/old?x` -> `postgres://u@h:p/new?x`.
fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    format!("{base}/{database}{query}")
}

/// A PgBouncer in front of a cluster, on its own loopback port, started by the test and
/// stopped on drop (a watchdog stops it if the test process dies). Every database of the
/// cluster is reachable through it under the same name.
pub struct Pgbouncer {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
    watchdog: Option<Child>,
}

impl Pgbouncer {
    /// `pool_mode` is `transaction` or `session`; `pool_size` is `default_pool_size`.
    pub fn start(cluster: &Cluster, pool_mode: &str, pool_size: u32) -> Pgbouncer {
        let dir = fresh_dir("migrate-pgb");
        let port = free_port();
        let ini = format!(
            "[databases]\n* = host=127.0.0.1 port={pg}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\nauth_type = trust\nauth_file = {dir}/userlist.txt\npool_mode = {pool_mode}\nmax_client_conn = 200\ndefault_pool_size = {pool_size}\nignore_startup_parameters = extra_float_digits,options\nadmin_users = postgres\nlogfile = {dir}/pgb.log\npidfile = {dir}/pgb.pid\n",
            pg = cluster.port(),
            dir = dir.display(),
        );
        std::fs::write(dir.join("pgbouncer.ini"), ini).expect("write pgbouncer.ini");
        std::fs::write(dir.join("userlist.txt"), "\"postgres\" \"\"\n")
            .expect("write userlist.txt");
        let as_postgres = running_as_root();
        if as_postgres {
            let (uid, gid) = (id_of("-u"), id_of("-g"));
            for path in [
                dir.clone(),
                dir.join("pgbouncer.ini"),
                dir.join("userlist.txt"),
            ] {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown");
            }
        }
        // setpriv execs pgbouncer in place (PgBouncer refuses root), so the child is PgBouncer.
        let mut command = if as_postgres {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "pgbouncer",
            ]);
            c
        } else {
            Command::new("pgbouncer")
        };
        let child = command
            .arg(dir.join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbouncer (apt-get install pgbouncer)");
        let script = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 0.5; done; kill -9 {pgb} 2>/dev/null; rm -rf '{dir}'",
            me = std::process::id(),
            pgb = child.id(),
            dir = dir.display()
        );
        let watchdog = spawn_watchdog(&script);
        let bouncer = Pgbouncer {
            dir,
            port,
            child: Some(child),
            watchdog,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not start: {}",
                std::fs::read_to_string(bouncer.dir.join("pgb.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        bouncer
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `database` through the pooler.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// PgBouncer's own log, for assertions and failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgb.log")).unwrap_or_default()
    }
}

impl Drop for Pgbouncer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_of_a_url() {
        assert_eq!(
            replace_database("postgres://u:p@h:5/db?sslmode=disable", "t1"),
            "postgres://u:p@h:5/t1?sslmode=disable"
        );
        assert_eq!(replace_database("postgres://h", "t1"), "postgres://h/t1");
    }
}
