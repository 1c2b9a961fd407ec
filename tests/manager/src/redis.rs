//! A real Redis server (or cluster) on 127.0.0.1, started and stopped by the tests.

use super::*;

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server did not start on {port}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A `redis-server` on a free port of 127.0.0.1, stopped when dropped. Persistent ones keep an
/// append-only file (fsync on every write) in their own directory, so a restart loses nothing
/// Redis acknowledged.
pub struct Redis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    /// `redis://127.0.0.1:<port>/`.
    pub url: String,
}

impl Redis {
    /// Starts one without persistence. `redis-server` must be on the PATH (`scripts/test`
    /// and `.ci/run` install it).
    pub fn start() -> Self {
        Self::start_with("plain", &["--save", "", "--appendonly", "no"])
    }

    /// Starts one with the append-only file on, fsynced on every write.
    pub fn start_persistent() -> Self {
        Self::start_with(
            "aof",
            &[
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--enable-debug-command",
                "local",
            ],
        )
    }

    fn start_with(name: &str, extra: &[&str]) -> Self {
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        Self::start_configured(name, |_, _| extra.clone())
    }

    /// Starts one with the arguments `configure` gives for its port and data directory (where
    /// it may write files first): TLS, ACL users, replication.
    pub fn start_configured(name: &str, configure: impl FnOnce(u16, &Path) -> Vec<String>) -> Self {
        let port = free_port();
        let dir = scratch(&format!("redis-{name}-{port}"));
        let extra = configure(port, &dir);
        let mut redis = Self {
            child: None,
            port,
            dir,
            extra,
            url: format!("redis://127.0.0.1:{port}/"),
        };
        redis.spawn();
        redis
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (SIGSTOP): it keeps its connections but answers nothing.
    pub fn stop(&self) {
        signal(self.pid(), "-STOP");
    }

    /// Lets a stopped server go on (SIGCONT).
    pub fn resume(&self) {
        signal(self.pid(), "-CONT");
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server); scripts/test installs it");
        self.child = Some(child);
        wait_for_port(self.port);
    }

    /// Starts one that persists only by `SAVE` (an RDB snapshot, `dump.rdb`, loaded at start):
    /// no append-only file.
    pub fn start_snapshotting() -> Self {
        Self::start_with("rdb", &["--save", "", "--appendonly", "no"])
    }

    /// The server's data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes an RDB snapshot now and keeps a copy of it as `name`.
    pub fn snapshot(&self, name: &str) {
        let saved = self.cli(&["SAVE"]);
        assert!(saved.contains("OK"), "SAVE: {saved}");
        std::fs::copy(self.dir.join("dump.rdb"), self.dir.join(name)).expect("copy the snapshot");
    }

    /// Kills the server and starts it again on the snapshot kept as `name` (a restore from an
    /// older backup, or a replica promoted with older data).
    pub fn restart_from_snapshot(&mut self, name: &str) {
        self.kill();
        std::fs::copy(self.dir.join(name), self.dir.join("dump.rdb"))
            .expect("put the snapshot back");
        self.spawn();
    }

    /// Kills the server (SIGKILL, as a crash would), leaving its data directory.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data directory.
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// Runs `redis-cli` against this server; its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn signal(pid: u32, which: &str) {
    let status = Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {which} {pid}");
}

/// A three-master Redis Cluster on 127.0.0.1, made with `redis-server --cluster-enabled yes`
/// and `redis-cli --cluster create`; stopped when dropped.
pub struct RedisCluster {
    nodes: Vec<Redis>,
    /// `redis://127.0.0.1:<port>/` of every node.
    pub urls: Vec<String>,
}

impl RedisCluster {
    /// Starts three nodes and joins them into a cluster with every slot covered.
    pub fn start() -> Self {
        let nodes: Vec<Redis> = (0..3)
            .map(|i| {
                let port = free_port();
                Redis::start_with(
                    &format!("cluster{i}"),
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        &format!("nodes-{port}.conf"),
                        "--cluster-node-timeout",
                        "2000",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ],
                )
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while !nodes[0]
            .cli(&["cluster", "info"])
            .contains("cluster_state:ok")
        {
            assert!(
                Instant::now() < deadline,
                "the cluster did not become ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let urls = nodes.iter().map(|n| n.url.clone()).collect();
        Self { nodes, urls }
    }

    /// How many nodes hold at least one key.
    pub fn nodes_with_keys(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.cli(&["dbsize"]).trim().parse::<u64>().unwrap_or(0) > 0)
            .count()
    }
}
