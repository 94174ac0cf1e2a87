//! The whole product on loopback: a private CA, a demo user, a gateway and an agent process,
//! and headless viewer runs against them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::procs::{bin, descendants, wait_for, Child};

/// The demo user the stack creates.
pub const USER: &str = "yamada";
/// Its password.
pub const PASSWORD: &str = "e2e-パスワード-1";

/// A TOML table from `(key, value)` pairs; values are serialized, never spliced into text.
pub fn table<const N: usize>(entries: [(&str, toml::Value); N]) -> toml::Table {
    entries
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// A TOML string value.
pub fn s(v: impl Into<String>) -> toml::Value {
    toml::Value::String(v.into())
}

/// Write `config` as TOML to `path`.
pub fn write_toml(path: &Path, config: &toml::Table) {
    let text = toml::to_string(config).expect("serialize TOML");
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Merge `extra` into `base`, table by table (`extra` wins).
fn merge(base: &mut toml::Table, extra: toml::Table) {
    for (k, v) in extra {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(e)) => merge(b, e),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// A running gateway + agent, with everything in a temporary directory.
pub struct Stack {
    /// Working directory (PKI, configs, logs, audit log).
    pub dir: TempDir,
    /// The viewer listener address.
    pub viewer_addr: String,
    /// The admin (metrics) address.
    pub admin_addr: String,
    /// The agent listener address.
    pub agent_addr: String,
    /// Gateway process.
    pub gateway: Child,
    /// Agent process (None when the test brings its own agent).
    pub agent: Option<Child>,
}

/// A second gateway of a [`Stack`] (stopped when dropped).
pub struct OtherGateway {
    /// Its viewer listener.
    pub viewer_addr: String,
    /// Its admin listener.
    pub admin_addr: String,
    /// Its agent listener.
    pub agent_addr: String,
    /// The process.
    pub child: Child,
}

impl OtherGateway {
    /// Stop it with SIGTERM (as an upgrade does) and start it again on the same addresses.
    pub fn restart(&mut self, stack: &Stack) {
        let addrs = [&self.agent_addr, &self.viewer_addr, &self.admin_addr];
        restart_gateway(stack.dir.path(), "gateway-2", &mut self.child, addrs);
    }

    /// Its Prometheus metrics text.
    pub fn metrics(&self) -> String {
        http_get(&self.admin_addr, "/metrics").unwrap_or_default()
    }
}

/// A headless viewer running in the background.
#[derive(Debug)]
pub struct RunningViewer {
    child: std::process::Child,
    report: PathBuf,
    stderr: PathBuf,
    snapshots: PathBuf,
}

impl RunningViewer {
    /// Wait for it to exit and read its report.
    pub fn wait(mut self) -> ViewerRun {
        let status = self.child.wait().expect("wait for the viewer");
        let report = std::fs::read_to_string(&self.report)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(Value::Null);
        ViewerRun {
            code: status.code(),
            report,
            stderr: std::fs::read_to_string(&self.stderr).unwrap_or_default(),
            snapshots: self.snapshots,
        }
    }
}

/// What a headless viewer run produced.
#[derive(Debug)]
pub struct ViewerRun {
    /// Exit code.
    pub code: Option<i32>,
    /// The JSON report (Null if none was written).
    pub report: Value,
    /// stderr.
    pub stderr: String,
    /// Snapshot directory.
    pub snapshots: PathBuf,
}

impl ViewerRun {
    /// Panic unless the run exited with 0, showing its stderr and report.
    pub fn assert_ok(&self, what: &str) {
        assert_eq!(
            self.code,
            Some(0),
            "{what}: the viewer failed: {}\nreport: {}",
            self.stderr,
            self.report
        );
    }
}

fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Stack {
    /// Create the PKI and user, start the gateway, and (if `start_url` is given) an agent whose
    /// browsers open `start_url`.
    pub fn start(start_url: Option<&str>, gateway_extra: &str) -> Stack {
        Stack::start_with(start_url, gateway_extra, "")
    }

    /// Like [`Stack::start`], with `agent_extra` (TOML) merged into the agent's configuration
    /// (`{agent_port}` in it stands for the port of the gateway's agent listener).
    pub fn start_with(start_url: Option<&str>, gateway_extra: &str, agent_extra: &str) -> Stack {
        let dir = tempfile::Builder::new()
            .prefix("tsuitate-e2e-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        let gw = bin("tsuitate-gateway");
        let pki = d.join("pki");
        run_ok(
            Command::new(&gw).args(["ca", "init", "--dir"]).arg(&pki),
            "tsuitate-gateway ca init",
        );
        run_ok(
            Command::new(&gw)
                .args(["ca", "issue-agent", "--name", "agent-1", "--dir"])
                .arg(&pki),
            "tsuitate-gateway ca issue-agent",
        );
        add_user(&gw, &d.join("users.toml"));
        // An admin token for `Stack::admin` (the file holds only its hash).
        let token = Command::new(&gw)
            .args(["admin", "token-add", "--name", "e2e", "--tokens"])
            .arg(d.join("admin-tokens.toml"))
            .output()
            .expect("tsuitate-gateway admin token-add");
        assert!(token.status.success(), "admin token-add failed");
        std::fs::write(d.join("admin-token"), &token.stdout).expect("admin token file");
        // A session owners' key for tests that give it (`[session] owner_key_file =
        // "owner.key"`): every gateway of the stack reads the same file.
        let owner_key = d.join("owner.key");
        let mut key = [0u8; 32];
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom").expect("/dev/urandom"),
            &mut key,
        )
        .expect("random key");
        std::fs::write(&owner_key, key).expect("owner key");
        std::fs::set_permissions(
            &owner_key,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod owner key");
        // Every listener on port 0: the gateway reports the addresses it got in --ready-file,
        // so no test races another for a "free" port.
        let any = "127.0.0.1:0";
        let mut config = table([
            ("agent_listen", s(any)),
            ("viewer_listen", s(any)),
            ("admin_listen", s(any)),
            ("users_file", s("users.toml")),
            ("audit_log", s("audit.jsonl")),
            ("admin_tokens_file", s("admin-tokens.toml")),
            (
                "tls",
                toml::Value::Table(table([
                    ("ca", s("pki/ca.pem")),
                    ("cert", s("pki/gateway.pem")),
                    ("key", s("pki/gateway-key.pem")),
                ])),
            ),
        ]);
        let extra: toml::Table = toml::from_str(gateway_extra).expect("gateway_extra is TOML");
        merge(&mut config, extra);
        write_toml(&d.join("gateway.toml"), &config);
        let (gateway, addrs) = run_gateway(d, "gateway");
        let addr = |k: &str| addrs.get(k).cloned().expect("address in the ready file");
        let agent_addr = addr("agent_listen");
        // `{agent_port}` in `agent_extra` is the port the gateway's agent listener got.
        let port = agent_addr.rsplit(':').next().unwrap_or_default();
        let agent_extra: toml::Table = toml::from_str(&agent_extra.replace("{agent_port}", port))
            .expect("agent_extra is TOML");
        let agent = start_url.map(|url| start_agent(d, &agent_addr, url, agent_extra));
        let stack = Stack {
            dir,
            viewer_addr: addr("viewer_listen"),
            admin_addr: addr("admin_listen"),
            agent_addr,
            gateway,
            agent,
        };
        stack.wait_agent_registered();
        stack
    }

    /// Start a second gateway with this stack's configuration, CA, certificate and users file,
    /// on its own ports and with its own audit log (`audit-2.jsonl`), as a second instance
    /// behind the same name would run.
    pub fn start_another_gateway(&self) -> OtherGateway {
        let d = self.dir.path();
        let mut config: toml::Table =
            toml::from_str(&std::fs::read_to_string(d.join("gateway.toml")).expect("gateway.toml"))
                .expect("gateway.toml is TOML");
        config.insert("audit_log".into(), s("audit-2.jsonl"));
        write_toml(&d.join("gateway-2.toml"), &config);
        let (child, addrs) = run_gateway(d, "gateway-2");
        let addr = |k: &str| addrs.get(k).cloned().expect("address in the ready file");
        OtherGateway {
            viewer_addr: addr("viewer_listen"),
            admin_addr: addr("admin_listen"),
            agent_addr: addr("agent_listen"),
            child,
        }
    }

    /// Stop the gateway with SIGTERM (as an upgrade does) and start it again on the same
    /// addresses, with the same configuration.
    pub fn restart_gateway(&mut self) {
        let addrs = [&self.agent_addr, &self.viewer_addr, &self.admin_addr];
        restart_gateway(self.dir.path(), "gateway", &mut self.gateway, addrs);
    }

    /// Start the agent of a stack started without one, with `extra` (TOML) merged into its
    /// configuration (e.g. its `gateways`).
    pub fn start_agent(&mut self, start_url: &str, extra: &str) {
        let extra: toml::Table = toml::from_str(extra).expect("agent extra is TOML");
        self.agent = Some(start_agent(
            self.dir.path(),
            &self.agent_addr,
            start_url,
            extra,
        ));
    }

    /// Issue an agent certificate with the gateway CLI; returns (cert, key).
    pub fn issue_agent(&self, name: &str) -> (PathBuf, PathBuf) {
        self.issue("agent", name)
    }

    /// Issue a trusted-front (web viewer) certificate with the gateway CLI; returns (cert, key).
    pub fn issue_front(&self, name: &str) -> (PathBuf, PathBuf) {
        self.issue("front", name)
    }

    /// `tsuitate-gateway ca issue-KIND --name NAME`: KIND-NAME.pem and KIND-NAME-key.pem.
    fn issue(&self, kind: &str, name: &str) -> (PathBuf, PathBuf) {
        let pki = self.path("pki");
        let command = format!("issue-{kind}");
        run_ok(
            Command::new(bin("tsuitate-gateway"))
                .args(["ca", &command, "--name", name, "--dir"])
                .arg(&pki),
            &format!("tsuitate-gateway ca {command}"),
        );
        (
            pki.join(format!("{kind}-{name}.pem")),
            pki.join(format!("{kind}-{name}-key.pem")),
        )
    }

    /// Path of a file in the working directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The gateway's Prometheus metrics text.
    pub fn metrics(&self) -> String {
        http_get(&self.admin_addr, "/metrics").unwrap_or_default()
    }

    fn wait_agent_registered(&self) {
        if self.agent.is_none() {
            wait_for(Duration::from_secs(20), || {
                http_get(&self.admin_addr, "/healthz")
            })
            .expect("gateway admin listener answers");
            return;
        }
        let ok = wait_for(Duration::from_secs(30), || {
            let m = self.metrics();
            metric(&m, "tsuitate_agents_connected").filter(|v| *v >= 1.0)
        });
        assert!(
            ok.is_some(),
            "agent did not register with the gateway.\ngateway log:\n{}\nagent log:\n{}",
            self.log("gateway.log"),
            self.log("agent.log")
        );
    }

    /// A log file's content.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// Run the headless viewer with `script` (and extra args), wait for it to exit.
    pub fn viewer(&self, name: &str, script: &str, extra: &[&str]) -> ViewerRun {
        self.viewer_with_password(name, script, extra, PASSWORD)
    }

    /// Same as [`Stack::viewer`] with another password.
    pub fn viewer_with_password(
        &self,
        name: &str,
        script: &str,
        extra: &[&str],
        password: &str,
    ) -> ViewerRun {
        self.spawn_viewer(name, script, extra, password).wait()
    }

    /// Start the headless viewer with `script` in the background (as [`Stack::viewer`]); its
    /// output goes to `NAME.viewer.log`.
    pub fn spawn_viewer(
        &self,
        name: &str,
        script: &str,
        extra: &[&str],
        password: &str,
    ) -> RunningViewer {
        self.spawn_viewer_as(USER, password, name, script, extra)
    }

    /// The same as another user (see [`Stack::add_user`]).
    pub fn spawn_viewer_as(
        &self,
        user: &str,
        password: &str,
        name: &str,
        script: &str,
        extra: &[&str],
    ) -> RunningViewer {
        self.spawn_viewer_at(&self.viewer_addr, user, password, name, script, extra)
    }

    /// The same through the gateway whose viewer listener is `gateway` (another gateway of
    /// this stack's CA: [`Stack::start_another_gateway`]).
    pub fn spawn_viewer_at(
        &self,
        gateway: &str,
        user: &str,
        password: &str,
        name: &str,
        script: &str,
        extra: &[&str],
    ) -> RunningViewer {
        let d = self.dir.path();
        let script_path = d.join(format!("{name}.script"));
        std::fs::write(&script_path, script).expect("write script");
        let report = d.join(format!("{name}.report.json"));
        let snapshots = d.join(format!("{name}-snapshots"));
        let stderr = d.join(format!("{name}.viewer.log"));
        let child = Command::new(bin("tsuitate-viewer"))
            .args([
                "--headless",
                "--gateway",
                gateway,
                "--server-name",
                "localhost",
            ])
            .args(["--user", user, "--lang", "en", "--ca"])
            .arg(d.join("pki/ca.pem"))
            .arg("--script")
            .arg(&script_path)
            .arg("--report")
            .arg(&report)
            .arg("--snapshot-dir")
            .arg(&snapshots)
            .args(extra)
            .env("TSUITATE_PASSWORD", password)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(d, &format!("{name}.viewer.log")))
            .spawn()
            .expect("run viewer");
        RunningViewer {
            child,
            report,
            stderr,
            snapshots,
        }
    }

    /// Add another user (with the gateway's CLI; the gateway re-reads its users file).
    pub fn add_user(&self, name: &str, password: &str) {
        add_named_user(
            &bin("tsuitate-gateway"),
            &self.path("users.toml"),
            name,
            password,
        );
    }

    /// `tsuitate-gateway admin ARGS` against this stack's gateway with its admin token:
    /// (exit code, stdout, stderr).
    pub fn admin(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(bin("tsuitate-gateway"))
            .args(["admin", "--addr", &self.admin_addr, "--token-file"])
            .arg(self.path("admin-token"))
            .args(args)
            .output()
            .expect("tsuitate-gateway admin");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Keep the working directory (logs, reports, snapshots) when the stack stops.
    pub fn keep_files(&mut self) {
        self.dir.disable_cleanup(true);
    }

    /// The gateway process.
    pub fn gateway_pid(&self) -> u32 {
        self.gateway.pid()
    }

    /// The agent process, if this stack started one.
    pub fn agent_pid(&self) -> Option<u32> {
        self.agent.as_ref().map(Child::pid)
    }

    /// Browser processes (Xvfb, chromium) below the agent.
    pub fn browser_processes(&self) -> Vec<(u32, String)> {
        let Some(agent) = &self.agent else {
            return Vec::new();
        };
        descendants(agent.pid())
            .into_iter()
            .filter(|(_, comm)| comm.contains("Xvfb") || comm.contains("chrom"))
            .collect()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(agent) = &mut self.agent {
            agent.stop(Duration::from_secs(15));
        }
        self.gateway.stop(Duration::from_secs(10));
        if std::thread::panicking() {
            eprintln!("--- gateway.log ---\n{}", self.log("gateway.log"));
            eprintln!("--- agent.log ---\n{}", self.log("agent.log"));
        }
    }
}

fn log_file(dir: &Path, name: &str) -> Stdio {
    std::fs::File::create(dir.join(name))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

fn add_user(gw: &Path, users: &Path) {
    add_named_user(gw, users, USER, PASSWORD);
}

fn add_named_user(gw: &Path, users: &Path, name: &str, password: &str) {
    use std::io::Write;
    let mut child = Command::new(gw)
        .args(["user", "add", name, "--users"])
        .arg(users)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run user add");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = writeln!(stdin, "{password}");
    }
    let out = child.wait_with_output().expect("user add");
    assert!(
        out.status.success(),
        "user add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether the tests run as root (then Chromium runs as the unprivileged browser user that
/// `scripts/setup-browser-user.sh` creates).
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(str::to_owned))
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
}

/// Run `tsuitate-gateway run` with `NAME.toml` in `d` (log `NAME.log`) and wait for the
/// addresses it reports in `NAME.ready.json` (listener name → address).
/// Stop gateway `name` (SIGTERM, waited for) and run it again with its configuration pinned to
/// the addresses it had (agent, viewer, admin listener): agents and viewers find it again.
fn restart_gateway(d: &Path, name: &str, child: &mut Child, [agent, viewer, admin]: [&String; 3]) {
    child.stop(Duration::from_secs(20));
    let path = d.join(format!("{name}.toml"));
    let mut config: toml::Table =
        toml::from_str(&std::fs::read_to_string(&path).expect("gateway config"))
            .expect("gateway config is TOML");
    config.insert("agent_listen".into(), s(agent.as_str()));
    config.insert("viewer_listen".into(), s(viewer.as_str()));
    config.insert("admin_listen".into(), s(admin.as_str()));
    write_toml(&path, &config);
    let _ = std::fs::remove_file(d.join(format!("{name}.ready.json")));
    let (again, _) = run_gateway(d, name);
    *child = again;
}

fn run_gateway(d: &Path, name: &str) -> (Child, std::collections::HashMap<String, String>) {
    let ready = d.join(format!("{name}.ready.json"));
    let log = format!("{name}.log");
    let mut child = Child::spawn(
        name,
        Command::new(bin("tsuitate-gateway"))
            .args(["run", "--config"])
            .arg(d.join(format!("{name}.toml")))
            .arg("--ready-file")
            .arg(&ready)
            .stdout(Stdio::null())
            .stderr(log_file(d, &log)),
    );
    let addrs = wait_for(Duration::from_secs(20), || {
        if child.exited() {
            return Some(None);
        }
        let text = std::fs::read_to_string(&ready).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        let map = v.as_object()?;
        Some(Some(
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect(),
        ))
    })
    .flatten()
    .unwrap_or_else(|| {
        panic!(
            "{name} did not start.\n{name} log:\n{}",
            std::fs::read_to_string(d.join(&log)).unwrap_or_default()
        )
    });
    (child, addrs)
}

fn start_agent(d: &Path, agent_addr: &str, url: &str, extra: toml::Table) -> Child {
    // Each stack's agent gets its own work directory, so one agent's start-up cleanup never
    // touches another test's sessions. The browser user must be able to traverse into it.
    let work = d.join("agent-work");
    std::fs::create_dir_all(&work).expect("create agent work dir");
    for dir in [d, work.as_path()] {
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o711))
            .expect("chmod work dir");
    }
    let mut config = table([
        ("agent_id", s("agent-1")),
        ("max_sessions", toml::Value::Integer(2)),
        ("start_url", s(url)),
        ("ca", s("pki/ca.pem")),
        ("cert", s("pki/agent-agent-1.pem")),
        ("key", s("pki/agent-agent-1-key.pem")),
        ("work_dir", s("agent-work")),
        (
            "gateways",
            toml::Value::Array(vec![toml::Value::Table(table([
                ("addr", s(agent_addr)),
                ("server_name", s("localhost")),
            ]))]),
        ),
    ]);
    if running_as_root() {
        // One account per session (scripts/setup-browser-user.sh creates the pool).
        config.insert("browser_user_pool".into(), s("tsuitate-browser"));
    }
    merge(&mut config, extra);
    write_toml(&d.join("agent.toml"), &config);
    Child::spawn(
        "agent",
        Command::new(bin("tsuitate-agent"))
            .args(["--config"])
            .arg(d.join("agent.toml"))
            .current_dir(d)
            .stderr(log_file(d, "agent.log")),
    )
}

/// A plain HTTP/1.1 GET on the admin listener.
pub fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    let (head, rest) = body.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| rest.to_string())
}

/// The value of an unlabelled metric line `name value`.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}
