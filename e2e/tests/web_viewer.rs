//! The web viewer end to end, as a staff member meets it: a real Chromium (standing in for Edge
//! on an LGWAN PC) opens `tsuitate-web` over HTTPS, logs in, receives the remote browser's H.264
//! over real WebRTC and decodes it itself, and types into the remote page; the real gateway and
//! agent (Xvfb + Chromium) are behind it.
//!
//! Coordinates: see e2e/tests/browser.rs (frame y 230 is in the test page's button, y 410 in
//! its text field). The viewer page maps frame coordinates to its own with the video's box.

use std::path::Path;
use std::time::Duration;

use tsuitate_testkit::cdp::Browser;
use tsuitate_testkit::picture::Picture;
use tsuitate_testkit::stack::{PASSWORD, USER};
use tsuitate_testkit::web::{frame_point, login, wait_playing, WebViewer};
use tsuitate_testkit::{Stack, TestPage};

/// Share of pixels that are the test page's "clicked" green (#00c000).
fn green_share(path: &Path) -> f64 {
    Picture::load(path).share(|p| p[0] < 60 && p[1] > 150 && p[1] < 230 && p[2] < 60)
}

/// Share of white pixels (the test page's background before the click).
fn white_share(path: &Path) -> f64 {
    Picture::load(path).share(|p| p[0] > 245 && p[1] > 245 && p[2] > 245)
}

