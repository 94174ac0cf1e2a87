//! A per-session Xvfb: display picked by the server (`-displayfd`), access by a random
//! MIT-MAGIC-COOKIE-1 in the session's own Xauthority file, no TCP.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use super::cgroup::{confined_command, SessionCgroup};
use super::process::GroupChild;
use super::user::BrowserUser;
use super::BrowserError;

/// The X authorization protocol we use.
pub const AUTH_NAME: &str = "MIT-MAGIC-COOKIE-1";

/// How to reach a running display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayAccess {
    /// Display number (`:N`).
    pub number: u32,
    /// The cookie (16 random bytes).
    pub cookie: Vec<u8>,
    /// The Xauthority file holding the cookie (for Chromium's `XAUTHORITY`).
    pub xauthority: PathBuf,
}

impl DisplayAccess {
    /// `:N`.
    pub fn display_name(&self) -> String {
        format!(":{}", self.number)
    }
    /// The server's Unix socket.
    pub fn socket_path(&self) -> PathBuf {
        PathBuf::from(format!("/tmp/.X11-unix/X{}", self.number))
    }
}

/// 16 random bytes from the kernel.
pub fn random_cookie() -> Result<Vec<u8>, BrowserError> {
    let mut cookie = vec![0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut cookie))
        .map_err(|e| BrowserError::Setup(format!("reading /dev/urandom: {e}")))?;
    Ok(cookie)
}

/// Write an Xauthority file with one entry that matches any host and any display
/// (family FamilyWild, empty display number), so it can be written before Xvfb picks its
/// display number.
pub fn write_xauthority(path: &Path, cookie: &[u8]) -> std::io::Result<()> {
    let mut entry = Vec::new();
    entry.extend_from_slice(&0xffffu16.to_be_bytes()); // FamilyWild
    for field in [&b""[..], b"", AUTH_NAME.as_bytes(), cookie] {
        entry.extend_from_slice(&(field.len() as u16).to_be_bytes());
        entry.extend_from_slice(field);
    }
    let mut f = std::fs::File::create(path)?;
    f.write_all(&entry)?;
    f.sync_all()
}

/// Start Xvfb with a `screen` (width, height) × 24 bit screen and wait until it reports its
/// display number.
pub fn start_xvfb(
    xvfb: &Path,
    (width, height): (u16, u16),
    xauthority: &Path,
    cookie: Vec<u8>,
    user: Option<BrowserUser>,
    cgroup: Option<&SessionCgroup>,
    log: std::fs::File,
) -> Result<(GroupChild, DisplayAccess), BrowserError> {
    ensure_socket_dir();
    let mut cmd = confined_command(xvfb, user, cgroup);
    cmd.args(["-displayfd", "1", "-screen", "0"])
        .arg(format!("{width}x{height}x24"))
        .args(["-nolisten", "tcp", "-noreset", "-auth"])
        .arg(xauthority)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| BrowserError::Spawn(format!("{}: {e}", xvfb.display())))?;
    let stdout = child.stdout.take();
    let mut child = GroupChild::new("Xvfb", child);
    let Some(stdout) = stdout else {
        child.terminate(Duration::ZERO);
        return Err(BrowserError::Setup("Xvfb stdout missing".into()));
    };
    match read_display_number(stdout, Duration::from_secs(15)) {
        Ok(number) => Ok((
            child,
            DisplayAccess {
                number,
                cookie,
                xauthority: xauthority.to_path_buf(),
            },
        )),
        Err(e) => {
            child.terminate(Duration::from_millis(200));
            Err(e)
        }
    }
}

/// Xvfb writes "N\n" to the displayfd once it accepts connections; EOF means it died.
fn read_display_number(
    stdout: std::process::ChildStdout,
    timeout: Duration,
) -> Result<u32, BrowserError> {
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("xvfb-displayfd".into())
        .spawn(move || {
            let mut line = String::new();
            let res = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = tx.send(res);
            // Keep the pipe's read end open no longer than needed: it drops here.
        })
        .map_err(|e| BrowserError::Setup(format!("thread: {e}")))?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(line)) => line.trim().parse().map_err(|_| {
            BrowserError::Exited(
                "Xvfb exited before reporting a display / Xvfb が起動できませんでした".into(),
            )
        }),
        Ok(Err(e)) => Err(BrowserError::Setup(format!("reading Xvfb displayfd: {e}"))),
        Err(_) => Err(BrowserError::Setup("Xvfb did not start in time".into())),
    }
}

/// Xvfb needs /tmp/.X11-unix (mode 1777); create it if we can (best effort).
fn ensure_socket_dir() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Path::new("/tmp/.X11-unix");
    if !dir.exists() && std::fs::create_dir(dir).is_ok() {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777));
    }
}
