//! A real PostgreSQL server on 127.0.0.1, in a directory of its own, started and stopped by
//! the tests. PostgreSQL refuses to run as root, so as root it runs as the `postgres` user the
//! Debian package creates.

use super::*;
use std::os::unix::process::CommandExt;

/// The directory of PostgreSQL's server binaries (`initdb`, `postgres`), the newest installed.
fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .filter(|bin| bin.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
        .pop()
        .expect("PostgreSQL's server binaries (scripts/test and .ci/run install them)")
}

/// Whether this process runs as root (then PostgreSQL runs as `postgres`).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// The `postgres` user's uid and gid.
fn server_user() -> (u32, u32) {
    let id = |flag: &str| {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u32>()
            .expect("a `postgres` user (the Debian package creates it)")
    };
    (id("-u"), id("-g"))
}

/// Makes `dir` the server user's, when this process is root.
fn give_to_server_user(dir: &Path) {
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir)
            .status()
            .expect("chown");
        assert!(status.success(), "chown of {}", dir.display());
    }
}

/// `program` with `args`, as `postgres` when this process is root.
fn as_server_user(program: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(program);
    command.args(args);
    if is_root() {
        let (uid, gid) = server_user();
        command.uid(uid).gid(gid);
    }
    command
}

/// A PostgreSQL server on a free port of 127.0.0.1, stopped and deleted when dropped.
pub struct Postgres {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
    /// Server settings beyond the tests' own (`name=value`, each given as `-c`).
    settings: Vec<String>,
    /// `postgres://tokenkit@127.0.0.1:<port>/postgres`.
    pub url: String,
}

impl Postgres {
    /// Initializes a database cluster in a scratch directory and starts it.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// [`Postgres::start`] with server settings of the caller's (`name=value`), such as
    /// `shared_preload_libraries=pg_stat_statements` for a benchmark that counts statements.
    pub fn start_with(settings: &[&str]) -> Self {
        static SERVERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = scratch(&format!("postgres-{n}"));
        let data = dir.join("data");
        give_to_server_user(&dir);
        let data_arg = data.to_string_lossy().into_owned();
        let out = as_server_user(
            &bin_dir().join("initdb"),
            &[
                "-D",
                &data_arg,
                "-A",
                "trust",
                "-U",
                "tokenkit",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )
        .stdout(Stdio::null())
        .output()
        .expect("initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut server = Self {
            child: None,
            dir,
            port,
            settings: settings.iter().map(|s| (*s).to_owned()).collect(),
            url: format!("postgres://tokenkit@127.0.0.1:{port}/postgres"),
        };
        server.run();
        server
    }

    /// A streaming replica of `primary` (`pg_basebackup -R`: a hot standby that follows its
    /// write-ahead log), started on a port of its own with `settings`. A primary whose
    /// `synchronous_standby_names` names it (`*`) waits for it at each commit.
    pub fn replica_of(primary: &Postgres, settings: &[&str]) -> Self {
        let dir = scratch(&format!("postgres-replica-{}", primary.port));
        give_to_server_user(&dir);
        let data = dir.join("data").to_string_lossy().into_owned();
        let primary_port = primary.port.to_string();
        let out = as_server_user(
            &bin_dir().join("pg_basebackup"),
            &[
                "-D",
                &data,
                "-h",
                "127.0.0.1",
                "-p",
                &primary_port,
                "-U",
                "tokenkit",
                "-X",
                "stream",
                "-R",
                "--no-sync",
            ],
        )
        .output()
        .expect("pg_basebackup");
        assert!(
            out.status.success(),
            "pg_basebackup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut replica = Self {
            child: None,
            dir,
            port,
            settings: settings.iter().map(|s| (*s).to_owned()).collect(),
            url: format!("postgres://tokenkit@127.0.0.1:{port}/postgres"),
        };
        replica.run();
        // Streaming once the primary says so.
        let deadline = Instant::now() + Duration::from_secs(30);
        while primary.psql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
            != "1"
        {
            assert!(Instant::now() < deadline, "the replica never streamed");
            std::thread::sleep(Duration::from_millis(20));
        }
        replica
    }

    /// Makes a replica the primary (`pg_promote`, waiting until it is done).
    pub fn promote(&self) {
        assert_eq!(self.psql("SELECT pg_promote(true, 60)"), "t", "promotion");
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn run(&mut self) {
        let data = self.dir.join("data").to_string_lossy().into_owned();
        let sockets = self.dir.to_string_lossy().into_owned();
        let port = self.port.to_string();
        let mut args = vec![
            "-D",
            &data,
            "-p",
            &port,
            "-k",
            &sockets,
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=200",
        ];
        for setting in &self.settings {
            args.extend(["-c", setting.as_str()]);
        }
        let child = as_server_user(&bin_dir().join("postgres"), &args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, with every backend in it: one signal stops the whole server.
            .process_group(0)
            .spawn()
            .expect("postgres");
        self.child = Some(child);
        // Up when it accepts a connection (the port opens before it finishes starting).
        let deadline = Instant::now() + Duration::from_secs(30);
        let ready = || {
            Command::new(bin_dir().join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &port, "-U", "tokenkit"])
                .status()
                .is_ok_and(|s| s.success())
        };
        while !ready() {
            assert!(
                Instant::now() < deadline,
                "postgres did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Postgres {
    /// Kills the server with SIGKILL (no shutdown: what a crash leaves).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the whole server, every backend with it (SIGSTOP to its process group): it keeps
    /// its connections but answers nothing.
    pub fn stop(&self) {
        self.signal_all("-STOP");
    }

    /// Lets a stopped server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal_all("-CONT");
    }

    fn signal_all(&self, signal: &str) {
        let pid = self.child.as_ref().expect("a running server").id();
        let status = Command::new("kill")
            .args([signal, "--", &format!("-{pid}")])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} -{pid}");
    }

    /// Starts the server again on the same port and data directory (crash recovery replays
    /// its write-ahead log).
    pub fn start_again(&mut self) {
        self.run();
    }

    /// How many lines of the server's log files (`logging_collector=on`,
    /// `log_directory=log`) contain `text`.
    pub fn log_lines(&self, text: &str) -> usize {
        let dir = self.dir.join("data").join("log");
        let files = std::fs::read_dir(&dir).map(|d| d.flatten().collect::<Vec<_>>());
        files
            .unwrap_or_default()
            .iter()
            .filter_map(|f| std::fs::read_to_string(f.path()).ok())
            .map(|log| log.lines().filter(|l| l.contains(text)).count())
            .sum()
    }

    /// A new, empty database on this server: its URL.
    pub fn database(&self, name: &str) -> String {
        self.psql(&format!("CREATE DATABASE \"{name}\""));
        format!("postgres://tokenkit@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs `statement` with `psql`, as the tests' superuser; panics if it fails.
    pub fn psql(&self, statement: &str) -> String {
        self.psql_at("postgres", statement)
    }

    /// [`Postgres::psql`] in the database `database`.
    pub fn psql_at(&self, database: &str, statement: &str) -> String {
        let url = format!("postgres://tokenkit@127.0.0.1:{}/{database}", self.port);
        let psql = bin_dir().join("psql");
        let psql = if psql.exists() {
            psql
        } else {
            PathBuf::from("psql")
        };
        let out = Command::new(psql)
            .args([
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &url,
                "-c",
                statement,
            ])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {statement:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGINT: PostgreSQL's fast shutdown.
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
