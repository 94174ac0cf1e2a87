//! Open the web viewer in a headless Chromium (the test kit's LGWAN-PC browser), log in, wait for
//! the remote browser's picture, and save a screenshot of what staff would see. Used by
//! `scripts/demo.sh` on machines without a display.
//!
//! Web ビューアをヘッドレス Chromium で開いてログインし、画面のスクリーンショットを保存します。
//!
//! Usage: `web-shot URL USER OUT.png [SECONDS]`; the password comes from `TSUITATE_PASSWORD`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use tsuitate_testkit::cdp::Browser;
use tsuitate_testkit::web::{login, wait_playing};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(user), Some(out)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: web-shot URL USER OUT.png [SECONDS]  (password in TSUITATE_PASSWORD)");
        return ExitCode::from(2);
    };
    let seconds: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(3);
    let password = std::env::var("TSUITATE_PASSWORD").unwrap_or_default();
    let mut b = Browser::launch("ja", 1280, 800);
    login(&mut b, url.trim_end_matches('/'), user, &password);
    if b.eval("location.pathname") != "/view" {
        let notice = b.eval(
            "document.getElementById('notice') && document.getElementById('notice').textContent",
        );
        eprintln!("web-shot: login failed: {notice}");
        b.screenshot(Path::new(out));
        return ExitCode::FAILURE;
    }
    wait_playing(&mut b);
    std::thread::sleep(Duration::from_secs(seconds));
    b.screenshot(Path::new(out));
    println!("{}", b.eval("JSON.stringify(tsuitate.stats())"));
    ExitCode::SUCCESS
}
