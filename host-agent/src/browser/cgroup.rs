//! One cgroup per browser session, with memory, pids and CPU limits from the agent config.
//!
//! Xvfb and Chromium start inside the session's cgroup before they execute a single instruction
//! of their own (see [`confined_command`]), so every process they ever fork is in it too, whatever
//! its process group, account or command line. The kernel enforces the limits; a session whose
//! processes exceed the memory limit is OOM-killed inside its cgroup alone and the agent ends it
//! with `MemoryExceeded`; at the end every process in the cgroup is killed and the cgroup removed.
//!
//! Both kernel interfaces are supported: cgroup v2 (one unified hierarchy, Debian 12's default)
//! and cgroup v1 (one hierarchy per controller, still found on hybrid hosts and in some VMs). The
//! layout is `<root>/<parent>/agent-<agent_id>/<session>` in each hierarchy used.
//!
//! セッションごとに cgroup を作り、メモリ・プロセス数・CPU を制限します。終了時には cgroup 内の
//! 全プロセスを終了します。

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::kill_until_gone;
use super::user::BrowserUser;
use super::workdir::abandoned;

/// The controllers a session cgroup needs.
pub const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// util-linux's `setpriv`, which switches to the session's account after the shell joined the
/// cgroup (part of Debian's essential set).
pub const SETPRIV: &str = "/usr/bin/setpriv";

/// The CPU accounting period written with every quota (100 ms, the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;

/// Per-session limits (agent config table `[limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Memory of all the session's processes together, MiB (no swap beyond it).
    pub memory_mb: u32,
    /// Processes and threads together.
    pub pids: u32,
    /// CPU time in percent of one core (200 = two cores).
    pub cpu_percent: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            memory_mb: 2048,
            pids: 2048,
            cpu_percent: 200,
        }
    }
}

impl Limits {
    /// The memory limit in bytes.
    pub fn memory_bytes(&self) -> u64 {
        u64::from(self.memory_mb) * 1024 * 1024
    }

    /// The CPU quota per [`CPU_PERIOD_US`], in microseconds.
    pub fn cpu_quota_us(&self) -> u64 {
        u64::from(self.cpu_percent) * CPU_PERIOD_US / 100
    }
}

/// Why a cgroup could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Neither a cgroup v2 hierarchy with the three controllers nor three v1 hierarchies.
    #[error("no cgroup hierarchy offers the memory, pids and cpu controllers (see /proc/self/mountinfo) / memory・pids・cpu コントローラーを使える cgroup がありません")]
    NoControllers,
    /// A cgroup file could not be written or read.
    #[error("cgroup {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where the controllers are mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v2: one hierarchy with every controller.
    Unified(PathBuf),
    /// cgroup v1: one mount point per controller.
    Legacy {
        /// The memory controller's hierarchy.
        memory: PathBuf,
        /// The pids controller's hierarchy.
        pids: PathBuf,
        /// The cpu controller's hierarchy.
        cpu: PathBuf,
    },
}

impl Layout {
    /// The hierarchies of this host (from /proc/self/mountinfo).
    pub fn detect() -> Result<Layout, CgroupError> {
        let info = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(io_err(Path::new("/proc/self/mountinfo")))?;
        Layout::from_mountinfo(&info, |root| {
            std::fs::read_to_string(root.join("cgroup.controllers")).ok()
        })
    }