/// A log line without its terminal colour codes.
fn without_colours(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // ESC [ … letter
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn staff_log_in_from_a_browser_see_the_page_click_and_type_japanese() {
    let page = TestPage::start();
    let stack = Stack::start(Some(&page.url), "trusted_fronts = [\"web-1\"]\n");
    let web = WebViewer::start_as_front(&stack, "web-1", "");
    let mut b = Browser::launch("ja", 1280, 860);
    let shots = stack.path("shots");
    std::fs::create_dir_all(&shots).expect("shots dir");

    // A wrong password: the login page again, with the catalogue's Japanese message.
    login(&mut b, &web.url, USER, "wrong-password");
    assert_eq!(b.eval("document.documentElement.lang"), "ja");
    assert_eq!(
        b.eval("document.getElementById('notice').dataset.name"),
        "denied"
    );
    let text = b.eval("document.getElementById('notice').textContent");
    assert_eq!(text, "ユーザー名またはパスワードが違います。");
    b.screenshot(&shots.join("login-wrong-password.png"));

    // The right one: the viewer page, and the remote page on it.
    login(&mut b, &web.url, USER, PASSWORD);
    assert_eq!(b.eval("location.pathname"), "/view");
    wait_playing(&mut b);
    std::thread::sleep(Duration::from_secs(2));
    let before = shots.join("viewer-before.png");
    b.screenshot(&before);
    assert!(
        white_share(&before) > 0.4,
        "the decoded remote page (white) fills the viewer ({})",
        white_share(&before)
    );
    assert!(green_share(&before) < 0.01);

    // Click the remote button: the test page's server sees it, the page turns green.
    let (x, y) = frame_point(&mut b, 200, 230);
    b.click(x, y);
    assert!(
        page.wait_event(Duration::from_secs(10), |e| e == "click=1")
            .is_some(),
        "the click arrived: {:?}\n{}",
        page.events(),
        web.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    let after = shots.join("viewer-after-click.png");
    b.screenshot(&after);
    assert!(
        green_share(&after) > 0.3,
        "the browser decoded the changed page ({})",
        green_share(&after)
    );

    // Type: ASCII keys, an MS-IME style composition, and a direct commit.
    let (x, y) = frame_point(&mut b, 300, 410);
    b.click(x, y);
    std::thread::sleep(Duration::from_millis(1500));
    // The text field's band of the remote picture, on this page.
    let (fx0, fy0) = frame_point(&mut b, 0, 396);
    let (fx1, fy1) = frame_point(&mut b, 900, 424);
    let band =
        |p: &Path| Picture::load(p).dark_in(fx0 as usize, fy0 as usize, fx1 as usize, fy1 as usize);
    let untyped = shots.join("viewer-before-typing.png");
    b.screenshot(&untyped);
    b.type_ascii("abc");
    b.ime_compose(&["じ", "じょう", "じょうほう", "情報"], "情報");
    b.insert_text("セキュリティ");
    let typed = page.wait_event(Duration::from_secs(10), |e| e == "text=abc情報セキュリティ");
    assert!(
        typed.is_some(),
        "the exact text arrived; the page saw {:?}",
        page.events()
    );
    // The typed text is in the picture the browser decoded: keystrokes are small changes,
    // which the agent's own H.264 writer codes (its totals, logged at the session's end,
    // are checked below).
    std::thread::sleep(Duration::from_millis(1500));
    let typed_shot = shots.join("viewer-typed.png");
    b.screenshot(&typed_shot);
    let (dark_before, dark_after) = (band(&untyped), band(&typed_shot));
    assert!(
        dark_after > dark_before + 150,
        "the typed text shows in the decoded picture: {dark_before} → {dark_after} dark pixels"
    );

    // Latency measured in the page from the RTP capture times.
    std::thread::sleep(Duration::from_secs(3));
    let stats = b.eval("tsuitate.stats()");
    let p50 = stats["latency_ms"]["p50"].as_f64().unwrap_or(0.0);
    assert!(
        p50 > 0.0 && p50 < 5000.0 && stats["latency_ms"]["samples"].as_u64() > Some(0),
        "plausible latency: {stats}"
    );
    b.eval("document.getElementById('stats-toggle').click(); true");
    std::thread::sleep(Duration::from_millis(2500));
    b.screenshot(&shots.join("stats-ja.png"));
    b.eval("document.getElementById('stats-toggle').click(); true");
    // ... and reported to the gateway, whose metrics now include this browser viewer.
    let reports = tsuitate_testkit::procs::wait_for(Duration::from_secs(10), || {
        tsuitate_testkit::stack::metric(
            &stack.metrics(),
            "tsuitate_viewer_latency_p50_seconds_count",
        )
        .filter(|n| *n > 0.0)
    });
    assert!(reports.is_some(), "the page's latency reached the gateway");

    // The gateway's audit log names the browser (its own TCP port, not the web viewer's QUIC
    // socket) and the front it came through.
    let audit = std::fs::read_to_string(stack.path("audit.jsonl")).unwrap_or_default();
    let success = audit
        .lines()
        .find(|l| l.contains("login_success"))
        .unwrap_or_default();
    assert!(
        success.contains("\"via\":\"web-1 ") && success.contains("\"viewer\":\"127.0.0.1:"),
        "{success}"
    );

    // A reload gets the same session back: the picture plays again, typing still arrives.
    b.navigate(&format!("{}/view", web.url));
    assert_eq!(b.eval("location.pathname"), "/view");
    wait_playing(&mut b);
    let (x, y) = frame_point(&mut b, 300, 410);
    b.click(x, y);
    std::thread::sleep(Duration::from_millis(500));
    b.key("End", "End", 35, None);
    b.type_ascii("x");
    assert!(
        page.wait_event(Duration::from_secs(10), |e| e
            == "text=abc情報セキュリティx")
            .is_some(),
        "after the reload the same remote page gets the input: {:?}",
        page.events()
    );

    // Log out: the login page says so, and the gateway ended the session.
    b.eval("document.getElementById('logout').click(); true");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        b.wait_true(
            "location.pathname === '/' && !!document.getElementById('notice')",
            Duration::from_secs(10)
        ),
        "back on the login page"
    );
    assert_eq!(
        b.eval("document.getElementById('notice').dataset.name"),
        "Logout"
    );
    b.screenshot(&shots.join("logged-out.png"));
    let ended = tsuitate_testkit::procs::wait_for(Duration::from_secs(10), || {
        let audit = std::fs::read_to_string(stack.path("audit.jsonl")).ok()?;
        audit
            .lines()
            .any(|l| l.contains("session_end") && l.contains("Logout"))
            .then_some(())
    });
    assert!(
        ended.is_some(),
        "the gateway audited the logout:\n{}",
        std::fs::read_to_string(stack.path("audit.jsonl")).unwrap_or_default()
    );
    // The session's frames: openh264's keyframe(s), and our writer's frames for the typing.
    let totals = tsuitate_testkit::procs::wait_for(Duration::from_secs(10), || {
        stack
            .log("agent.log")
            .lines()
            .find(|l| l.contains("encoder totals"))
            .map(without_colours)
    });
    let Some(totals) = totals else {
        panic!(
            "the agent logged its encoder totals:\n{}",
            stack.log("agent.log")
        )
    };
    let count = |key: &str| -> u64 {
        totals
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert!(
        count("writer_frames") >= 5 && count("intra_mbs") > 0 && count("openh264_idr") >= 1,
        "typing went through the agent's writer: {totals}"
    );
    keep_shots(&shots);
}

/// With `TSUITATE_KEEP_SHOTS` set, copy the screenshots to /tmp/tsuitate-web-shots to look at.
fn keep_shots(shots: &Path) {
    if std::env::var_os("TSUITATE_KEEP_SHOTS").is_some() {
        let keep = std::path::PathBuf::from("/tmp/tsuitate-web-shots");
        let _ = std::fs::create_dir_all(&keep);
        for f in std::fs::read_dir(shots).into_iter().flatten().flatten() {
            let _ = std::fs::copy(f.path(), keep.join(f.file_name()));
        }
    }
}

/// Send `message` on a data channel of a fresh peer connection made by the page itself (as a
/// tampered page would): same session cookie, same CSRF token.
const TAMPER: &str = r#"(async (message) => {
  const csrf = document.querySelector('meta[name=csrf]').content;
  const pc = new RTCPeerConnection({iceServers: []});
  pc.addTransceiver('video', {direction: 'recvonly'});
  const dc = pc.createDataChannel('input');
  const opened = new Promise(r => dc.onopen = r);
  await pc.setLocalDescription(await pc.createOffer());
  const r = await fetch('/offer', {method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf}, body: JSON.stringify(pc.localDescription)});
  const answer = await r.json();
  window.lastAnswer = answer.sdp;
  await pc.setRemoteDescription(answer);
  await opened;
  dc.send(message);
  return true;
})"#;

