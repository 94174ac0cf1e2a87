//! One browser session: its own Xvfb display, its own Chromium with an empty profile in a
//! temporary directory, both in their own process groups, all killed and wiped at the end.

pub mod cgroup;
mod chromium;
mod nssdb;
pub mod policy;
pub mod pool;
mod process;
mod user;
mod workdir;
mod xvfb;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

pub use chromium::{preferences_json, version as chromium_version, ChromiumLaunch, SessionPaths};
pub use nssdb::{read_bundle, CERTUTIL};
pub use process::{session_processes, GroupChild};
pub use user::{running_as_root, BrowserUser, UserError};
pub use workdir::prepare_work_dir;
pub use xvfb::{DisplayAccess, AUTH_NAME};

use crate::size::{clamp_size, LARGEST_MAX_SIZE};

/// Why a browser session could not start or ended.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// Preparing the session directory or a file failed.
    #[error("session setup failed: {0}")]
    Setup(String),
    /// A program could not be started.
    #[error("could not start {0}")]
    Spawn(String),
    /// A child exited.
    #[error("{0}")]
    Exited(String),
    /// Refusing to run Chromium as root.
    #[error("refusing to run Chromium as root: set browser_user / root で Chromium は起動しません (browser_user を設定してください)")]
    WouldRunAsRoot,
}

/// Everything a session needs to start its browser (from the agent config).
#[derive(Debug, Clone)]
pub struct BrowserOptions {
    /// Chromium binary.
    pub chromium: PathBuf,
    /// Xvfb binary.
    pub xvfb: PathBuf,
    /// First page.
    pub start_url: String,
    /// Account for Xvfb and Chromium (one for every session; see `pool` for one each).
    pub user: Option<BrowserUser>,
    /// One account per session from this pool (preferred over `user` when set).
    pub pool: Option<pool::UserPool>,
    /// Upstream HTTP proxy.
    pub proxy: Option<String>,
    /// Proxy bypass list.
    pub proxy_bypass: Option<String>,
    /// Parent of the per-session directories (default: the system temp dir).
    pub work_dir: Option<PathBuf>,
    /// Extra CA bundle (PEM) the browser trusts, installed into the session's NSS database.
    pub extra_ca: Option<PathBuf>,
    /// The largest session size (`max_width`×`max_height`): the size of the Xvfb screen, so
    /// the browser window can grow up to it without restarting the X server.
    pub max_size: (u16, u16),
    /// One cgroup per session with these limits (`None`: the agent is not root and cannot
    /// create cgroups; see docs/agent.md).
    pub cgroups: Option<cgroup::Cgroups>,
}

/// A running Xvfb + Chromium pair.
#[derive(Debug)]
pub struct BrowserSession {
    /// The session's own account, when it came from a pool (released last).
    lease: Option<pool::Lease>,
    dir: Option<tempfile::TempDir>,
    paths: SessionPaths,
    xvfb: GroupChild,
    chromium: GroupChild,
    /// The session's cgroup (dropped, which kills what is in it, before the directory goes).
    cgroup: Option<cgroup::SessionCgroup>,
    display: DisplayAccess,
    width: u16,
    height: u16,
    screen: (u16, u16),
    stopped: bool,
}

