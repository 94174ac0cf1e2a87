//! Child processes in their own process group, killed as a whole, and a sweep that finds any
//! process that escaped its group (Chromium's crashpad handler calls `setsid`).

use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, kill_process_group, Pid, Signal};

/// A child started with `process_group(0)`: its pid is its process-group id.
#[derive(Debug)]
pub struct GroupChild {
    name: &'static str,
    child: Child,
    exited: Option<ExitStatus>,
}

impl GroupChild {
    /// Wrap a child spawned as a process-group leader.
    pub fn new(name: &'static str, child: Child) -> GroupChild {
        GroupChild {
            name,
            child,
            exited: None,
        }
    }

    /// The process id (= process-group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the child is (for messages).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The exit status if the group leader has exited (reaps it).
    pub fn try_exited(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
            }
        }
        self.exited
    }

    /// Signal the whole group.
    pub fn signal_group(&self, sig: Signal) {
        if let Some(pid) = Pid::from_raw(self.pid() as i32) {
            // ESRCH (group already empty) is fine.
            let _ = kill_process_group(pid, sig);
        }
    }

    /// TERM the group, wait up to `grace` for the leader, then KILL the group and reap.
    pub fn terminate(&mut self, grace: Duration) {
        self.signal_group(Signal::TERM);
        let deadline = Instant::now() + grace;
        while self.try_exited().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal_group(Signal::KILL);
        if self.exited.is_none() {
            if let Ok(status) = self.child.wait() {
                self.exited = Some(status);
            }
        }
    }
}

/// Process ids (other than our own) whose process group is one of `groups` or whose command
/// line mentions `marker` (the session directory, which every browser process carries in
/// `--user-data-dir`, and crashpad in `--database`).
pub fn session_processes(groups: &[u32], marker: &Path) -> Vec<u32> {
    let me = std::process::id();
    let marker = marker.as_os_str().as_encoded_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let in_group = process_group_of(pid).is_some_and(|g| groups.contains(&g));
        let mentions = !marker.is_empty()
            && std::fs::read(entry.path().join("cmdline"))
                .is_ok_and(|c| c.windows(marker.len()).any(|w| w == marker));
        if in_group || mentions {
            found.push(pid);
        }
    }
    found
}

/// The process group of `pid` from /proc/PID/stat (field 5), if it still exists and is not a
/// zombie.
fn process_group_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.next()?; // ppid
    fields.next()?.parse().ok()
}

/// KILL every process `session_processes` finds, a few rounds until none is left; returns the
/// pids still alive after that (empty on success).
pub fn sweep(groups: &[u32], marker: &Path) -> Vec<u32> {
    kill_until_gone(|| session_processes(groups, marker))
}

/// KILL what `find` finds, up to 20 rounds 50 ms apart, until it finds nothing; returns what it
/// still finds after that.
pub(super) fn kill_until_gone(find: impl Fn() -> Vec<u32>) -> Vec<u32> {
    for _ in 0..20 {
        let left = find();
        if left.is_empty() {
            return left;
        }
        for pid in &left {
            if let Some(p) = Pid::from_raw(*pid as i32) {
                let _ = kill_process(p, Signal::KILL);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    find()
}

/// Process ids whose real user is `uid`.
pub fn processes_of_user(uid: u32) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                return false;
            };
            // A zombie is already dead; its parent reaps it.
            let zombie = status
                .lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'));
            let owner = status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u32>().ok());
            !zombie && owner == Some(uid)
        })
        .collect()
}

/// KILL every process of the session's own account (it runs nothing else), a few rounds until
/// none is left, so nothing escapes with `setsid` or a rewritten command line. Returns the pids
/// still alive after that (empty on success). Never call it for a shared account.
pub fn sweep_user(uid: u32) -> Vec<u32> {
    if uid == 0 {
        return Vec::new();
    }
    kill_until_gone(|| processes_of_user(uid))
}
