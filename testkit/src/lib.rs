//! tickbridge-testkit: what the tests, benchmarks and the chaos runner
//! share, and nothing a production binary needs (it is only ever a
//! dev-dependency, except of the chaos runner, which is a test harness).
//!
//! * Private brokers for tests that must break them: a [`RabbitNode`] and an
//!   Apache Kafka [`KafkaNode`] on spare ports, with their own data
//!   directories, so that restarting or killing them never disturbs the
//!   shared stack on 5672/9092.
//! * [`loadgen`]: synthetic ticks, and publishers that send them the way
//!   the producer does (confirms, headers, keys).
//! * [`run_bounded`]: a child binary with a time limit, its output kept;
//!   [`proc`]: a child binary logging to a file, killed, terminated and
//!   awaited with a bound (the crash and restart tests).
//! * [`prom`]: scraping `/metrics` and reading one series from it.
//! * [`wait_until`], [`rand_name`], [`amqp_url`], [`kafka_brokers`]: the
//!   small helpers every integration test repeated.
//! * [`process_cpu`], [`host_cpu`]: CPU accounting for the benchmarks.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod fixtures;
pub mod loadgen;
pub mod proc;
pub mod prom;
pub mod readback;

pub use fixtures::{
    assert_topic_deleted_line, declare_queue, declared_pipeline, first_delivery, kafka_publish,
    kafka_topic, publish_confirmed, queue_depth, ticks, wait_until, SYMBOLS,
};

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A port on 127.0.0.1 that refuses connections for as long as this guard
/// lives. A socket is bound to it and never listens, so a connection gets
/// a reset at once (refused), and nothing else can take the port meanwhile.
/// A port from [`free_port`] is only free when it is returned: by the time
/// a test connects to it, another process (an Erlang CLI or distribution
/// listener of a RabbitMQ node, say) may be listening there, and a client
/// expecting "refused" then waits for a handshake that never comes.
pub struct ClosedPort {
    _socket: tokio::net::TcpSocket,
    /// The port number.
    pub port: u16,
}

