//! A loopback cluster of real processes, and helpers that make tests read like specs.

use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use exclave::coordinator::NodeClient;
use exclave::net::{Identity, TransportSettings, endpoint};

/// Path of a binary built by this workspace.
pub fn bin(name: &str) -> PathBuf {
    let exclaved = PathBuf::from(env!("CARGO_BIN_EXE_exclaved"));
    let path = exclaved.with_file_name(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace` first (./check does)",
        path.display()
    );
    path
}

/// A port on 127.0.0.1 the test bound at 0 (the kernel chose it, so nothing else had it) and
/// keeps bound for as long as it lives: each process started with it (`handing`) receives the
/// sockets and binds nothing itself, and a process restarted gets the same port again. No
/// port is ever checked and then bound, so no other test can take it in between.
pub struct Port {
    /// The port number.
    pub port: u16,
    sockets: Vec<std::os::fd::OwnedFd>,
}

impl Port {
    /// A listening TCP socket (an S3 or admin endpoint).
    pub fn tcp() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        Self {
            port: listener.local_addr().unwrap().port(),
            sockets: vec![listener.into()],
        }
    }

    /// UDP and TCP at one port number: a node (QUIC, and its admin API on the same number).
    pub fn node() -> Self {
        loop {
            let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
            let port = udp.local_addr().unwrap().port();
            if let Ok(tcp) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                return Self {
                    port,
                    sockets: vec![udp.into(), tcp.into()],
                };
            }
        }
    }

    /// 127.0.0.1 and the port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

/// `command` (not yet started) rewritten so that the process it starts receives `ports`'
/// sockets, by systemd's socket activation: they become its descriptors 3, 4, ...,
/// `LISTEN_FDS` counts them, and `LISTEN_PID` is set by a shell that then execs the command
/// (which keeps the process id). `ports` must still be open when the command is spawned.
pub fn handing(command: &Command, ports: &[&Port]) -> Command {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt as _;
    let fds: Vec<i32> = ports
        .iter()
        .flat_map(|p| p.sockets.iter().map(AsRawFd::as_raw_fd))
        .collect();
    assert!(fds.len() <= 16);
    let mut wrapped = Command::new("sh");
    wrapped
        .args(["-c", "LISTEN_PID=$$; export LISTEN_PID; exec \"$@\"", "sh"])
        .arg(command.get_program())
        .args(command.get_args())
        .env("LISTEN_FDS", fds.len().to_string());
    for (k, v) in command.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    let place = move || {
        // Moved above every target first, so that no source is overwritten before it is placed.
        let mut high = [0i32; 16];
        for (i, fd) in fds.iter().enumerate() {
            high[i] = unsafe_dup_above(*fd)?;
        }
        for (i, h) in high[..fds.len()].iter().enumerate() {
            unsafe_place(*h, 3 + i as i32)?;
        }
        Ok(())
    };
    // SAFETY: the closure runs between fork and exec and calls only fcntl, dup2 and close
    // (async-signal-safe) on descriptors this process holds; it allocates nothing.
    #[allow(unsafe_code)]
    unsafe {
        wrapped.pre_exec(place);
    }
    wrapped
}

/// `fcntl(fd, F_DUPFD, 100)`: a copy of `fd` at 100 or above.
#[allow(unsafe_code)]
fn unsafe_dup_above(fd: i32) -> std::io::Result<i32> {
    // SAFETY: fcntl on a descriptor number, no memory involved.
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD, 100) };
    if high < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(high)
}

/// `dup2(from, to)` (which clears close-on-exec on `to`), then `close(from)`.
#[allow(unsafe_code)]
fn unsafe_place(from: i32, to: i32) -> std::io::Result<()> {
    // SAFETY: dup2 and close on descriptor numbers, no memory involved.
    unsafe {
        if libc::dup2(from, to) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::close(from);
    }
    Ok(())
}

/// Whether a process serves at `addr` (TCP): a connection is accepted and answered (an HTTP
/// reply, or a TLS endpoint closing on plain text) within half a second. A socket handed over
/// by `Port` accepts connections while no process serves it, so connecting alone proves nothing.
pub fn serving(addr: SocketAddr) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut conn) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
    if conn
        .write_all(b"GET / HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut byte = [0u8; 1];
    match conn.read(&mut byte) {
        // A byte of a reply, or the end of a connection the server closed.
        Ok(0 | 1) => true,
        Ok(_) => unreachable!("one byte asked"),
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// Waits (bounded) until `serving(addr)`; fails the test with `log` if `child` exits first.
pub fn wait_serving(addr: SocketAddr, child: &mut Child, log: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !serving(addr) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `cp -a FROM TO`, which must succeed.
#[allow(dead_code)]
pub fn copy_dir(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap()
        .success();
    assert!(ok, "cp -a {} {}", from.display(), to.display());
}

/// `kill -SIGNAL pid`, which must succeed.
fn send_signal(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {pid}");
}

/// Runs a command to completion with a time bound.
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{cmd:?} took longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A cluster made by `exclave init`, with node processes.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub sites: Vec<String>,
    /// Each node's port (QUIC, and its admin API), held for the cluster's processes.
    node_ports: Vec<Port>,
    /// The gateway's S3 and admin ports, held likewise.
    s3_port: Port,
    admin_port: Port,
    nodes: Vec<Option<Child>>,
    /// Environment each node is started with (beyond its log level).
    node_env: Vec<Vec<(String, String)>>,
    gateway: Option<Child>,
    /// `RUST_LOG` of the processes started from now on.
    pub log_level: &'static str,
}

impl Cluster {
    /// `exclave init` for `sites` sites with profile k+m, S3 as plain HTTP on loopback.
    pub fn init(sites: usize, k: usize, m: usize) -> Self {
        Self::init_with(sites, k, m, &["--s3-plain-http"])
    }

    /// `exclave init` for `sites` sites with profile k+m and `s3_args` (TLS options).
    pub fn init_with(sites: usize, k: usize, m: usize, s3_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..sites)
            .map(|i| {
                if i == 0 {
                    "home".into()
                } else {
                    format!("site-{i}")
                }
            })
            .collect();
        let node_ports: Vec<Port> = (0..sites).map(|_| Port::node()).collect();
        let (s3_port, admin_port) = (Port::tcp(), Port::tcp());
        let listed: Vec<String> = node_ports.iter().map(|p| p.port.to_string()).collect();
        let out = run(
            Command::new(bin("exclave"))
                .args([
                    "init",
                    "--dir",
                    dir.path().join("c").to_str().unwrap(),
                    "--sites",
                    &names.join(","),
                    "--k",
                    &k.to_string(),
                    "--m",
                    &m.to_string(),
                    "--node-ports",
                    &listed.join(","),
                    "--s3-port",
                    &s3_port.port.to_string(),
                    "--admin-port",
                    &admin_port.port.to_string(),
                ])
                .args(s3_args),
            Duration::from_secs(30),
        );
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed = String::from_utf8_lossy(&out.stdout);
        for name in &names {
            let cmd = format!(
                "exclaved --config {}",
                dir.path()
                    .join("c")
                    .join("sites")
                    .join(name)
                    .join("node.toml")
                    .display()
            );
            assert!(
                printed.contains(&cmd),
                "init did not print `{cmd}`:\n{printed}"
            );
        }
        Self {
            dir,
            sites: names,
            node_ports,
            s3_port,
            admin_port,
            nodes: (0..sites).map(|_| None).collect(),
            node_env: (0..sites).map(|_| Vec::new()).collect(),
            gateway: None,
            log_level: "info",
        }
    }

    /// The gateway's S3 address (as `exclave init` set it).
    pub fn s3_addr(&self) -> SocketAddr {
        self.s3_port.addr()
    }

    /// The client credentials `exclave init` wrote: (access key id, secret).
    pub fn credentials(&self) -> (String, String) {
        let text = std::fs::read_to_string(self.root().join("credentials")).unwrap();
        let get = |name: &str| {
            text.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once('=')?;
                    (k.trim() == name).then(|| v.trim().to_owned())
                })
                .unwrap()
        };
        (get("aws_access_key_id"), get("aws_secret_access_key"))
    }

    /// An AWS SDK client of the gateway, making each request at most `attempts` times.
    #[allow(dead_code)]
    pub fn s3_client(&self, attempts: u32) -> aws_sdk_s3::Client {
        self.s3_client_at(self.s3_addr(), attempts)
    }

    /// An AWS SDK client of the S3 endpoint at `addr`, with this cluster's credentials.
    #[allow(dead_code)]
    pub fn s3_client_at(&self, addr: SocketAddr, attempts: u32) -> aws_sdk_s3::Client {
        let (access, secret) = self.credentials();
        s3_client_attempts(addr, &access, &secret, attempts)
    }

    /// An AWS SDK client of the gateway signing with the key (`access`, `secret`).
    #[allow(dead_code)]
    pub fn s3_client_as(&self, access: &str, secret: &str) -> aws_sdk_s3::Client {
        s3_client_with(self.s3_addr(), access, secret)
    }

    /// `exclave key create --name NAME`: the new key's (access key id, secret).
    #[allow(dead_code)]
    pub fn make_key(&self, name: &str) -> (String, String) {
        let out = self.exclave_cli(
            &["--json", "key", "create", "--name", name],
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "key create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            v["access_key_id"].as_str().unwrap().to_owned(),
            v["secret_access_key"].as_str().unwrap().to_owned(),
        )
    }

    /// `exclave bucket allow --key KEY --bucket BUCKET RIGHTS...` (`--read`, `--owner`, ...).
    #[allow(dead_code)]
    pub fn allow(&self, key: &str, bucket: &str, rights: &[&str]) {
        let mut args = vec!["bucket", "allow", "--key", key, "--bucket", bucket];
        args.extend_from_slice(rights);
        let out = self.exclave_cli(&args, Duration::from_secs(60));
        assert!(
            out.status.success(),
            "bucket allow: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Adds `lines` to the gateway config's `[gateway]` section (before it starts).
    #[allow(dead_code)]
    pub fn gateway_options(&self, lines: &str) {
        let cfg = self.root().join("gateway/gateway.toml");
        let text = std::fs::read_to_string(&cfg).unwrap();
        std::fs::write(
            &cfg,
            text.replace("[gateway]\n", &format!("[gateway]\n{lines}\n")),
        )
        .unwrap();
    }

    /// Runs `exclave --config <gateway config> ARGS` (bounded), from async code too.
    #[allow(dead_code)]
    pub fn exclave_cli(&self, args: &[&str], limit: Duration) -> Output {
        let mut cmd = Command::new(bin("exclave"));
        cmd.arg("--config")
            .arg(self.root().join("gateway/gateway.toml"))
            .args(args);
        match tokio::runtime::Handle::try_current() {
            Ok(_) => tokio::task::block_in_place(|| run(&mut cmd, limit)),
            Err(_) => run(&mut cmd, limit),
        }
    }

    /// SIGKILLs the gateway process.
    #[allow(dead_code)]
    pub fn kill_gateway(&mut self) {
        if let Some(mut g) = self.gateway.take() {
            let _ = g.kill();
            let _ = g.wait();
        }
    }

    /// SIGKILLs the gateway, deletes its index and starts it again: the index is rebuilt from
    /// the nodes.
    #[allow(dead_code)]
    pub fn restart_gateway_without_index(&mut self) {
        self.kill_gateway();
        std::fs::remove_file(self.root().join("gateway/state/index.redb")).unwrap();
        self.start_gateway();
    }

    /// Starts the gateway process and waits (bounded) until it accepts S3 connections.
    #[allow(dead_code)]
    pub fn start_gateway(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root().join("gateway").join("exclaved.log"))
            .unwrap();
        let mut command = Command::new(bin("exclaved"));
        command
            .args([
                "--config",
                self.root().join("gateway/gateway.toml").to_str().unwrap(),
            ])
            .env("RUST_LOG", self.log_level);
        let child = handing(&command, &[&self.s3_port, &self.admin_port])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let log = self.root().join("gateway/exclaved.log");
        let child = self.gateway.insert(child);
        // Its admin API, not S3: a probe there is not counted among S3 requests. S3 serves
        // from the same moment (a connection made a moment early waits in its queue).
        wait_serving(self.admin_port.addr(), child, &log, "the gateway");
    }

    /// The gateway's admin address and bearer token (from its config).
    #[allow(dead_code)]
    pub fn gateway_admin(&self) -> (SocketAddr, String) {
        let cfg = std::fs::read_to_string(self.root().join("gateway/gateway.toml")).unwrap();
        let addr = cfg
            .lines()
            .find_map(|l| l.strip_prefix("admin_listen = "))
            .unwrap()
            .trim_matches('"')
            .parse()
            .unwrap();
        let token = std::fs::read_to_string(self.root().join("gateway/admin.token")).unwrap();
        (addr, token.trim().to_owned())
    }

    /// Node `i`'s admin bearer token.
    #[allow(dead_code)]
    pub fn node_admin_token(&self, i: usize) -> String {
        let dir = self.root().join("sites").join(&self.sites[i]);
        std::fs::read_to_string(dir.join("admin.token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// `exclave status --json`, parsed (whatever its exit status says).
    #[allow(dead_code)]
    pub fn status_json(&self) -> serde_json::Value {
        let out = self.exclave_cli(&["status", "--json"], Duration::from_secs(60));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json: {e}: {out:?}"))
    }

    /// Polls `exclave status --json` until `done` holds for it; fails the test with the last
    /// status, saying `what` was awaited, after `limit`. Returns how long it took.
    #[allow(dead_code)]
    pub async fn wait_for_status(
        &self,
        limit: Duration,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> Duration {
        let started = Instant::now();
        loop {
            let v = self.status_json();
            if done(&v) {
                return started.elapsed();
            }
            assert!(started.elapsed() < limit, "{what}: {v:#}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `exclave heal --wait`, then `exclave status --json`; both must succeed (every object
    /// whole). Returns the heal report and the status.
    #[allow(dead_code)]
    pub fn heal_and_status(&self) -> (serde_json::Value, serde_json::Value) {
        let heal = self.exclave_cli(
            &["heal", "--wait", "--timeout", "240", "--json"],
            Duration::from_secs(300),
        );
        if !heal.status.success() {
            // What is left, to tell a stuck repair from a slow one.
            let status = self.exclave_cli(&["status", "--json"], Duration::from_secs(60));
            panic!(
                "heal: {}{}\nstatus: {}",
                String::from_utf8_lossy(&heal.stdout),
                String::from_utf8_lossy(&heal.stderr),
                String::from_utf8_lossy(&status.stdout)
            );
        }
        let status = self.exclave_cli(&["status", "--json"], Duration::from_secs(60));
        let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        assert!(status.status.success(), "{v:#}");
        (serde_json::from_slice(&heal.stdout).unwrap(), v)
    }

    /// The cluster directory.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("c")
    }

    pub fn node_config(&self, i: usize) -> PathBuf {
        self.root()
            .join("sites")
            .join(&self.sites[i])
            .join("node.toml")
    }

    pub fn node_addr(&self, i: usize) -> SocketAddr {
        self.node_ports[i].addr()
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        self.root()
            .join("sites")
            .join(&self.sites[i])
            .join("exclaved.log")
    }

    /// The data directory of site `i`: (disk id, path).
    #[allow(dead_code)]
    pub fn disk_of(&self, i: usize) -> (exclave::core::ids::DiskId, PathBuf) {
        let data = self.root().join("sites").join(&self.sites[i]).join("data");
        let d = std::fs::read_dir(&data).unwrap().flatten().next().unwrap();
        let name = d.file_name().to_string_lossy().into_owned();
        (
            exclave::core::ids::DiskId(name.trim_start_matches("disk-").parse().unwrap()),
            d.path(),
        )
    }

    /// Site `i` (its node stopped) loses everything but its identity: its disk's contents and
    /// its database. Returns its disk, for `disk_init`.
    #[allow(dead_code)]
    pub fn wipe_site(&self, i: usize) -> exclave::core::ids::DiskId {
        let (disk, path) = self.disk_of(i);
        let site_dir = self.root().join("sites").join(&self.sites[i]);
        std::fs::remove_dir_all(&path).unwrap();
        std::fs::remove_dir_all(site_dir.join("state")).unwrap();
        disk
    }

    /// `exclave disk init` of site `i`'s `disk` (the operator preparing a new, empty disk).
    #[allow(dead_code)]
    pub fn disk_init(&self, i: usize, disk: exclave::core::ids::DiskId) -> Output {
        run(
            Command::new(bin("exclave"))
                .arg("--config")
                .arg(self.node_config(i))
                .args(["disk", "init", "--disk", &disk.0.to_string()]),
            Duration::from_secs(30),
        )
    }

    /// Site `i`'s store, opened in this process (its node must not be running).
    #[allow(dead_code)]
    pub fn site_store(&self, i: usize) -> exclave::store::Store {
        let state = self.root().join("sites").join(&self.sites[i]).join("state");
        exclave::store::Store::open(&state, &[self.disk_of(i)], 8 << 20).unwrap()
    }

    /// Site `i`'s node database opened directly, as a host could (its node must not be
    /// running), and the table `name` of it (byte keys and values).
    #[allow(dead_code)]
    pub fn node_db(
        &self,
        i: usize,
        name: &'static str,
    ) -> (
        redb::Database,
        redb::TableDefinition<'static, &'static [u8], &'static [u8]>,
    ) {
        let path = self
            .root()
            .join("sites")
            .join(&self.sites[i])
            .join("state/node.redb");
        (
            redb::Database::open(&path).unwrap(),
            redb::TableDefinition::new(name),
        )
    }

    /// The manifest records site `i`'s node holds (its node must not be running).
    #[allow(dead_code)]
    pub fn manifest_count(&self, i: usize) -> usize {
        self.site_store(i)
            .list_manifests(None, usize::MAX)
            .unwrap()
            .len()
    }

    /// Starts node `i` as a process (stderr appended to its log).
    pub fn start_node(&mut self, i: usize) {
        self.spawn_node(i, Command::new(bin("exclaved")));
    }

    /// Waits (bounded) until node `i` serves (its admin API answers).
    #[allow(dead_code)]
    pub async fn wait_node_serving(&self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !serving(self.node_addr(i)) {
            assert!(Instant::now() < deadline, "site {i} did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `command` (exclaved as node `i`, not yet started) given node `i`'s port.
    #[allow(dead_code)]
    pub fn with_node_port(&self, i: usize, command: &Command) -> Command {
        handing(command, &[&self.node_ports[i]])
    }

    /// Runs `command` (exclaved, or what execs it) as node `i` with its config, its log level
    /// and stderr appended to its log.
    fn spawn_node(&mut self, i: usize, mut command: Command) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .unwrap();
        command
            .args(["--config", self.node_config(i).to_str().unwrap()])
            .envs(self.node_env[i].iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", self.log_level);
        let child = handing(&command, &[&self.node_ports[i]])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.nodes[i] = Some(child);
    }

    /// Starts node `i` with its data directory on a tmpfs of `bytes`, in a mount namespace of
    /// its own (`unshare`, as any user may): a disk that fills. What the directory holds is
    /// copied in first; what the node writes there is gone when it stops.
    #[allow(dead_code)]
    pub fn start_node_on_small_disk(&mut self, i: usize, bytes: u64) {
        let data = self.disk_of(i).1;
        let script = r#"set -e
keep=$(mktemp -d)
cp -a "$1/." "$keep/"
mount -t tmpfs -o size="$2" tmpfs "$1"
cp -a "$keep/." "$1/"
rm -rf "$keep"
shift 2
exec "$@""#;
        // unshare and sh each exec the next: the node keeps the process id started here.
        let mut command = Command::new("unshare");
        command
            .args(["--map-root-user", "--mount", "sh", "-c", script, "sh"])
            .arg(&data)
            .arg(bytes.to_string())
            .arg(bin("exclaved"));
        self.spawn_node(i, command);
    }

    /// Ends node `i` started on a small disk, keeping what it wrote there: the node is
    /// stopped, its data directory copied back from inside its mount namespace over the one
    /// on the large disk, and then killed. Started again, it has all of it.
    #[allow(dead_code)]
    pub fn free_small_disk(&mut self, i: usize) {
        let data = self.disk_of(i).1;
        let staging = data.with_extension("copy");
        let pid = self.node_pid(i).expect("the node runs");
        self.signal_node(i, "STOP");
        // Copied out from inside the node's namespaces (its disk is mounted there only) to a
        // sibling directory both see, then over the directory on the large disk.
        let copied = Command::new("nsenter")
            .args([
                "-t",
                &pid.to_string(),
                "-U",
                "-m",
                "--preserve-credentials",
                "cp",
                "-a",
            ])
            .arg(&data)
            .arg(&staging)
            .status()
            .unwrap();
        assert!(copied.success(), "copying node {i}'s small disk out failed");
        self.kill_node(i);
        std::fs::remove_dir_all(&data).unwrap();
        std::fs::rename(&staging, &data).unwrap();
    }

    /// Environment node `i` is started with from now on.
    #[allow(dead_code)]
    pub fn set_node_env(&mut self, i: usize, vars: &[(&str, &str)]) {
        self.node_env[i] = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }

    #[allow(dead_code)]
    /// The process id of node `i`, while it runs.
    pub fn node_pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].as_ref().map(Child::id)
    }

    /// The process id of the gateway, while it runs.
    #[allow(dead_code)]
    pub fn gateway_pid(&self) -> Option<u32> {
        self.gateway.as_ref().map(Child::id)
    }

    pub fn start_all(&mut self) {
        for i in 0..self.sites.len() {
            self.start_node(i);
        }
    }

    /// SIGKILLs node `i`.
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends a signal (`HUP`, ...) to the gateway's process.
    #[allow(dead_code)]
    pub fn signal_gateway(&mut self, signal: &str) {
        send_signal(self.gateway.as_ref().expect("gateway running").id(), signal);
    }

    /// An AWS SDK client of the gateway over TLS, trusting only the CA certificates in
    /// `ca_pem`.
    #[allow(dead_code)]
    pub fn s3_client_tls(&self, ca_pem: &[u8]) -> aws_sdk_s3::Client {
        use aws_sdk_s3::config::retry::RetryConfig;
        use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
        use aws_smithy_http_client::tls;
        let trust = tls::TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(ca_pem.to_vec());
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(
                tls::TlsContext::builder()
                    .with_trust_store(trust)
                    .build()
                    .unwrap(),
            )
            .build_https();
        let (access, secret) = self.credentials();
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(format!("https://{}", self.s3_addr()))
            .credentials_provider(Credentials::new(access, secret, None, None, "test"))
            .force_path_style(true)
            .http_client(http)
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// Sends a signal (`STOP`, `CONT`, ...) to node `i`'s process.
    pub fn signal_node(&mut self, i: usize, signal: &str) {
        send_signal(self.nodes[i].as_ref().expect("node running").id(), signal);
    }

    /// Whether node `i`'s process is still running.
    pub fn node_alive(&mut self, i: usize) -> bool {
        self.nodes[i]
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Lines of node `i`'s log containing `needle`.
    pub fn log_hits(&self, i: usize, needle: &str) -> usize {
        std::fs::read_to_string(self.log_path(i))
            .unwrap_or_default()
            .matches(needle)
            .count()
    }

    /// An identity from the files of `dir` (`gateway.pem` + `gateway.key`, or node files).
    pub fn identity(&self, cert: &Path, key: &Path) -> Identity {
        Identity::load(&self.root().join("ca.pem"), cert, key).unwrap()
    }

    pub fn gateway_identity(&self) -> Identity {
        let gw = self.root().join("gateway");
        self.identity(&gw.join("gateway.pem"), &gw.join("gateway.key"))
    }

    /// Clients of every node, through one endpoint holding `identity`.
    pub fn clients(&self, identity: &Identity) -> Vec<Arc<NodeClient>> {
        let ep = endpoint::endpoint(
            "127.0.0.1:0".parse().unwrap(),
            identity,
            &TransportSettings::loopback(),
            false,
        )
        .unwrap();
        (0..self.sites.len())
            .map(|i| {
                Arc::new(NodeClient::new(
                    ep.clone(),
                    self.node_addr(i),
                    &self.sites[i],
                ))
            })
            .collect()
    }

    /// Waits (bounded) until every started node answers a ping.
    pub async fn wait_ready(&self, clients: &[Arc<NodeClient>]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for (i, c) in clients.iter().enumerate() {
            if self.nodes[i].is_none() {
                continue;
            }
            loop {
                match c.ping().await {
                    Ok((_, site)) => {
                        assert_eq!(site, self.sites[i]);
                        break;
                    }
                    Err(e) if Instant::now() > deadline => panic!("node {i} not ready: {e}"),
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut g) = self.gateway.take() {
            let _ = g.kill();
            let _ = g.wait();
        }
        for i in 0..self.nodes.len() {
            self.kill_node(i);
        }
    }
}

/// Whether every site of a `status --json` answer is reachable.
#[allow(dead_code)]
pub fn all_reachable(status: &serde_json::Value) -> bool {
    status["sites"]
        .as_array()
        .is_some_and(|s| s.iter().all(|x| x["reachable"] == true))
}

/// Runs `test`, failing it if it takes longer than `secs` seconds: every test bounds its time.
pub async fn within<T>(secs: u64, test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), test)
        .await
        .unwrap_or_else(|_| panic!("test took longer than its {secs} s"))
}

/// The HTTP status of a failed S3 call (0 when no response came).
#[allow(dead_code)]
pub fn status<E>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> u16 {
    e.raw_response().map_or(0, |r| r.status().as_u16())
}

/// Turns `bucket`'s versioning on.
#[allow(dead_code)]
pub async fn enable_versioning(s3: &aws_sdk_s3::Client, bucket: &str) {
    use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// PUTs `data` as `bucket/key`; returns the ETag.
#[allow(dead_code)]
pub async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, data: &[u8]) -> String {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from(data.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"))
        .e_tag
        .unwrap()
}

/// GETs `bucket/key` whole.
#[allow(dead_code)]
pub async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

/// Whether `bucket/key` exists (HEAD: 200 or 404; anything else fails the test).
#[allow(dead_code)]
pub async fn exists(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> bool {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => true,
        Err(e) if status(&e) == 404 => false,
        Err(e) => panic!("head {key}: {e:?}"),
    }
}

/// The one seeded generator (SplitMix64), shared with the core's tests and the benches.
pub use exclave::core::rng::SplitMix as Rng;

/// PUTs `prefix-0`, `prefix-1`, ... of the given sizes (random bytes from `rng`) one after
/// another; returns key -> bytes.
#[allow(dead_code)]
pub async fn put_sized(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    sizes: impl IntoIterator<Item = usize>,
    rng: &mut Rng,
) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut model = std::collections::BTreeMap::new();
    for (i, n) in sizes.into_iter().enumerate() {
        let key = format!("{prefix}-{i}");
        let data = rng.bytes(n);
        s3.put_object()
            .bucket(bucket)
            .key(&key)
            .body(aws_sdk_s3::primitives::ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        model.insert(key, data);
    }
    model
}

/// A 3+2 cluster of five node processes and a gateway (with `gateway_options` added to its
/// config), started off the async runtime.
#[allow(dead_code)]
pub async fn started_cluster(gateway_options: &'static str) -> Cluster {
    started_cluster_logging(gateway_options, "info").await
}

/// `started_cluster` with every process logging at `log_level` (`RUST_LOG`).
#[allow(dead_code)]
pub async fn started_cluster_logging(
    gateway_options: &'static str,
    log_level: &'static str,
) -> Cluster {
    tokio::task::spawn_blocking(move || {
        let mut c = Cluster::init(5, 3, 2);
        c.log_level = log_level;
        c.gateway_options(gateway_options);
        c.start_all();
        c.start_gateway();
        c
    })
    .await
    .unwrap()
}

/// An AWS SDK client of the S3 endpoint at `addr` signing with (`access`, `secret`), making
/// each request at most `attempts` times.
pub fn s3_client_attempts(
    addr: SocketAddr,
    access: &str,
    secret: &str,
    attempts: u32,
) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::retry::RetryConfig;
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(format!("http://{addr}"))
        .credentials_provider(Credentials::new(access, secret, None, None, "test"))
        .force_path_style(true)
        .retry_config(RetryConfig::standard().with_max_attempts(attempts))
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// A client of `addr` signing with (`access`, `secret`), one attempt per request.
#[allow(dead_code)]
pub fn s3_client_with(addr: SocketAddr, access: &str, secret: &str) -> aws_sdk_s3::Client {
    s3_client_attempts(addr, access, secret, 1)
}

/// The HTTP status and S3 error code of a failed call.
#[allow(dead_code)]
pub fn code<E: aws_sdk_s3::error::ProvideErrorMetadata>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> (u16, String) {
    let meta = aws_sdk_s3::error::ProvideErrorMetadata::code(e)
        .unwrap_or("")
        .to_owned();
    (status(e), meta)
}