impl BrowserSession {
    /// Start Xvfb with a screen of `opts.max_size` and Chromium in a `width`×`height` window
    /// at its top-left corner (the size is clamped with [`clamp_size`]; see [`Self::size`]).
    /// Blocking (a few hundred ms).
    pub fn start(opts: &BrowserOptions, width: u16, height: u16) -> Result<Self, BrowserError> {
        let screen = clamp_size(opts.max_size, LARGEST_MAX_SIZE);
        let (width, height) = clamp_size((width, height), screen);
        // One account per session from the pool, else the configured one.
        let lease = opts.pool.as_ref().map(pool::UserPool::lease).transpose()?;
        let user = lease.as_ref().map(|l| l.user).or(opts.user);
        if user.is_none() && running_as_root() {
            return Err(BrowserError::WouldRunAsRoot);
        }
        if let Some(l) = &lease {
            // Whatever a crashed agent left running under this account goes first.
            let left = process::sweep_user(l.user.uid);
            if !left.is_empty() {
                return Err(BrowserError::Setup(format!(
                    "processes of {} survived SIGKILL: {left:?}",
                    l.name
                )));
            }
            tracing::debug!(account = %l.name, uid = l.user.uid, "session account leased");
        }
        if user.is_some() {
            check_traversable(opts.work_dir.as_deref())?;
        }
        let dir = workdir::make_session_dir(opts.work_dir.as_deref())?;
        let paths = SessionPaths::new(dir.path());
        let cgroup = match &opts.cgroups {
            Some(c) => {
                let name = dir
                    .path()
                    .file_name()
                    .map_or_else(|| "session".into(), |n| n.to_string_lossy().into_owned());
                Some(
                    c.create(&name)
                        .map_err(|e| BrowserError::Setup(e.to_string()))?,
                )
            }
            None => None,
        };
        prepare_dirs(&paths, user)?;
        if let Some(bundle) = &opts.extra_ca {
            for p in nssdb::install_extra_ca(&paths.home, bundle)? {
                chown_to(&p, user)?;
            }
        }
        let log = |p: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| BrowserError::Setup(format!("log file: {e}")))
        };
        let cookie = xvfb::random_cookie()?;
        xvfb::write_xauthority(&paths.xauthority, &cookie)
            .map_err(|e| BrowserError::Setup(format!("Xauthority: {e}")))?;
        chown_to(&paths.xauthority, user)?;
        std::fs::set_permissions(&paths.xauthority, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| BrowserError::Setup(format!("Xauthority: {e}")))?;
        let (mut xvfb, display) = xvfb::start_xvfb(
            &opts.xvfb,
            screen,
            &paths.xauthority,
            cookie,
            user,
            cgroup.as_ref(),
            log(&paths.log)?,
        )?;
        let launch = ChromiumLaunch {
            width,
            height,
            profile_dir: &paths.profile,
            download_dir: &paths.downloads,
            home_dir: &paths.home,
            start_url: &opts.start_url,
            proxy: opts.proxy.as_deref(),
            proxy_bypass: opts.proxy_bypass.as_deref(),
        };
        let mut cmd = cgroup::confined_command(&opts.chromium, user, cgroup.as_ref());
        cmd.args(launch.args())
            .env_clear()
            .envs(launch.env(&display))
            .current_dir(&paths.home)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log(&paths.log)?)
            .process_group(0);
        let chromium = match cmd.spawn() {
            Ok(c) => GroupChild::new("Chromium", c),
            Err(e) => {
                xvfb.terminate(Duration::from_millis(500));
                return Err(BrowserError::Spawn(format!(
                    "{}: {e}",
                    opts.chromium.display()
                )));
            }
        };
        let number = display.number;
        tracing::info!(
            display_number = number,
            width,
            height,
            screen_width = screen.0,
            screen_height = screen.1,
            "browser started"
        );
        Ok(BrowserSession {
            lease,
            dir: Some(dir),
            paths,
            xvfb,
            chromium,
            cgroup,
            display,
            width,
            height,
            screen,
            stopped: false,
        })
    }

    /// How to connect to this session's X server.
    pub fn display(&self) -> &DisplayAccess {
        &self.display
    }

    /// The session size the browser window was started with (even, within the screen).
    pub fn size(&self) -> (u16, u16) {
        (self.width, self.height)
    }

    /// The Xvfb screen size (the largest size the session can take).
    pub fn screen_size(&self) -> (u16, u16) {
        self.screen
    }

    /// The session directory (profile, downloads; deleted at the end).
    pub fn dir(&self) -> &Path {
        &self.paths.root
    }

    /// Where downloads land.
    pub fn download_dir(&self) -> &Path {
        &self.paths.downloads
    }

    /// Process-group ids of Xvfb and Chromium.
    pub fn process_groups(&self) -> [u32; 2] {
        [self.xvfb.pid(), self.chromium.pid()]
    }

    /// Whether the kernel's OOM killer killed a process of this session (its memory limit was
    /// reached; the session must end with `MemoryExceeded`).
    pub fn memory_exceeded(&self) -> bool {
        self.cgroup.as_ref().is_some_and(|c| c.oom_kills() > 0)
    }

    /// The session's cgroup, if it has one.
    pub fn cgroup(&self) -> Option<&cgroup::SessionCgroup> {
        self.cgroup.as_ref()
    }

    /// Which child exited, if one did (the session must end).
    pub fn exited(&mut self) -> Option<String> {
        for child in [&mut self.chromium, &mut self.xvfb] {
            if let Some(status) = child.try_exited() {
                return Some(format!("{} exited ({status})", child.name()));
            }
        }
        None
    }

    /// Kill both process groups, sweep stragglers, delete the session directory. Returns the
    /// pids that could not be killed (empty on success). Idempotent.
    pub fn stop(&mut self) -> Vec<u32> {
        if self.stopped {
            return Vec::new();
        }
        self.stopped = true;
        self.chromium.terminate(Duration::from_millis(1500));
        self.xvfb.terminate(Duration::from_millis(500));
        // Everything in the session's cgroup, whatever its group, account or command line.
        let mut left = self
            .cgroup
            .take()
            .map(|cg| cg.kill_all())
            .unwrap_or_default();
        left.extend(process::sweep(&self.process_groups(), &self.paths.root));
        if let Some(l) = &self.lease {
            // The account is the session's alone: every process it still has goes too, even
            // one that left the process group and the session directory behind.
            left.extend(process::sweep_user(l.user.uid));
        }
        if !left.is_empty() {
            tracing::error!(?left, "session processes survived SIGKILL");
        }
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                tracing::error!(error = %e, path = %path.display(), "could not delete session directory");
            }
        }
        self.lease = None;
        tracing::info!(display = self.display.number, "browser stopped");
        left
    }
}