/// Reserves a [`ClosedPort`].
pub fn closed_port() -> ClosedPort {
    let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind 127.0.0.1:0");
    let port = socket.local_addr().expect("bound address").port();
    ClosedPort {
        _socket: socket,
        port,
    }
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

fn wait_port(port: u16, open: bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if port_open(port) == open {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A RabbitMQ node of the test's own (`RABBITMQ_NODENAME`,
/// `RABBITMQ_NODE_PORT`, `RABBITMQ_DIST_PORT`, its own data directory).
pub struct RabbitNode {
    /// Erlang node name, `tb<random>@localhost`.
    pub node: String,
    /// AMQP port.
    pub port: u16,
    /// AMQPS (TLS) port, when started with [`RabbitNode::start_tls`].
    pub tls_port: Option<u16>,
    dist_port: u16,
    dir: PathBuf,
}

/// A throwaway certificate authority and a server certificate it signed,
/// made with the `openssl` command-line tool, for TLS tests. The server
/// certificate names `localhost` and `127.0.0.1`.
pub struct TestCa {
    /// CA certificate (PEM): what a client must trust.
    pub ca_cert: PathBuf,
    /// Server certificate (PEM), signed by the CA.
    pub server_cert: PathBuf,
    /// Server private key (PEM).
    pub server_key: PathBuf,
}

impl TestCa {
    /// Generates a CA and a server certificate into `dir` (created if
    /// missing). EC P-256 keys, valid for two days.
    pub fn generate(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let run = |args: &[&str]| -> Result<(), String> {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .map_err(|e| format!("cannot run openssl (apt-get install openssl): {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "openssl {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        let mut ca = vec!["req", "-x509", "-nodes", "-days", "2"];
        ca.extend_from_slice(&ec);
        ca.extend_from_slice(&[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=tickbridge test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        run(&ca)?;
        let mut csr = vec!["req", "-nodes"];
        csr.extend_from_slice(&ec);
        csr.extend_from_slice(&[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        run(&csr)?;
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .map_err(|e| e.to_string())?;
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ])?;
        Ok(TestCa {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
        })
    }
}

impl RabbitNode {
    /// Starts a fresh node and waits until it accepts AMQP connections.
    pub fn start() -> Result<Self, String> {
        Self::start_inner(false, |_| Ok(String::new()))
    }

    /// Like [`RabbitNode::start`], with more configuration: `setup` gets the
    /// node's private directory (files written there are readable by the
    /// node) and returns lines appended to its `rabbitmq.conf`.
    pub fn start_with(setup: impl FnOnce(&Path) -> Result<String, String>) -> Result<Self, String> {
        Self::start_inner(false, setup)
    }

    /// Starts a fresh node with a TLS listener on a spare port as well
    /// (`listeners.ssl.default`), its certificate signed by a fresh
    /// [`TestCa`] (see [`RabbitNode::ca_file`]). Peers are asked for a
    /// certificate but not required to send one (`verify_peer`,
    /// `fail_if_no_peer_cert = false`).
    pub fn start_tls() -> Result<Self, String> {
        Self::start_inner(true, |_| Ok(String::new()))
    }

    fn start_inner(
        tls: bool,
        setup: impl FnOnce(&Path) -> Result<String, String>,
    ) -> Result<Self, String> {
        let node = format!("tb{:08x}@localhost", rand::random::<u32>());
        let port = free_port();
        let dist_port = free_port();
        let dir =
            std::env::temp_dir().join(format!("tickbridge-rabbit-{}", node.replace('@', "-")));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("enabled_plugins"), "[].\n").map_err(|e| e.to_string())?;
        let mut conf = format!("listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n");
        let tls_port = if tls {
            let ca = TestCa::generate(&dir.join("tls"))?;
            let tls_port = free_port();
            conf.push_str(&format!(
                "listeners.ssl.default = 127.0.0.1:{tls_port}\n\
                 ssl_options.cacertfile = {}\n\
                 ssl_options.certfile = {}\n\
                 ssl_options.keyfile = {}\n\
                 ssl_options.verify = verify_peer\n\
                 ssl_options.fail_if_no_peer_cert = false\n",
                ca.ca_cert.display(),
                ca.server_cert.display(),
                ca.server_key.display()
            ));
            Some(tls_port)
        } else {
            None
        };
        conf.push_str(&setup(&dir)?);
        std::fs::write(dir.join("rabbitmq.conf"), conf).map_err(|e| e.to_string())?;
        // Debian's wrapper runs the node as the `rabbitmq` user.
        if is_root() {
            let _ = Command::new("chown")
                .args(["-R", "rabbitmq:rabbitmq"])
                .arg(&dir)
                .status();
        }
        let n = RabbitNode {
            node,
            port,
            tls_port,
            dist_port,
            dir,
        };
        n.boot()?;
        Ok(n)
    }

    /// AMQP URL of this node.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// AMQPS URL of this node's TLS listener (host `localhost`, which the
    /// server certificate names), if it has one.
    pub fn amqps_url(&self) -> Option<String> {
        self.tls_port
            .map(|p| format!("amqps://guest:guest@localhost:{p}/%2f"))
    }

    /// The CA certificate (PEM) that signed the TLS listener's certificate.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.tls_port.map(|_| self.dir.join("tls").join("ca.pem"))
    }

    fn env(&self, cmd: &mut Command) {
        let d = &self.dir;
        cmd.env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq"))
            .env("RABBITMQ_PID_FILE", d.join("pid"));
    }

    fn boot(&self) -> Result<(), String> {
        let mut cmd = Command::new("rabbitmq-server");
        self.env(&mut cmd);
        cmd.arg("-detached")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let st = cmd.status().map_err(|e| {
            format!("cannot run rabbitmq-server (install it: scripts/stack.sh up): {e}")
        })?;
        if !st.success() {
            return Err(format!("rabbitmq-server -detached exited with {st}"));
        }
        let mut ports = vec![self.port];
        ports.extend(self.tls_port);
        if !ports
            .iter()
            .all(|p| wait_port(*p, true, Duration::from_secs(90)))
        {
            return Err(format!(
                "test RabbitMQ node {} did not open ports {ports:?} in 90s (logs in {})",
                self.node,
                self.dir.join("log").display()
            ));
        }
        Ok(())
    }

    /// Stops the node gracefully and waits for its port to close.
    pub fn stop(&self) {
        let _ = Command::new("rabbitmqctl")
            .args(["-n", &self.node, "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        wait_port(self.port, false, Duration::from_secs(30));
    }

    /// Stops and starts the node again (same data directory, same ports).
    pub fn restart(&self) -> Result<(), String> {
        self.stop();
        self.boot()
    }

    /// The node's operating-system process id (the Erlang VM), from the pid
    /// file the node writes once it runs: benchmarks and the soak read its
    /// memory and CPU from `/proc`. `None` until the file is written.
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("pid"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
    }

    /// Number of messages ready in a queue, via `rabbitmqctl`.
    pub fn queue_depth(&self, queue: &str) -> Option<u64> {
        let out = Command::new("rabbitmqctl")
            .args(["-n", &self.node, "-q", "list_queues", "name", "messages"])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let mut it = l.split_whitespace();
            (it.next()? == queue).then(|| it.next()?.parse().ok())?
        })
    }
}

impl Drop for RabbitNode {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An Apache Kafka broker of the test's own: a single KRaft node (broker and
/// controller in one JVM) on spare ports, with its log directory in a
/// directory of its own. It is started by `scripts/kafka.sh`, from the jars
/// that `scripts/stack.sh up` (or `scripts/kafka.sh install`) fetched.
///
/// [`KafkaNode::kill`] is a SIGKILL of the JVM and [`KafkaNode::restart`]
/// starts it again on the same ports and the same log: the broker-restart
/// fault of the tests and the chaos suite. The shared broker on 9092 is
/// never touched.
pub struct KafkaNode {
    /// Kafka (client) port.
    pub port: u16,
    controller_port: u16,
    dir: PathBuf,
    child: Option<Child>,
    opts: KafkaNodeOptions,
}

/// How a [`KafkaNode`] is started, beyond the defaults of
/// [`KafkaNode::start`].
#[derive(Debug, Clone, Default)]
pub struct KafkaNodeOptions {
    /// The JVM's `KAFKA_HEAP_OPTS`. `None`: `TEST_KAFKA_HEAP_OPTS`, or
    /// `-Xms128m -Xmx512m`. A long soak keeps more records than a test.
    pub heap_opts: Option<String>,
    /// Start the JVM in a process group of its own, so a Ctrl-C at the
    /// terminal reaches the parent only, and the parent can stop its
    /// clients before the broker. Only for a parent that handles the signal
    /// and drops the node: otherwise the broker outlives it.
    pub own_process_group: bool,
}

/// `scripts/kafka.sh` of this workspace (`TICKBRIDGE_KAFKA_SH` overrides).
pub fn kafka_script() -> PathBuf {
    std::env::var_os("TICKBRIDGE_KAFKA_SH")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka.sh"))
}

impl KafkaNode {
    /// Formats a fresh log directory and starts the broker, waiting until it
    /// answers a metadata request (its port opens before it serves). The
    /// JVM's heap is `TEST_KAFKA_HEAP_OPTS`, or `-Xms128m -Xmx512m`.
    pub fn start() -> Result<Self, String> {
        Self::start_inner(KafkaNodeOptions::default())
    }

    /// Like [`KafkaNode::start`], with [`KafkaNodeOptions`] (kept across
    /// [`KafkaNode::restart`]).
    pub fn start_with(opts: KafkaNodeOptions) -> Result<Self, String> {
        Self::start_inner(opts)
    }

    fn start_inner(opts: KafkaNodeOptions) -> Result<Self, String> {
        let port = free_port();
        let controller_port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "tickbridge-kafka-{port}-{:08x}",
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let out = Command::new(kafka_script())
            .arg("init")
            .arg(&dir)
            .arg(port.to_string())
            .arg(controller_port.to_string())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                format!(
                    "cannot run {} (a fresh clone needs scripts/stack.sh up first): {e}",
                    kafka_script().display()
                )
            })?;
        if !out.status.success() {
            return Err(format!(
                "scripts/kafka.sh init failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let mut b = KafkaNode {
            port,
            controller_port,
            dir,
            child: None,
            opts,
        };
        b.boot()?;
        Ok(b)
    }

    /// Bootstrap address.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker JVM's process id, while it runs (benchmarks read its CPU
    /// time from `/proc`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The broker's log file.
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("kafka.log")
    }

    fn boot(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_file())
            .map_err(|e| e.to_string())?;
        // `kafka.sh exec` replaces itself with the JVM, so this child is the
        // broker and a kill reaches it.
        let mut cmd = Command::new(kafka_script());
        cmd.arg("exec")
            .arg(&self.dir)
            .env(
                "KAFKA_HEAP_OPTS",
                self.opts.heap_opts.clone().unwrap_or_else(|| {
                    std::env::var("TEST_KAFKA_HEAP_OPTS")
                        .unwrap_or_else(|_| "-Xms128m -Xmx512m".into())
                }),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        if self.opts.own_process_group {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", kafka_script().display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!(
                    "test Kafka on port {} exited during startup with {status}: {}",
                    self.port,
                    log_tail(&self.log_file(), 15)
                ));
            }
            if port_open(self.port) && metadata_answers(&self.brokers()) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!(
            "test Kafka did not answer a metadata request on port {} within 90s (log {}): {}",
            self.port,
            self.log_file().display(),
            log_tail(&self.log_file(), 15)
        ))
    }

    /// Kills the broker JVM (SIGKILL) and waits for it and its ports.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        wait_port(self.port, false, Duration::from_secs(10));
        wait_port(self.controller_port, false, Duration::from_secs(10));
    }

    /// Kills and starts again on the same ports and log directory.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.boot()
    }
}

impl Drop for KafkaNode {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// True when a broker at `brokers` answers a metadata request with at least
/// one broker in it.
fn metadata_answers(brokers: &str) -> bool {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: Result<BaseConsumer, _> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("socket.connection.setup.timeout.ms", "1000")
        .set("log_level", "0")
        .create();
    consumer
        .and_then(|c| c.fetch_metadata(None, Duration::from_secs(2)))
        .map(|m| !m.brokers().is_empty())
        .unwrap_or(false)
}

/// The last `n` lines of a log file, for failure messages.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The whole machine's CPU time so far, from the first line of
/// `/proc/stat`: (busy, stolen by the hypervisor, total), in clock ticks.
/// Benchmarks read it before and after a sample to say how busy the
/// machine was while they measured ([`host_share`]).
pub fn host_cpu() -> Option<[u64; 3]> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is already
    // inside user and nice).
    let total: u64 = v.iter().take(8).sum();
    let (idle, steal) = (v.get(3)? + v.get(4)?, *v.get(7)?);
    Some([total - idle - steal, steal, total])
}

/// CPU time this process has used so far (user + system, every thread,
/// librdkafka's and lapin's included), from `/proc/self/stat`. Clock ticks
/// are taken as 10 ms (`CLK_TCK` = 100, the Linux default), so a sample
/// should cover at least a few seconds of work.
pub fn process_cpu() -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(std::time::Duration::from_millis(ticks * 10))
}

/// This process's CPU time per message since `before` (a [`process_cpu`]
/// reading), in microseconds; `None` without a reading or without messages.
pub fn cpu_us_per_msg(before: Option<std::time::Duration>, n: u64) -> Option<f64> {
    let used = process_cpu()?.checked_sub(before?)?;
    (n > 0).then(|| used.as_secs_f64() * 1e6 / n as f64)
}

/// Busy and stolen shares of the machine's CPU between two [`host_cpu`]
/// readings, in percent.
pub fn host_share(before: Option<[u64; 3]>, after: Option<[u64; 3]>) -> Option<(f64, f64)> {
    let (b, a) = (before?, after?);
    let total = a[2].checked_sub(b[2]).filter(|&t| t > 0)? as f64;
    Some((
        (a[0] - b[0]) as f64 * 100.0 / total,
        (a[1] - b[1]) as f64 * 100.0 / total,
    ))
}

/// AMQP URL of the shared test broker: `AMQP_URL`, or the local stack's.
pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://127.0.0.1:5672/%2f".into())
}

