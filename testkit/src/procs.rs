//! Locating the workspace binaries and supervising child processes.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The path of a workspace binary (built by `cargo test --workspace`; built here if missing).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .to_path_buf();
    let path = dir.join(name);
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--bin", name, "-p", name])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build of {name} failed");
    }
    path
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