#[test]
fn a_malformed_page_message_ends_only_that_browsers_session() {
    let page = TestPage::start();
    let stack = Stack::start(Some(&page.url), "");
    stack.add_user("suzuki", "e2e-パスワード-2");
    let web = WebViewer::start(&stack, "page_linger_s = 2\n");
    let mut a = Browser::launch("ja", 1024, 700);
    let mut b = Browser::launch("en-US", 1024, 700);
    login(&mut a, &web.url, USER, PASSWORD);
    login(&mut b, &web.url, "suzuki", "e2e-パスワード-2");
    wait_playing(&mut a);
    wait_playing(&mut b);
    assert_eq!(b.eval("document.documentElement.lang"), "en");
    // Both browsers' media go to the one UDP port the web viewer listens on.
    let rtc_port = web.rtc_addr.rsplit(':').next().expect("port");
    for page in [&mut a, &mut b] {
        let expr = format!("window.tsuitate.stats().media_port === {rtc_port}");
        assert!(
            page.wait_true(&expr, Duration::from_secs(10)),
            "media on the shared port {rtc_port}: {}",
            page.eval("window.tsuitate.stats().media_port")
        );
    }

    // A clipboard message is not in the page protocol: A's session ends, with the reason.
    a.eval(&format!(
        "{TAMPER}(JSON.stringify({{t: 'clipboard', text: 'secret'}}))"
    ));
    assert!(
        a.wait_true(
            "document.getElementById('status').classList.contains('end')",
            Duration::from_secs(10)
        ),
        "A's page shows that its session ended: {}",
        a.eval("document.getElementById('status').textContent")
    );
    // The answer offered one host candidate, on the shared port.
    let answer = a.eval("window.lastAnswer");
    let answer = answer.as_str().unwrap_or("");
    let candidates: Vec<&str> = answer
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .collect();
    assert!(!candidates.is_empty(), "{answer}");
    for c in &candidates {
        assert!(c.contains(&format!(" {rtc_port} typ host")), "{answer}");
    }
    let shots = stack.path("shots");
    std::fs::create_dir_all(&shots).expect("shots dir");
    a.screenshot(&shots.join("ended-elsewhere.png"));
    b.screenshot(&shots.join("viewer-en.png"));
    // (The tampering connection took the session over, so the page itself was told that;
    // the login page tells why the session ended.)
    assert!(
        tsuitate_testkit::procs::wait_for(Duration::from_secs(10), || {
            a.navigate(&format!("{}/", web.url));
            (a.eval("document.getElementById('notice') && document.getElementById('notice').dataset.name") == "page_error").then_some(())
        })
        .is_some(),
        "the login page names the reason"
    );
    let shown = a.eval("document.getElementById('notice').textContent");
    assert!(
        shown.as_str().unwrap_or("").contains("不正なメッセージ"),
        "{shown}"
    );
    a.screenshot(&shots.join("login-page-error.png"));
    a.navigate(&format!("{}/?lang=en", web.url));
    assert_eq!(a.eval("document.documentElement.lang"), "en");
    a.screenshot(&shots.join("login-en.png"));
    keep_shots(&shots);
    let log = web.log();
    assert!(log.contains("page message refused"), "{log}");
    assert!(!log.contains("secret"), "page content is never logged");

    // B still works: typed text arrives.
    let (x, y) = frame_point(&mut b, 300, 410);
    b.click(x, y);
    std::thread::sleep(Duration::from_millis(500));
    b.type_ascii("still here");
    assert!(
        page.wait_event(Duration::from_secs(10), |e| e == "text=still here")
            .is_some(),
        "B's session is unaffected: {:?}",
        page.events()
    );

    b.eval("document.getElementById('stats-toggle').click(); true");
    std::thread::sleep(Duration::from_millis(2500));
    b.screenshot(&shots.join("stats-en.png"));
    keep_shots(&shots);

    // B's window gets smaller on a HiDPI screen: after the debounce the remote browser takes
    // the new size in device pixels (one remote pixel per screen pixel).
    b.call(
        "Emulation.setDeviceMetricsOverride",
        serde_json::json!({"width": 640, "height": 420, "deviceScaleFactor": 2, "mobile": false}),
    );
    let want = b.eval(
        "(() => { const r = document.getElementById('stage').getBoundingClientRect(); \
           return [Math.floor(r.width * 2 / 2) * 2, Math.floor(r.height * 2 / 2) * 2]; })()",
    );
    let expr = format!(
        "document.getElementById('screen').videoWidth === {} && document.getElementById('screen').videoHeight === {}",
        want[0], want[1]
    );
    assert!(
        b.wait_true(&expr, Duration::from_secs(15)),
        "the remote size follows the window: want {want}, have {}",
        b.eval("[document.getElementById('screen').videoWidth, document.getElementById('screen').videoHeight]")
    );
    assert_eq!(want[0], 1280, "640 CSS px at devicePixelRatio 2");

    // B's browser goes away without a word (the tab is closed, the PC switched off): once its
    // connection has been quiet (about 5 s) and page_linger_s (2 s) has passed, the session is
    // logged out — well before ICE would declare the connection failed (25 s).
    drop(b);
    let ended = tsuitate_testkit::procs::wait_for(Duration::from_secs(15), || {
        let audit = std::fs::read_to_string(stack.path("audit.jsonl")).ok()?;
        audit
            .lines()
            .any(|l| l.contains("session_end") && l.contains("suzuki") && l.contains("Logout"))
            .then_some(())
    });
    assert!(
        ended.is_some(),
        "the closed tab was logged out:\n{}",
        web.log()
    );
}