impl Drop for BrowserSession {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The browser user must be able to reach its session directory: every ancestor needs o+x.
fn check_traversable(work_dir: Option<&Path>) -> Result<(), BrowserError> {
    let dir = work_dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
    for d in dir.ancestors() {
        let mode = std::fs::metadata(d)
            .map_err(|e| BrowserError::Setup(format!("{}: {e}", d.display())))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            return Err(BrowserError::Setup(format!(
                "{} is not searchable by the browser user (needs o+x) / ブラウザ用ユーザーが {} に入れません",
                d.display(),
                d.display()
            )));
        }
    }
    Ok(())
}

/// Create the layout, write the initial preferences, hand everything to the browser user.
fn prepare_dirs(paths: &SessionPaths, user: Option<BrowserUser>) -> Result<(), BrowserError> {
    let err = |what: &str, e: std::io::Error| BrowserError::Setup(format!("{what}: {e}"));
    let default_profile = paths.profile.join("Default");
    for d in [&paths.downloads, &paths.home, &default_profile] {
        std::fs::create_dir_all(d).map_err(|e| err("mkdir", e))?;
    }
    std::fs::write(
        default_profile.join("Preferences"),
        preferences_json(&paths.downloads),
    )
    .map_err(|e| err("Preferences", e))?;
    std::fs::write(
        paths.profile.join("Local State"),
        chromium::local_state_json(),
    )
    .map_err(|e| err("Local State", e))?;
    std::fs::write(paths.profile.join("First Run"), b"").map_err(|e| err("First Run", e))?;
    std::fs::set_permissions(&paths.root, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| err("chmod", e))?;
    for p in [
        &paths.root,
        &paths.downloads,
        &paths.home,
        &paths.profile,
        &default_profile,
        &default_profile.join("Preferences"),
        &paths.profile.join("Local State"),
        &paths.profile.join("First Run"),
    ] {
        chown_to(p, user)?;
    }
    Ok(())
}

fn chown_to(path: &Path, user: Option<BrowserUser>) -> Result<(), BrowserError> {
    match user {
        Some(u) => std::os::unix::fs::chown(path, Some(u.uid), Some(u.gid))
            .map_err(|e| BrowserError::Setup(format!("chown {}: {e}", path.display()))),
        None => Ok(()),
    }
}

/// The Chromium binary to use when the config names none: the real binary of Debian's
/// package (bypassing the /usr/bin/chromium wrapper script, which adds flags such as
/// `--enable-remote-extensions`), else /usr/bin/chromium.
pub fn default_chromium() -> PathBuf {
    let direct = Path::new("/usr/lib/chromium/chromium");
    if direct.exists() {
        direct.to_path_buf()
    } else {
        PathBuf::from("/usr/bin/chromium")
    }
}