    /// Choose from a mountinfo text: the unified hierarchy when `controllers(mount point)` lists
    /// all of [`CONTROLLERS`], else one v1 hierarchy per controller.
    pub fn from_mountinfo(
        info: &str,
        controllers: impl Fn(&Path) -> Option<String>,
    ) -> Result<Layout, CgroupError> {
        let mut legacy: [Option<PathBuf>; 3] = Default::default();
        for line in info.lines() {
            // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL…] - FSTYPE SOURCE SUPEROPTS"
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let Some(mount) = left.split(' ').nth(4) else {
                continue;
            };
            let mut r = right.split(' ');
            let (fstype, _source, opts) = (r.next(), r.next(), r.next().unwrap_or(""));
            let mount = PathBuf::from(mount);
            match fstype {
                Some("cgroup2") => {
                    let have = controllers(&mount).unwrap_or_default();
                    let have: Vec<&str> = have.split_whitespace().collect();
                    if CONTROLLERS.iter().all(|c| have.contains(c)) {
                        return Ok(Layout::Unified(mount));
                    }
                }
                Some("cgroup") => {
                    for (slot, c) in legacy.iter_mut().zip(CONTROLLERS) {
                        if slot.is_none() && opts.split(',').any(|o| o == c) {
                            *slot = Some(mount.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        match legacy {
            [Some(memory), Some(pids), Some(cpu)] => Ok(Layout::Legacy { memory, pids, cpu }),
            _ => Err(CgroupError::NoControllers),
        }
    }

    /// The hierarchy roots (one for v2, three for v1).
    fn roots(&self) -> Vec<&Path> {
        match self {
            Layout::Unified(r) => vec![r],
            Layout::Legacy { memory, pids, cpu } => vec![memory, pids, cpu],
        }
    }
}

/// The agent's own part of the cgroup tree: `<root>/<parent>/agent-<agent_id>` in each
/// hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroups {
    layout: Layout,
    /// Relative to each hierarchy root.
    base: PathBuf,
    limits: Limits,
    /// Sessions this agent runs at most (sets the CPU weight of its part of the tree).
    max_sessions: u16,
}

impl Cgroups {
    /// The agent's cgroups below `parent` (a relative path such as `tsuitate`), for at most
    /// `max_sessions` sessions.
    pub fn new(
        layout: Layout,
        parent: &Path,
        agent_id: &str,
        limits: Limits,
        max_sessions: u16,
    ) -> Cgroups {
        Cgroups {
            layout,
            base: parent.join(format!("agent-{agent_id}")),
            limits,
            max_sessions,
        }
    }

    /// The CPU weight of each level above the sessions: a cgroup competes with the host's other
    /// processes as ONE process of the default weight, so left alone all sessions together
    /// would get the CPU of one busy process whenever the host is loaded. Instead the sessions'
    /// part of the tree weighs what `max_sessions` sessions of `cpu_percent` each would weigh
    /// as plain processes. Returns (v1 `cpu.shares`, v2 `cpu.weight`).
    pub fn cpu_weight(&self) -> (u64, u64) {
        let cores = u64::from(self.limits.cpu_percent.div_ceil(100).max(1));
        let n = u64::from(self.max_sessions.max(1)) * cores;
        ((1024 * n).min(262_144), (100 * n).min(10_000))
    }

    /// The limits every session gets.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The layout in use.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// At start-up: create the agent's cgroups, let their children use the controllers (v2),
    /// and kill and remove the session cgroups an agent that is gone left behind (named like
    /// the session directories, `tsuitate-session-<agent pid>-…`, so agents sharing an id on
    /// one host — parallel tests — never touch each other's sessions). Returns how many.
    pub fn prepare(&self) -> Result<usize, CgroupError> {
        for root in self.layout.roots() {
            let dir = root.join(&self.base);
            std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        if let Layout::Unified(root) = &self.layout {
            // Each level from the root down to the agent's cgroup hands the controllers on.
            let mut level = root.clone();
            let enable = CONTROLLERS.map(|c| format!("+{c}")).join(" ");
            for part in std::iter::once(None).chain(self.base.components().map(Some)) {
                if let Some(p) = part {
                    level.push(p);
                }
                let file = level.join("cgroup.subtree_control");
                match std::fs::write(&file, &enable) {
                    // EBUSY at the top: the root of a cgroup namespace (a container) holds this
                    // process, and a cgroup other than the host's root may not have both
                    // processes and controllers for its children. Move this process into a
                    // leaf of its own, then hand the controllers on.
                    Err(e) if part.is_none() && e.raw_os_error() == Some(16) => {
                        let leaf = level.join("tsuitate-agent-process");
                        std::fs::create_dir_all(&leaf).map_err(io_err(&leaf))?;
                        let procs = leaf.join("cgroup.procs");
                        std::fs::write(&procs, std::process::id().to_string())
                            .map_err(io_err(&procs))?;
                        std::fs::write(&file, &enable).map_err(io_err(&file))?;
                    }
                    r => r.map_err(io_err(&file))?,
                }
            }
        }
        // Each level from the hierarchy root down to the agent's cgroup gets the weight (a
        // level shared by several agents keeps the largest).
        let (shares, weight) = self.cpu_weight();
        let (cpu_root, file, value) = match &self.layout {
            Layout::Unified(r) => (r, "cpu.weight", weight),
            Layout::Legacy { cpu, .. } => (cpu, "cpu.shares", shares),
        };
        let mut level = cpu_root.clone();
        for part in self.base.components() {
            level.push(part);
            let path = level.join(file);
            let now: u64 = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0);
            if now < value {
                std::fs::write(&path, value.to_string()).map_err(io_err(&path))?;
            }
        }
        let mut left = 0;
        for root in self.layout.roots() {
            let dir = root.join(&self.base);
            for entry in std::fs::read_dir(&dir).map_err(io_err(&dir))?.flatten() {
                if entry.path().is_dir() && abandoned(&entry.file_name().to_string_lossy()) {
                    let stale = SessionCgroup {
                        dirs: vec![entry.path()],
                        unified: matches!(self.layout, Layout::Unified(_)),
                    };
                    tracing::warn!(cgroup = %entry.path().display(), "removing a session cgroup left by an earlier run");
                    drop(stale);
                    left += 1;
                }
            }
        }
        Ok(left)
    }

    /// Create the cgroup of session `name` with the limits written.
    pub fn create(&self, name: &str) -> Result<SessionCgroup, CgroupError> {
        let unified = matches!(self.layout, Layout::Unified(_));
        let mut cg = SessionCgroup {
            dirs: Vec::new(),
            unified,
        };
        for root in self.layout.roots() {
            let dir = root.join(&self.base).join(name);
            std::fs::create_dir(&dir).map_err(io_err(&dir))?;
            cg.dirs.push(dir);
        }
        let l = self.limits;
        let write = |dir: &Path, file: &str, value: String| {
            let path = dir.join(file);
            std::fs::write(&path, value).map_err(io_err(&path))
        };
        match &self.layout {
            Layout::Unified(_) => {
                let d = &cg.dirs[0];
                write(d, "memory.max", l.memory_bytes().to_string())?;
                // Optional files: absent when swap accounting or the kernel is older.
                let _ = write(d, "memory.swap.max", "0".into());
                let _ = write(d, "memory.oom.group", "1".into());
                write(d, "pids.max", l.pids.to_string())?;
                write(
                    d,
                    "cpu.max",
                    format!("{} {CPU_PERIOD_US}", l.cpu_quota_us()),
                )?;
            }
            Layout::Legacy { .. } => {
                let (memory, pids, cpu) = (&cg.dirs[0], &cg.dirs[1], &cg.dirs[2]);
                write(
                    memory,
                    "memory.limit_in_bytes",
                    l.memory_bytes().to_string(),
                )?;
                // Memory plus swap at the same limit: no swapping past it (absent without
                // swap accounting).
                let _ = write(
                    memory,
                    "memory.memsw.limit_in_bytes",
                    l.memory_bytes().to_string(),
                );
                write(pids, "pids.max", l.pids.to_string())?;
                write(cpu, "cpu.cfs_period_us", CPU_PERIOD_US.to_string())?;
                write(cpu, "cpu.cfs_quota_us", l.cpu_quota_us().to_string())?;
            }
        }
        Ok(cg)
    }
}

/// One session's cgroup (one directory per hierarchy); killed and removed when dropped.
#[derive(Debug)]
pub struct SessionCgroup {
    dirs: Vec<PathBuf>,
    unified: bool,
}

impl SessionCgroup {
    /// The session's directories (one per hierarchy).
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The `cgroup.procs` files a new process writes itself into.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// How many times the kernel's OOM killer killed a process of this session.
    pub fn oom_kills(&self) -> u64 {
        let Some(memory) = self.dirs.first() else {
            return 0;
        };
        let file = if self.unified {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        std::fs::read_to_string(memory.join(file))
            .map(|t| oom_kill_count(&t))
            .unwrap_or(0)
    }

    /// Every process in the session's cgroups.
    pub fn pids(&self) -> Vec<u32> {
        let mut all: Vec<u32> = self
            .procs_files()
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .flat_map(|t| {
                t.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// KILL every process in the cgroup until none is left; returns what survived.
    pub fn kill_all(&self) -> Vec<u32> {
        if self.unified {
            // cgroup.kill (Linux 5.14+) kills the whole tree atomically, forks in flight too.
            let _ = std::fs::write(self.dirs[0].join("cgroup.kill"), "1");
        }
        kill_until_gone(|| self.pids())
    }

    /// Remove the (empty) cgroup directories; a process still exiting keeps one busy for a
    /// moment, so this retries for up to a second.
    fn remove(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(1);
        self.dirs.retain(|d| loop {
            match std::fs::remove_dir(d) {
                Ok(()) => break false,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break false,
                Err(e) if Instant::now() >= deadline => {
                    tracing::error!(cgroup = %d.display(), error = %e, "could not remove session cgroup");
                    break true;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        });
    }
}

impl Drop for SessionCgroup {
    fn drop(&mut self) {
        let left = self.kill_all();
        if !left.is_empty() {
            tracing::error!(?left, "processes in the session cgroup survived SIGKILL");
        }
        self.remove();
    }
}

/// The `oom_kill N` line of `memory.events` (v2) or `memory.oom_control` (v1).
pub fn oom_kill_count(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// The shell that moves itself into the cgroups named before `--`, then executes the rest.
const JOIN: &str =
    r#"while [ "$1" != -- ]; do echo $$ > "$1" || exit 126; shift; done; shift; exec "$@""#;

/// A command for `program` that runs as `user` (if any) and, when `cgroup` is given, inside it
/// from its first instruction: `/bin/sh` (still as the agent) writes its own pid into the
/// session's `cgroup.procs` files, then executes `setpriv` to become `user`, which executes
/// `program` — one process id throughout, so the caller's process group and pid stay valid.
/// Arguments added to the returned command go to `program`.
pub fn confined_command(
    program: &Path,
    user: Option<BrowserUser>,
    cgroup: Option<&SessionCgroup>,
) -> Command {
    let Some(cg) = cgroup else {
        let mut cmd = Command::new(program);
        if let Some(u) = user {
            std::os::unix::process::CommandExt::uid(&mut cmd, u.uid);
            std::os::unix::process::CommandExt::gid(&mut cmd, u.gid);
        }
        return cmd;
    };
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(JOIN)
        .arg("tsuitate-join")
        .args(cg.procs_files())
        .arg("--");
    if let Some(u) = user {
        cmd.arg(SETPRIV)
            .arg(format!("--reuid={}", u.uid))
            .arg(format!("--regid={}", u.gid))
            .args(["--clear-groups", "--"]);
    }
    cmd.arg(program);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const UNIFIED: &str = "\
25 22 0:22 / /proc rw,nosuid - proc proc rw
30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test]
    fn a_hybrid_host_uses_the_v1_hierarchies_when_v2_lacks_the_controllers() {
        let l = Layout::from_mountinfo(HYBRID, |_| Some("hugetlb\n".into()));
        assert_eq!(
            l.ok(),
            Some(Layout::Legacy {
                memory: "/sys/fs/cgroup/memory".into(),
                pids: "/sys/fs/cgroup/pids".into(),
                cpu: "/sys/fs/cgroup/cpu".into(),
            }),
            "cpuacct is not cpu"
        );
    }

    #[test]
    fn a_unified_host_uses_v2_and_a_host_without_controllers_is_refused() {
        let all = |_: &Path| Some("cpuset cpu io memory hugetlb pids rdma misc\n".into());
        assert_eq!(
            Layout::from_mountinfo(UNIFIED, all).ok(),
            Some(Layout::Unified("/sys/fs/cgroup".into()))
        );
        let no_pids = |_: &Path| Some("cpu io memory\n".into());
        assert!(matches!(
            Layout::from_mountinfo(UNIFIED, no_pids),
            Err(CgroupError::NoControllers)
        ));
    }

    #[test]
    fn limits_become_kernel_values_and_oom_kills_are_read_from_either_interface() {
        let l = Limits {
            memory_mb: 768,
            pids: 500,
            cpu_percent: 150,
        };
        assert_eq!(l.memory_bytes(), 805_306_368);
        assert_eq!(l.cpu_quota_us(), 150_000);
        let v2 = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 1\n";
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n";
        assert_eq!((oom_kill_count(v2), oom_kill_count(v1)), (2, 1));
        assert_eq!(oom_kill_count("oom_kill_disable 0\n"), 0);
        let c = |pct, n| {
            let l = Limits {
                cpu_percent: pct,
                ..Limits::default()
            };
            Cgroups::new(Layout::Unified("/x".into()), Path::new("t"), "a", l, n).cpu_weight()
        };
        assert_eq!(
            c(200, 4),
            (8192, 800),
            "4 sessions of 2 cores weigh 8 processes"
        );
        assert_eq!(c(50, 1), (1024, 100));
        assert_eq!(c(25_600, 1000), (262_144, 10_000), "kernel maxima");
    }

    #[test]
    fn the_confined_command_joins_then_drops_privileges_then_runs_the_program() {
        let cg = SessionCgroup {
            dirs: vec!["/cg/memory/s".into(), "/cg/pids/s".into()],
            unified: false,
        };
        let user = BrowserUser { uid: 991, gid: 992 };
        let cmd = confined_command(Path::new("/usr/bin/Xvfb"), Some(user), Some(&cg));
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(cmd.get_program(), "/bin/sh");
        assert_eq!(
            args[2..],
            [
                "tsuitate-join",
                "/cg/memory/s/cgroup.procs",
                "/cg/pids/s/cgroup.procs",
                "--",
                SETPRIV,
                "--reuid=991",
                "--regid=992",
                "--clear-groups",
                "--",
                "/usr/bin/Xvfb"
            ]
        );
    }

    #[test]
    fn the_join_script_writes_its_own_pid_into_every_file_then_runs_the_program() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cg = SessionCgroup {
            dirs: vec![d.path().join("a"), d.path().join("b")],
            unified: false,
        };
        for dir in cg.dirs() {
            std::fs::create_dir(dir).unwrap_or_else(|e| panic!("{e}"));
        }
        let mut cmd = confined_command(Path::new("/bin/sh"), None, Some(&cg));
        let out = cmd
            .args(["-c", "echo $$"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success());
        let pid = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        for f in cg.procs_files() {
            let written = std::fs::read_to_string(&f).unwrap_or_default();
            assert_eq!(written.trim(), pid, "one process id from join to program");
            let _ = std::fs::remove_file(f);
        }
        // A file that cannot be written stops the launch before the program runs.
        let missing = SessionCgroup {
            dirs: vec![d.path().join("missing")],
            unified: false,
        };
        let status = confined_command(Path::new("/bin/true"), None, Some(&missing))
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status.code(), Some(126));
    }
}
