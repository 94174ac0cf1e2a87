//! Chromium's managed (enterprise) policy, written root-owned where Debian's Chromium reads it
//! (`/etc/chromium/policies/managed/`), from the agent's configuration at every start so that it
//! cannot drift. Mandatory policy is enforced by Chromium itself: a user inside the session cannot
//! change it in settings, and a profile cannot override it (docs/agent.md lists each policy).
//!
//! 管理ポリシー（エンタープライズポリシー）: `file://`・`chrome://`・DevTools・ファイル選択ダイアログ・
//! 印刷・ダウンロードを禁止し、プロキシを固定します。利用者は設定画面から変更できません。

use std::fs::{self, File, Permissions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// Where Debian's Chromium reads mandatory policy.
pub const DEFAULT_POLICY_DIR: &str = "/etc/chromium/policies/managed";
/// Our file in that folder (Chromium merges every `*.json` there).
pub const POLICY_FILE: &str = "tsuitate.json";

/// URL schemes and pages a browsing user never needs, blocked.
const BLOCKED: &[&str] = &[
    "file://*",
    "chrome://*",
    "chrome-untrusted://*",
    "chrome-extension://*",
    "chrome-search://*",
    "devtools://*",
    "view-source:*",
];

/// Exceptions a browsing user needs: the new tab page and the built-in PDF viewer (PDFs view
/// inline; they are never saved).
const ALLOWED: &[&str] = &[
    "chrome://newtab",
    "chrome://new-tab-page",
    "chrome://new-tab-page-third-party",
    "chrome-extension://mhjfbmdgcfjbbpaeojofohoefgiehjai",
];

/// What the policy is made from (the `[policy]`-related keys of the agent configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyOptions {
    /// The folder Chromium reads mandatory policy from.
    pub dir: PathBuf,
    /// Allow downloads (into the session directory, wiped at the end). Off by default.
    pub downloads: bool,
    /// Extra URL patterns to block (Chromium's URLBlocklist format).
    pub url_blocklist: Vec<String>,
    /// URL patterns allowed despite the block list.
    pub url_allowlist: Vec<String>,
    /// The upstream proxy (the prefecture's security cloud), fixed for every session.
    pub proxy: Option<String>,
    /// Hosts that bypass the proxy.
    pub proxy_bypass: Option<String>,
}

impl Default for PolicyOptions {
    fn default() -> Self {
        PolicyOptions {
            dir: PathBuf::from(DEFAULT_POLICY_DIR),
            downloads: false,
            url_blocklist: Vec::new(),
            url_allowlist: Vec::new(),
            proxy: None,
            proxy_bypass: None,
        }
    }
}

/// The policy document.
pub fn policy_json(o: &PolicyOptions) -> Value {
    let blocklist: Vec<&str> = BLOCKED
        .iter()
        .copied()
        .chain(o.url_blocklist.iter().map(String::as_str))
        .collect();
    let allowlist: Vec<&str> = ALLOWED
        .iter()
        .copied()
        .chain(o.url_allowlist.iter().map(String::as_str))
        .collect();
    let proxy = match &o.proxy {
        Some(server) => json!({
            "ProxyMode": "fixed_servers",
            "ProxyServer": server,
            "ProxyBypassList": o.proxy_bypass.clone().unwrap_or_default(),
        }),
        None => json!({ "ProxyMode": "direct" }),
    };
    json!({
        "URLBlocklist": blocklist,
        "URLAllowlist": allowlist,
        "DeveloperToolsAvailability": 2,
        "AllowFileSelectionDialogs": false,
        "PrintingEnabled": false,
        "DownloadRestrictions": if o.downloads { 0 } else { 3 },
        "PromptForDownloadLocation": false,
        "AlwaysOpenPdfExternally": false,
        "PasswordManagerEnabled": false,
        "AutofillAddressEnabled": false,
        "AutofillCreditCardEnabled": false,
        "SyncDisabled": true,
        "BrowserSignin": 0,
        "BrowserAddPersonEnabled": false,
        "BrowserGuestModeEnabled": false,
        "IncognitoModeAvailability": 1,
        "ExtensionInstallBlocklist": ["*"],
        "BlockExternalExtensions": true,
        "DefaultBrowserSettingEnabled": false,
        "TranslateEnabled": false,
        "MetricsReportingEnabled": false,
        "PromotionsEnabled": false,
        "BackgroundModeEnabled": false,
        "ProxySettings": proxy,
    })
}