#[test]
fn the_page_warns_before_the_idle_timeout_and_input_clears_the_warning() {
    let page = TestPage::start();
    let stack = Stack::start(
        Some(&page.url),
        "[session]\nidle_timeout_s = 20\ntimeout_warning_s = 10\n",
    );
    let web = WebViewer::start(&stack, "");
    let mut b = Browser::launch("ja", 1024, 700);
    login(&mut b, &web.url, USER, PASSWORD);
    wait_playing(&mut b);
    // About 10 s after the session started, the warning shows over the picture.
    assert!(
        b.wait_true(
            "document.getElementById('status').dataset.warning === 'idle' && !document.getElementById('status').hidden",
            Duration::from_secs(20)
        ),
        "the page shows the idle warning: {}",
        b.eval("document.getElementById('status').textContent")
    );
    let text = b.eval("document.getElementById('status').textContent");
    assert!(
        text.as_str()
            .is_some_and(|t| t.contains("操作がないため、あと") && t.contains("秒で切断されます")),
        "{text}"
    );
    let shots = stack.path("shots");
    std::fs::create_dir_all(&shots).expect("shots dir");
    b.screenshot(&shots.join("timeout-warning.png"));
    keep_shots(&shots);
    // Input takes it away (and resets the gateway's idle timer: the session goes on).
    let (x, y) = frame_point(&mut b, 300, 410);
    b.click(x, y);
    assert!(
        b.wait_true(
            "document.getElementById('status').hidden",
            Duration::from_secs(5)
        ),
        "the warning goes with input"
    );
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(
        b.eval("document.getElementById('status').classList.contains('end')"),
        false,
        "the session did not end: input reset the idle timer"
    );
}

