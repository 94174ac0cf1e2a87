//! Chromium's command line, environment and initial profile preferences: a second layer under
//! the managed policy ([`super::policy`]), written into the empty per-session profile before
//! start (see docs/agent.md).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::xvfb::DisplayAccess;

/// The browser's version as `chromium --version` prints it, without the build note
/// ("Chromium 131.0.6778.85"), at most 64 bytes; empty when it cannot be run within 10 s.
/// Reported to the gateway for `admin agents` and the self-check.
pub async fn version(chromium: &Path) -> String {
    let run = tokio::process::Command::new(chromium)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(std::time::Duration::from_secs(10), run).await {
        Ok(Ok(out)) if out.status.success() => version_line(&String::from_utf8_lossy(&out.stdout)),
        Ok(Ok(out)) => {
            tracing::warn!(status = %out.status, "chromium --version failed");
            String::new()
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "chromium --version could not run");
            String::new()
        }
        Err(_) => {
            tracing::warn!("chromium --version did not answer in 10 s");
            String::new()
        }
    }
}

/// The first line of `--version` output, cut before " built on", printable, ≤ 64 bytes.
fn version_line(out: &str) -> String {
    let line = out.lines().next().unwrap_or("").trim();
    let line = line.split(" built on").next().unwrap_or(line);
    let mut v = String::new();
    for c in line.chars().filter(|c| !c.is_control()) {
        if v.len() + c.len_utf8() > 64 {
            break;
        }
        v.push(c);
    }
    v
}

/// What Chromium is started with.
#[derive(Debug, Clone)]
pub struct ChromiumLaunch<'a> {
    /// Browser window size (= display size).
    pub width: u16,
    /// Browser window height.
    pub height: u16,
    /// The `--user-data-dir`.
    pub profile_dir: &'a Path,
    /// Where downloads go (dies with the session).
    pub download_dir: &'a Path,
    /// `HOME` for the browser (inside the session directory).
    pub home_dir: &'a Path,
    /// The first page.
    pub start_url: &'a str,
    /// Upstream HTTP proxy (`host:port` or a scheme URL), if any.
    pub proxy: Option<&'a str>,
    /// Hosts that bypass the proxy.
    pub proxy_bypass: Option<&'a str>,
}

impl ChromiumLaunch<'_> {
    /// Command-line switches. Never `--no-sandbox`.
    pub fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut s = |v: String| a.push(v.into());
        s(format!("--user-data-dir={}", self.profile_dir.display()));
        s("--lang=ja".into());
        s("--window-position=0,0".into());
        s(format!("--window-size={},{}", self.width, self.height));
        s("--force-device-scale-factor=1".into());
        for flag in [
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-breakpad",
            "--disable-crash-reporter",
            "--disable-domain-reliability",
            "--disable-client-side-phishing-detection",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-component-extensions-with-background-pages",
            "--disable-print-preview",
            "--disable-session-crashed-bubble",
            "--hide-crash-restore-bubble",
            "--noerrdialogs",
            "--no-pings",
            "--metrics-recording-only",
            "--password-store=basic",
            "--use-mock-keychain",
            "--disable-quic",
            "--disable-gpu",
            "--disable-features=Translate,TranslateUI,MediaRouter,OptimizationHints,\
             AutofillServerCommunication,InterestFeedContentSuggestions,\
             CertificateTransparencyComponentUpdater,DialMediaRouteProvider,\
             GlobalMediaControls,PrivacySandboxSettings4,OptimizationGuideModelDownloading,\
             OptimizationGuideOnDeviceModel,OnDeviceModelService",
        ] {
            s(flag.into());
        }
        match self.proxy {
            Some(p) => {
                s(format!("--proxy-server={p}"));
                if let Some(b) = self.proxy_bypass {
                    s(format!("--proxy-bypass-list={b}"));
                }
            }
            None => s("--no-proxy-server".into()),
        }
        s("--".into());
        s(self.start_url.into());
        a
    }

    /// The environment (everything else is cleared).
    pub fn env(&self, display: &DisplayAccess) -> Vec<(&'static str, OsString)> {
        let home = self.home_dir.as_os_str().to_owned();
        let mut cache = home.clone();
        cache.push("/.cache");
        let mut config = home.clone();
        config.push("/.config");
        vec![
            ("PATH", "/usr/bin:/bin".into()),
            ("DISPLAY", display.display_name().into()),
            ("XAUTHORITY", display.xauthority.as_os_str().to_owned()),
            ("HOME", home),
            ("XDG_CACHE_HOME", cache),
            ("XDG_CONFIG_HOME", config),
            // Chromium on Linux takes its UI language from the environment, not --lang.
            ("LANG", "ja_JP.UTF-8".into()),
            ("LANGUAGE", "ja".into()),
            ("TZ", "Asia/Tokyo".into()),
        ]
    }
}

