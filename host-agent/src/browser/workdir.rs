//! The agent's work directory: one `tsuitate-session-<agent pid>-XXXXXX` directory per
//! session, and at start-up the removal of what a crashed agent left behind.
//!
//! The agent's pid in the name tells whose session a directory is: start-up cleanup only
//! touches directories whose agent process is gone, so agents that share a work directory
//! (the same `agent_id` twice on one host, parallel tests) never kill each other's browsers.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::{process, BrowserError};

const PREFIX: &str = "tsuitate-session-";

/// A new, empty session directory (deleted when the returned value is closed or dropped).
pub(super) fn make_session_dir(work_dir: Option<&Path>) -> Result<tempfile::TempDir, BrowserError> {
    let mut b = tempfile::Builder::new();
    let prefix = format!("{PREFIX}{}-", std::process::id());
    b.prefix(&prefix);
    match work_dir {
        Some(w) => b.tempdir_in(w),
        None => b.tempdir(),
    }
    .map_err(|e| BrowserError::Setup(format!("session directory: {e}")))
}

/// Whether a work-directory entry is a session directory left by an agent that is gone:
/// its pid is not running, or the name carries no pid (older agents).
pub(super) fn abandoned(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(PREFIX) else {
        return false;
    };
    match rest
        .split_once('-')
        .and_then(|(pid, _)| pid.parse::<u32>().ok())
    {
        Some(pid) => pid == 0 || !Path::new(&format!("/proc/{pid}")).exists(),
        None => true,
    }
}

/// Prepare the agent's own directory for session directories (mode 0711) and remove what a
/// crashed agent left behind: kill every process that mentions an abandoned session
/// directory, then delete it. Only ever touches `tsuitate-session-*` entries of `dir`.
pub fn prepare_work_dir(dir: &Path) -> Result<usize, BrowserError> {
    let err = |e: std::io::Error| BrowserError::Setup(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(err)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).map_err(err)?;
    let mut reaped = 0;
    for entry in std::fs::read_dir(dir).map_err(err)?.flatten() {
        if !abandoned(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        let left = process::sweep(&[], &path);
        if !left.is_empty() {
            tracing::error!(?left, path = %path.display(), "stale session processes survived");
        }
        if std::fs::remove_dir_all(&path).is_ok() {
            reaped += 1;
        }
    }
    if reaped > 0 {
        tracing::warn!(reaped, "removed sessions left by a previous run");
    }
    Ok(reaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sessions_of_gone_agents_are_abandoned() {
        let me = std::process::id();
        assert!(!abandoned(&format!("{PREFIX}{me}-a1B2c3")));
        assert!(abandoned(&format!("{PREFIX}{}-a1B2c3", u32::MAX)));
        assert!(abandoned(&format!("{PREFIX}0-a1B2c3")));
        assert!(abandoned(&format!("{PREFIX}a1B2c3")), "older naming");
        assert!(!abandoned("something-else"));
    }

    #[test]
    fn a_live_agents_sessions_survive_start_up_cleanup() {
        let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ours = make_session_dir(Some(work.path())).unwrap_or_else(|e| panic!("{e}"));
        let stale = work.path().join(format!("{PREFIX}{}-zzzzzz", u32::MAX));
        let _ = std::fs::create_dir(&stale);
        assert_eq!(prepare_work_dir(work.path()).ok(), Some(1));
        assert!(ours.path().exists(), "a running agent's session is kept");
        assert!(!stale.exists(), "an abandoned session is removed");
    }
}