#[test]
fn an_emergency_stop_tells_the_page_why_and_logins_wait_for_resume() {
    let page = TestPage::start();
    let stack = Stack::start(Some(&page.url), "");
    let web = WebViewer::start(&stack, "");
    let mut b = Browser::launch("ja", 1024, 700);
    login(&mut b, &web.url, USER, PASSWORD);
    wait_playing(&mut b);

    let (code, out, err) = stack.admin(&["emergency-stop"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        b.wait_true(
            "document.getElementById('status').classList.contains('end')",
            Duration::from_secs(10)
        ),
        "the page shows that the session ended"
    );
    let shown = b.eval("document.getElementById('status').textContent");
    assert!(
        shown.as_str().unwrap_or("").contains("緊急停止"),
        "the page says why: {shown}"
    );
    let shots = stack.path("shots");
    std::fs::create_dir_all(&shots).expect("shots dir");
    b.screenshot(&shots.join("emergency-stop-viewer.png"));

    // A new login is refused with the same reason until an admin resumes.
    login(&mut b, &web.url, USER, PASSWORD);
    let name = b.eval("document.getElementById('notice').dataset.name");
    assert_eq!(name, "EmergencyStop", "{}", web.log());
    let notice = b.eval("document.getElementById('notice').textContent");
    assert!(
        notice.as_str().unwrap_or("").contains("緊急停止"),
        "{notice}"
    );
    b.screenshot(&shots.join("emergency-stop-login.png"));
    keep_shots(&shots);

    let (code, out, err) = stack.admin(&["resume"]);
    assert_eq!(code, 0, "{out}{err}");
    login(&mut b, &web.url, USER, PASSWORD);
    wait_playing(&mut b);
}

#[test]
fn fullscreen_locks_the_keyboard_and_ctrl_chords_reach_the_remote_browser() {
    // The test page, reporting the Ctrl chords it receives.
    let html = tsuitate_testkit::page::PAGE.replace(
        " report('loaded=1');",
        " document.addEventListener('keydown', function(e) {\n\
           if (e.ctrlKey) report('key=' + encodeURIComponent('ctrl+' + e.code));\n\
         });\n report('loaded=1');",
    );
    let page = TestPage::serve(html);
    let stack = Stack::start(Some(&page.url), "");
    let web = WebViewer::start(&stack, "");
    let mut b = Browser::launch("ja", 1024, 700);
    login(&mut b, &web.url, USER, PASSWORD);
    wait_playing(&mut b);
    assert_eq!(b.eval("window.tsuitate.stats().fullscreen"), false);

    // The full-screen button (a real click: full screen needs a user gesture).
    let at = b.eval(
        "(() => { const r = document.getElementById('fullscreen').getBoundingClientRect(); \
           return [r.left + r.width / 2, r.top + r.height / 2]; })()",
    );
    b.click(at[0].as_f64().expect("x"), at[1].as_f64().expect("y"));
    assert!(
        b.wait_true(
            "window.tsuitate.stats().fullscreen && window.tsuitate.stats().keyboard_locked",
            Duration::from_secs(10)
        ),
        "full screen with the keyboard locked: {}",
        b.eval("window.tsuitate.stats()")
    );
    let shots = stack.path("shots");
    std::fs::create_dir_all(&shots).expect("shots dir");
    assert_eq!(
        b.eval("document.getElementById('fullscreen').textContent"),
        "全画面を終了 (F11)"
    );
    b.screenshot(&shots.join("fullscreen.png"));
    keep_shots(&shots);

    // A Ctrl chord is sent on, not kept by the viewer page (after a click on the remote page,
    // as a user would, which also gives the remote window the keyboard focus).
    // Full screen resizes the remote browser (headless Chromium's screen is 800×600): wait for
    // the picture of the new size, then click inside it.
    assert!(
        b.wait_true(
            "(() => { const r = document.getElementById('stage').getBoundingClientRect(); \
               const s = window.tsuitate.stats(); \
               return s.width === Math.floor(r.width / 2) * 2 && s.height === Math.floor(r.height / 2) * 2; })()",
            Duration::from_secs(10)
        ),
        "the picture has the full-screen size: {}",
        b.eval("window.tsuitate.stats()")
    );
    let width = b
        .eval("window.tsuitate.stats().width")
        .as_u64()
        .expect("width");
    // Right of the test page's button, on the page's body.
    let (x, y) = frame_point(&mut b, width.saturating_sub(20) as u32, 100);
    b.click(x, y);
    std::thread::sleep(Duration::from_millis(500));
    b.chord(2, "m", "KeyM", 0x4d);
    assert!(
        page.wait_event(Duration::from_secs(10), |e| e == "key=ctrl+KeyM")
            .is_some(),
        "Ctrl+M reached the remote page: {:?}",
        page.events()
    );

    // F11 leaves full screen and releases the keyboard.
    b.key("F11", "F11", 0x7a, None);
    assert!(
        b.wait_true(
            "!window.tsuitate.stats().fullscreen && !window.tsuitate.stats().keyboard_locked",
            Duration::from_secs(10)
        ),
        "F11 left full screen: {}",
        b.eval("window.tsuitate.stats()")
    );
}