/// Why the policy could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Not root, and the installed policy differs (or is missing).
    #[error(
        "the browser policy {0} is missing or out of date and only root can write it: run the agent as root \
         / ブラウザの管理ポリシー {0} が未設置か古く、root でないと書き込めません。エージェントを root で実行してください"
    )]
    NotRoot(PathBuf),
    /// A folder on the way is not root-owned or is writable by others.
    #[error(
        "{0} must be owned by root and not writable by others, or a user could change the browser policy \
         / {0} は root 所有で他者が書き込めない必要があります"
    )]
    Unsafe(PathBuf),
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PolicyError + '_ {
    move |source| PolicyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// SHA-256 (hex) of the installed policy file, as the agent reports it to the gateway (the
/// self-check compares the agents' reports).
pub fn file_sha256(file: &Path) -> Result<String, PolicyError> {
    use sha2::{Digest, Sha256};
    let bytes = fs::read(file).map_err(io(file))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Folders a browser reads mandatory policy from: Debian's Chromium and Google Chrome. The
/// policy is only worth writing where the configured browser reads it.
pub const KNOWN_POLICY_DIRS: [&str; 2] = [DEFAULT_POLICY_DIR, "/etc/opt/chrome/policies/managed"];

/// Whether an entry owned by `uid` with `mode` could be changed by someone other than root: not
/// root's, or writable by group or others (a folder with the sticky bit, like /tmp, is accepted
/// where `sticky_ok`).
fn writable_by_others(uid: u32, mode: u32, sticky_ok: bool) -> bool {
    uid != 0 || (mode & 0o022 != 0 && !(sticky_ok && mode & 0o1000 != 0))
}

/// The policy file and every folder above it (symbolic links resolved) are root's and no one
/// else can change them; the file is a regular file, not a link.
fn check_safe(dir: &Path, file: &Path) -> Result<(), PolicyError> {
    let real = dir.canonicalize().map_err(io(dir))?;
    for d in real.ancestors() {
        let m = fs::metadata(d).map_err(io(d))?;
        if writable_by_others(m.uid(), m.mode(), d != real) {
            return Err(PolicyError::Unsafe(d.to_owned()));
        }
    }
    let m = fs::symlink_metadata(file).map_err(io(file))?;
    if !m.file_type().is_file() || writable_by_others(m.uid(), m.mode(), false) {
        return Err(PolicyError::Unsafe(file.to_owned()));
    }
    Ok(())
}

/// Write the policy for `o` into `o.dir` (created root-owned, 0755; the file 0644, replaced in
/// one step), unless the same document is already there. Returns the file's path and whether it
/// was (re)written. Either way the file and its folders must be root's and unchangeable by
/// anyone else. Without root, an identical, safe installed file is accepted and anything else
/// is an error: sessions never run with a missing, stale or changeable policy.
pub fn install(o: &PolicyOptions, as_root: bool) -> Result<(PathBuf, bool), PolicyError> {
    let file = o.dir.join(POLICY_FILE);
    let text = format!(
        "{}\n",
        serde_json::to_string_pretty(&policy_json(o)).unwrap_or_default()
    );
    let current = fs::read_to_string(&file).ok();
    if !as_root {
        return match current {
            Some(c) if c == text => check_safe(&o.dir, &file).map(|()| (file, false)),
            _ => Err(PolicyError::NotRoot(file)),
        };
    }
    fs::create_dir_all(&o.dir).map_err(io(&o.dir))?;
    let m = fs::metadata(&o.dir).map_err(io(&o.dir))?;
    if m.uid() == 0 && m.mode() & 0o022 != 0 {
        fs::set_permissions(&o.dir, Permissions::from_mode(0o755)).map_err(io(&o.dir))?;
    }
    if current.as_deref() == Some(text.as_str()) && check_safe(&o.dir, &file).is_ok() {
        return Ok((file, false));
    }
    let tmp = o.dir.join(format!(".{POLICY_FILE}.tmp"));
    let _ = fs::remove_file(&tmp);
    let mut f = File::create_new(&tmp).map_err(io(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io(&tmp))?;
    f.set_permissions(Permissions::from_mode(0o644))
        .map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, &file).map_err(io(&file))?;
    check_safe(&o.dir, &file)?;
    Ok((file, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_blocks_the_host_and_the_browsers_tools() {
        let p = policy_json(&PolicyOptions::default());
        let blocked: Vec<&str> = p["URLBlocklist"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for s in ["file://*", "chrome://*", "devtools://*", "view-source:*"] {
            assert!(blocked.contains(&s), "{s} not blocked");
        }
        assert_eq!(p["DeveloperToolsAvailability"], 2);
        assert_eq!(p["AllowFileSelectionDialogs"], false);
        assert_eq!(p["PrintingEnabled"], false);
        assert_eq!(p["DownloadRestrictions"], 3, "downloads off by default");
        assert_eq!(p["ProxySettings"]["ProxyMode"], "direct");
        assert_eq!(p["IncognitoModeAvailability"], 1);
    }

    #[test]
    fn configured_proxy_lists_and_downloads_are_in_the_policy() {
        let o = PolicyOptions {
            downloads: true,
            url_blocklist: vec!["example.com".into()],
            url_allowlist: vec!["https://www.city.example.lg.jp".into()],
            proxy: Some("proxy.pref.example:8080".into()),
            proxy_bypass: Some("127.0.0.1".into()),
            ..PolicyOptions::default()
        };
        let p = policy_json(&o);
        assert_eq!(p["DownloadRestrictions"], 0);
        assert_eq!(p["ProxySettings"]["ProxyMode"], "fixed_servers");
        assert_eq!(p["ProxySettings"]["ProxyServer"], "proxy.pref.example:8080");
        assert_eq!(p["ProxySettings"]["ProxyBypassList"], "127.0.0.1");
        assert!(p["URLBlocklist"].to_string().contains("example.com"));
        assert!(p["URLAllowlist"]
            .to_string()
            .contains("https://www.city.example.lg.jp"));
    }

    #[test]
    fn only_root_owned_entries_that_no_one_else_can_write_are_safe() {
        assert!(!writable_by_others(0, 0o100644, false));
        assert!(!writable_by_others(0, 0o40755, false));
        assert!(writable_by_others(1000, 0o100644, false), "not root's");
        assert!(writable_by_others(0, 0o100664, false), "group-writable");
        assert!(writable_by_others(0, 0o100646, false), "world-writable");
        assert!(
            !writable_by_others(0, 0o41777, true),
            "/tmp above the folder"
        );
        assert!(
            writable_by_others(0, 0o41777, false),
            "a sticky policy folder is not enough"
        );
    }

    #[test]
    fn install_writes_once_and_refuses_without_root_unless_identical() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let o = PolicyOptions {
            dir: d.path().join("managed"),
            ..PolicyOptions::default()
        };
        // Not root: nothing installed yet is an error.
        assert!(matches!(install(&o, false), Err(PolicyError::NotRoot(_))));
        if !crate::browser::running_as_root() {
            return;
        }
        // The temp folder is root's (the tests run as root in CI) but /tmp is world-writable
        // with the sticky bit, which is accepted.
        let (file, written) = install(&o, true).unwrap_or_else(|e| panic!("{e}"));
        let digest = file_sha256(&file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(digest.len(), 64);
        assert!(digest.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(written);
        let mode = fs::metadata(&file).map(|m| m.mode() & 0o777).unwrap_or(0);
        assert_eq!(mode, 0o644);
        assert!(!install(&o, true).map(|r| r.1).unwrap_or(true), "unchanged");
        assert!(
            install(&o, false).is_ok(),
            "identical file accepted without root"
        );
        let text = fs::read_to_string(&file).unwrap_or_default();
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_eq!(parsed, policy_json(&o));
    }
}