/// Bootstrap servers of the shared test broker: `KAFKA_BROKERS`, or the
/// local stack's.
pub fn kafka_brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// A fresh queue, topic or group name, so test runs never see each other's
/// data.
pub fn rand_name(prefix: &str) -> String {
    format!("{prefix}-{:012x}", rand::random::<u64>() >> 16)
}

/// What a binary run by [`run_bounded`] did.
#[derive(Debug)]
pub struct BoundedRun {
    /// Exit code; `None` if it was killed because it ran past the limit.
    pub code: Option<i32>,
    /// How long it ran.
    pub elapsed: Duration,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl BoundedRun {
    /// Exited by itself within the limit, with a non-zero code.
    pub fn failed_fast(&self) -> bool {
        matches!(self.code, Some(c) if c != 0)
    }

    /// The lines of stderr that start with `prefix` (a binary's own error
    /// line is `<name>: ...`; log lines start otherwise).
    pub fn error_lines(&self, prefix: &str) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }

    /// Lines lapin logs itself (`ERROR io_loop: lapin::channels: Connection
    /// error ...`), in text or JSON format: a binary's own error line must
    /// come without them.
    pub fn lapin_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.contains("lapin::") || l.contains("io_loop") || l.contains("\"lapin"))
            .collect()
    }

    /// The checks every binary's fail-fast cases share: it exited non-zero
    /// within `limit`, `secret` (the password of the case's URLs) is nowhere
    /// on stderr, exactly one line starts with one of `prefixes` (the
    /// binary's own `<name>:` and, for bad flags, clap's `error:`), that
    /// line holds each of `words`, and lapin logged nothing of its own.
    /// `ctx` names the case in every failure.
    pub fn assert_one_error_line(
        &self,
        limit: Duration,
        secret: &str,
        prefixes: &[&str],
        words: &[&str],
        ctx: &str,
    ) {
        assert!(self.failed_fast() && self.elapsed < limit, "{ctx}");
        assert!(!self.stderr.contains(secret), "password leaked: {ctx}");
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| prefixes.iter().any(|p| l.starts_with(p)))
            .collect();
        assert_eq!(lines.len(), 1, "one error line expected: {ctx}");
        assert_eq!(self.lapin_lines(), Vec::<&str>::new(), "{ctx}");
        for word in words {
            assert!(lines[0].contains(word), "{word:?} missing: {ctx}");
        }
    }
}

