//! Locating the workspace binaries and supervising child processes.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The path of a workspace binary in the same profile folder as the running program (built
/// by `cargo test --workspace`, or by the benchmark's wrapper; built here if missing).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("executable path");
    // A test: target/<profile>/deps/<test>; a binary: target/<profile>/<bin>.
    let mut dir = exe.parent().expect("target dir").to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let path = dir.join(name);
    if !path.exists() {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--bin", name, "-p", name]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build of {name} failed");
    }
    path
}

/// CPU seconds (user + system) `pid` has used, or `None` when it is gone.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    stat_times(pid).map(|t| (t[0] + t[1]) as f64 / clock_ticks())
}

/// CPU seconds of `pid` and every live descendant, with the time of children they reaped.
pub fn tree_cpu_seconds(pid: u32) -> f64 {
    std::iter::once(pid)
        .chain(descendants(pid).into_iter().map(|(p, _)| p))
        .filter_map(stat_times)
        .map(|t| t.iter().sum::<u64>() as f64)
        .sum::<f64>()
        / clock_ticks()
}

/// utime, stime, cutime, cstime of `pid` in clock ticks.
fn stat_times(pid: u32) -> Option<[u64; 4]> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After "(comm) ": state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
    let rest: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let field = |i: usize| rest.get(i).and_then(|v| v.parse::<u64>().ok());
    Some([field(11)?, field(12)?, field(13)?, field(14)?])
}

/// Clock ticks per second of /proc's times (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A variable from the environment of process `pid` (empty if unreadable or unset).
pub fn environ(pid: u32, name: &str) -> String {
    let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return String::new();
    };
    env.split(|b| *b == 0)
        .filter_map(|kv| kv.strip_prefix(name.as_bytes())?.strip_prefix(b"="))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .next()
        .unwrap_or_default()
}

/// The command line of `pid`, one argument per item.
pub fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            c.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A child process that is stopped (SIGTERM, then SIGKILL after 10 s) when dropped.
#[derive(Debug)]
pub struct Child {
    name: String,
    child: std::process::Child,
}

impl Child {
    /// Start `cmd`, naming it `name` in messages.
    pub fn spawn(name: &str, cmd: &mut Command) -> Child {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
        Child {
            name: name.into(),
            child,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// `kill -9` it and wait for the exit (a crash, as far as its peers can tell).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Send SIGTERM and wait for the exit (SIGKILL after `grace`). Returns whether it exited
    /// by itself within the grace period.
    pub fn stop(&mut self, grace: Duration) -> bool {
        if self.exited() {
            return true;
        }
        signal(self.child.id(), libc::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < grace {
            if self.exited() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} did not stop in {grace:?}; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// Send `sig` to `pid`.
pub fn signal(pid: u32, sig: i32) {
    // Using the kill(1) command keeps this crate free of unsafe code.
    let name = match sig {
        libc::SIGKILL => "KILL",
        libc::SIGINT => "INT",
        _ => "TERM",
    };
    let _ = Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .status();
}

/// (pid, command name) of every live descendant of `root`, found through /proc.
pub fn descendants(root: u32) -> Vec<(u32, String)> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next().unwrap_or("");
        let ppid: u32 = rest.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if state != "Z" {
            parents.push((pid, ppid, comm));
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (pid, ppid, comm) in &parents {
            if *ppid == p {
                found.push((*pid, comm.clone()));
                frontier.push(*pid);
            }
        }
    }
    found
}

/// Poll `f` every 100 ms until it returns `Some`, or `None` after `timeout`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
