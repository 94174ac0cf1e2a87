//! The Windows build of the native viewer (scripts/build-windows.sh) under Wine, against the real
//! gateway and agent (Xvfb + Chromium) on loopback: it logs in, the typed text (ASCII and
//! committed Japanese) reaches the remote page, and a snapshot is written — Windows sockets,
//! Windows paths, the Windows build's code. scripts/test.sh builds the .exe, installs Wine and
//! sets `TSUITATE_WINDOWS_VIEWER`; without it the test says so and passes.
//!
//! Test-only stand-in: Wine 8 lacks bcryptprimitives.dll (Windows 10+ ships it), so
//! e2e/wine/bcryptprimitives.c is built with mingw-w64 and put beside the .exe.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tsuitate_testkit::stack::{PASSWORD, USER};
use tsuitate_testkit::{Stack, TestPage};

const WINE: &str = "/usr/lib/wine/wine64";
const WINESERVER: &str = "/usr/lib/wine/wineserver";

/// Stops the Wine server of a prefix when the test ends.
struct Prefix(PathBuf);

impl Drop for Prefix {
    fn drop(&mut self) {
        let _ = Command::new(WINESERVER)
            .arg("-k")
            .env("WINEPREFIX", &self.0)
            .status();
    }
}

#[test]
fn the_windows_viewer_logs_in_and_types_under_wine() {
    let Some(exe) = std::env::var_os("TSUITATE_WINDOWS_VIEWER").map(PathBuf::from) else {
        eprintln!("skipped: TSUITATE_WINDOWS_VIEWER is not set (scripts/test.sh sets it after scripts/build-windows.sh)");
        return;
    };
    assert!(exe.is_file(), "{} missing", exe.display());
    assert!(Path::new(WINE).is_file(), "Wine (wine64) is not installed");
    let page = TestPage::start();
    let stack = Stack::start(Some(&page.url), "");
    let d = stack.dir.path();
    // The .exe and the stand-in DLL in one folder.
    let bin = d.join("windows");
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::fs::copy(&exe, bin.join("tsuitate-viewer.exe")).expect("copy exe");
    let stub = Path::new(env!("CARGO_MANIFEST_DIR")).join("wine/bcryptprimitives.c");
    let built = Command::new("x86_64-w64-mingw32-gcc")
        .args(["-shared", "-O2", "-o"])
        .arg(bin.join("bcryptprimitives.dll"))
        .arg(&stub)
        .arg("-lbcrypt")
        .status()
        .expect("mingw-w64 gcc");
    assert!(built.success(), "building the bcryptprimitives stand-in");
    let prefix = Prefix(d.join("wineprefix"));
    let script = d.join("wine.script");
    std::fs::write(
        &script,
        "expect-change 60000\nwait 3000\nclick 300 410\nwait 500\ntype wine 情報\nwait 2000\nsnapshot wine.png\n",
    )
    .expect("script");
    let report = d.join("wine.report.json");
    let shots = d.join("wine-shots");
    let out = Command::new(WINE)
        .arg(bin.join("tsuitate-viewer.exe"))
        .args(["--headless", "--gateway", &stack.viewer_addr])
        .args([
            "--server-name",
            "localhost",
            "--user",
            USER,
            "--lang",
            "ja",
            "--ca",
        ])
        .arg(d.join("pki/ca.pem"))
        .arg("--script")
        .arg(&script)
        .arg("--report")
        .arg(&report)
        .arg("--snapshot-dir")
        .arg(&shots)
        .env("TSUITATE_PASSWORD", PASSWORD)
        .env("WINEPREFIX", &prefix.0)
        .env("WINEDEBUG", "-all")
        .env_remove("DISPLAY")
        .stdin(Stdio::null())
        .output()
        .expect("run wine");
    let report: serde_json::Value = std::fs::read_to_string(&report)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the Windows viewer under Wine failed: {}\nreport: {report}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["script_completed"], true, "{report}");
    assert!(
        page.wait_event(Duration::from_secs(10), |e| e == "text=wine 情報")
            .is_some(),
        "typed text arrived: {:?}",
        page.events()
    );
    let png = shots.join("wine.png");
    assert!(
        std::fs::metadata(&png).is_ok_and(|m| m.len() > 1000),
        "snapshot written at {}",
        png.display()
    );
    assert!(
        report["frames_decoded"].as_u64().unwrap_or(0) >= 1,
        "{report}"
    );
    if std::env::var_os("TSUITATE_KEEP_SHOTS").is_some() {
        let keep = Path::new("/tmp/tsuitate-web-shots");
        let _ = std::fs::create_dir_all(keep);
        let _ = std::fs::copy(&png, keep.join("windows-viewer-under-wine.png"));
    }
}