/// The initial `Default/Preferences` of the empty profile: downloads into the session
/// directory without asking, printing off (the `PrintingEnabled` policy's preference), no
/// translate prompt, no password saving, no background services, Japanese content language.
pub fn preferences_json(download_dir: &Path) -> String {
    let dl = json_string(&download_dir.to_string_lossy());
    format!(
        r#"{{
  "browser": {{ "check_default_browser": false, "has_seen_welcome_page": true }},
  "download": {{ "default_directory": {dl}, "prompt_for_download": false, "directory_upgrade": true }},
  "savefile": {{ "default_directory": {dl} }},
  "printing": {{ "enabled": false }},
  "translate": {{ "enabled": false }},
  "intl": {{ "accept_languages": "ja,en-US,en", "selected_languages": "ja,en-US,en" }},
  "credentials_enable_service": false,
  "profile": {{
    "password_manager_enabled": false,
    "default_content_setting_values": {{
      "notifications": 2, "geolocation": 2, "media_stream_camera": 2, "media_stream_mic": 2
    }}
  }},
  "safebrowsing": {{ "enabled": false }},
  "search": {{ "suggest_enabled": false }},
  "alternate_error_pages": {{ "enabled": false }},
  "net": {{ "network_prediction_options": 2 }},
  "spellcheck": {{ "use_spelling_service": false }},
  "signin": {{ "allowed": false }},
  "sync": {{ "requested": false }}
}}
"#
    )
}

/// `Local State` for the profile: no metrics, no first-run promos.
pub fn local_state_json() -> &'static str {
    r#"{ "user_experience_metrics": { "reporting_enabled": false }, "browser": { "enabled_labs_experiments": [] } }
"#
}

/// A JSON string literal for `s`.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Paths inside one session directory.
#[derive(Debug, Clone)]
pub struct SessionPaths {
    /// The session directory itself (deleted at the end).
    pub root: PathBuf,
    /// Chromium `--user-data-dir`.
    pub profile: PathBuf,
    /// Downloads.
    pub downloads: PathBuf,
    /// `HOME`.
    pub home: PathBuf,
    /// Xauthority file.
    pub xauthority: PathBuf,
    /// Xvfb's and Chromium's stderr.
    pub log: PathBuf,
}

impl SessionPaths {
    /// The layout under `root`.
    pub fn new(root: &Path) -> SessionPaths {
        SessionPaths {
            root: root.to_path_buf(),
            profile: root.join("profile"),
            downloads: root.join("downloads"),
            home: root.join("home"),
            xauthority: root.join("Xauthority"),
            log: root.join("browser.log"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_line_drops_the_build_note_and_control_characters() {
        assert_eq!(
            version_line("Chromium 156.0.8078.108 built on Debian GNU/Linux 12 (bookworm)\n"),
            "Chromium 156.0.8078.108"
        );
        assert_eq!(
            version_line("Google Chrome 131.0\u{1b}[0m\n"),
            "Google Chrome 131.0[0m"
        );
        assert_eq!(version_line(""), "");
        assert_eq!(version_line(&"あ".repeat(40)).len(), 63);
    }

    #[test]
    fn never_disables_the_sandbox() {
        let p = Path::new("/tmp/s");
        let l = ChromiumLaunch {
            width: 1280,
            height: 720,
            profile_dir: p,
            download_dir: p,
            home_dir: p,
            start_url: "about:blank",
            proxy: Some("proxy.example:8080"),
            proxy_bypass: None,
        };
        let args: Vec<String> = l
            .args()
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(!args.iter().any(|a| a.contains("no-sandbox")));
        assert!(args.contains(&"--window-size=1280,720".to_string()));
        assert!(args.contains(&"--proxy-server=proxy.example:8080".to_string()));
        assert_eq!(args.last().map(String::as_str), Some("about:blank"));
    }

    #[test]
    fn preferences_are_json_with_escaped_paths() {
        let j = preferences_json(Path::new("/tmp/a\"b"));
        assert!(j.contains(r#""/tmp/a\"b""#));
    }
}