/// `url` with its user and password replaced, for tests that need wrong
/// credentials (or a secret to look for in the output).
pub fn with_password(url: &str, user: &str, pw: &str) -> String {
    let mut u = url::Url::parse(url).expect("a valid URL");
    u.set_username(user).expect("URL takes a user");
    u.set_password(Some(pw)).expect("URL takes a password");
    u.to_string()
}

/// Runs `cmd` to completion, killing it if it runs longer than `limit`, so a
/// test of "fails fast" can never hang itself.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> BoundedRun {
    use std::io::Read;
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the binary under test");
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let code = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code(),
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => break None,
        }
    };
    let elapsed = started.elapsed();
    BoundedRun {
        code,
        elapsed,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// A lapin error as RabbitMQ's close with `ACCESS_REFUSED` produces it, for
/// the tests that check every crate treats it as terminal.
pub fn access_refused() -> lapin::Error {
    use lapin::protocol::{AMQPError, AMQPErrorKind, AMQPSoftError};
    lapin::ErrorKind::ProtocolError(AMQPError::new(
        AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED),
        "ACCESS_REFUSED - access to queue 'q' in vhost '/' refused".into(),
    ))
    .into()
}

/// A lapin I/O error (a connection reset), which is always worth a retry.
pub fn connection_reset() -> lapin::Error {
    lapin::ErrorKind::IOError(std::sync::Arc::new(std::io::Error::from(
        std::io::ErrorKind::ConnectionReset,
    )))
    .into()
}
