//! End to end with real processes on loopback: `tsuitate-gateway`, `tsuitate-agent` (Xvfb +
//! Chromium) and the headless `tsuitate-viewer`, against a local test page served by the test.
//!
//! Coordinates: the test page's button covers page y 40–240 and its text field page y 280–360;
//! Chromium's tab strip and toolbar sit above the page (≈70–110 px), so frame y 230 is inside
//! the button and frame y 410 inside the field for any toolbar height in that range.

use std::time::Duration;

use tsuitate_testkit::picture::Picture;
use tsuitate_testkit::procs::wait_for;
use tsuitate_testkit::{Stack, TestPage};

/// Share of pixels in a PNG that are the page's "clicked" green (#00c000).
fn green_share(path: &std::path::Path) -> f64 {
    Picture::load(path).share(|p| p[0] < 60 && p[1] > 150 && p[1] < 230 && p[2] < 60)
}

const FIRST_FRAME: &str = "expect-change 30000\nwait 3000\n";

#[test]
fn click_and_typed_text_arrive_and_the_change_is_seen() {
    let page = TestPage::start();
    let stack = Stack::start(Some(&page.url), "");
    let script = format!(
        "{FIRST_FRAME}snapshot before.png\n\
         click 200 230\n\
         expect-change 5000\n\
         click 300 410\n\
         wait 500\n\
         type abcX\n\
         key Backspace\n\
         key d\n\
         type 情報セキュリティ\n\
         wait 3000\n\
         snapshot after-click.png\n"
    );
    let run = stack.viewer("browse", &script, &[]);
    run.assert_ok("browse");

    assert!(
        page.wait_event(Duration::from_secs(10), |e| e == "click=1")
            .is_some(),
        "the page saw the click: {:?}",
        page.events()
    );
    let text = page.wait_event(Duration::from_secs(10), |e| {
        e == "text=abcd情報セキュリティ"
    });
    assert!(
        text.is_some(),
        "the exact text arrived; the page saw {:?}",
        page.events()
    );

    let before = green_share(&run.snapshots.join("before.png"));
    let after = green_share(&run.snapshots.join("after-click.png"));
    assert!(before < 0.01, "no green before the click ({before})");
    assert!(
        after > 0.3,
        "the decoded frame shows the page turned green ({after})"
    );

    let r = &run.report;
    assert!(
        r["frames_decoded"].as_u64().unwrap_or(0) >= 2,
        "report: {r}"
    );
    assert!(r["keyframes"].as_u64().unwrap_or(0) >= 1, "report: {r}");
    assert!(r["latency_ms"]["p50"].as_f64().is_some(), "report: {r}");
    assert_eq!(r["script_completed"], true);
}

#[test]
fn reconnect_within_linger_finds_the_same_page() {
    let page = TestPage::start();
    let stack = Stack::start(Some(&page.url), "[session]\nlinger_s = 60\n");
    let first = format!("{FIRST_FRAME}click 200 230\nexpect-change 5000\nwait 500\n");
    let run = stack.viewer("first", &first, &["--keep-session"]);
    run.assert_ok("first");
    assert!(page
        .wait_event(Duration::from_secs(10), |e| e == "click=1")
        .is_some());

    let second = format!("{FIRST_FRAME}snapshot again.png\n");
    let run = stack.viewer("second", &second, &[]);
    run.assert_ok("second");
    let green = green_share(&run.snapshots.join("again.png"));
    assert!(
        green > 0.3,
        "the same browser, still green after reconnecting ({green})"
    );
    let loads = page.events().iter().filter(|e| *e == "loaded=1").count();
    assert_eq!(loads, 1, "the page was not reloaded: {:?}", page.events());
}

#[test]
fn killing_chromium_ends_the_session_with_a_reason_and_leaves_no_process() {
    let page = TestPage::start();
    let stack = Stack::start(Some(&page.url), "");
    let viewer = std::thread::scope(|s| {
        let handle = s.spawn(|| stack.viewer("crash", &format!("{FIRST_FRAME}wait 60000\n"), &[]));
        let chromium = wait_for(Duration::from_secs(40), || {
            page.events()
                .iter()
                .any(|e| e == "loaded=1")
                .then_some(())?;
            stack
                .browser_processes()
                .into_iter()
                .find(|(_, c)| c.starts_with("chrom"))
        })
        .expect("a chromium process runs below the agent");
        std::thread::sleep(Duration::from_secs(4));
        tsuitate_testkit::procs::signal(chromium.0, libc::SIGKILL);
        handle.join().expect("viewer thread")
    });
    assert_eq!(
        viewer.report["end_reason"], "BrowserExited",
        "report: {}",
        viewer.report
    );
    assert_ne!(viewer.code, Some(0));
    let leftovers = wait_for(Duration::from_secs(15), || {
        let left = stack.browser_processes();
        left.is_empty().then_some(())
    });
    assert!(
        leftovers.is_some(),
        "processes left: {:?}",
        stack.browser_processes()
    );
}

/// The agent is given its gateway by DNS name (as in Kubernetes, a headless Service): it
/// resolves it, connects, and a session works through it.
#[test]
fn an_agent_finds_its_gateway_by_dns_name() {
    let page = TestPage::start();
    let stack = Stack::start_with(
        Some(&page.url),
        "",
        "resolve_interval_s = 2\n\
         gateways = [{ addr = \"localhost:{agent_port}\", server_name = \"localhost\" }]\n",
    );
    let agent_log = stack.log("agent.log");
    assert!(
        agent_log.contains("gateway name resolved") && agent_log.contains("127.0.0.1:"),
        "{agent_log}"
    );
    let run = stack.viewer("by-name", "wait 1500\nsnapshot first.png\n", &[]);
    run.assert_ok("a session through the gateway found by name");
    assert!(
        run.report["frames_decoded"].as_u64() > Some(0),
        "{}",
        run.report
    );
}

#[test]
fn wrong_password_is_refused_with_its_exit_code() {
    let stack = Stack::start(None, "");
    let run = stack.viewer_with_password("denied", "wait 10\n", &[], "wrong");
    assert_eq!(run.code, Some(4), "stderr: {}", run.stderr);
    assert_eq!(run.report["end_reason"], "denied");
}

#[test]
fn the_viewer_is_warned_before_the_idle_timeout_ends_the_session() {
    let page = TestPage::start();
    let stack = Stack::start(
        Some(&page.url),
        "[session]\nidle_timeout_s = 12\ntimeout_warning_s = 6\n",
    );
    // No input after the first frame: warned 6 s before the end, then ended for idleness.
    let run = stack.viewer("idle", &format!("{FIRST_FRAME}wait 30000\n"), &[]);
    assert_eq!(run.report["end_reason"], "IdleTimeout", "{}", run.report);
    let warnings = run.report["timeout_warnings"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(warnings.len(), 1, "{}", run.report);
    assert_eq!(warnings[0]["kind"], "idle");
    let seconds = warnings[0]["seconds"].as_u64().unwrap_or(0);
    assert!((5..=6).contains(&seconds), "{seconds}");
    let warned_at = warnings[0]["at_ms"].as_u64().unwrap_or(0);
    let ended_at = run.report["duration_ms"].as_u64().unwrap_or(0);
    assert!(
        ended_at > warned_at + 4000,
        "the warning came well before the end: {warned_at} ms vs {ended_at} ms"
    );
    let audit = stack.log("audit.jsonl");
    assert!(audit.contains("\"timeout_warning\""), "{audit}");
}

#[test]
fn the_watermark_is_drawn_where_configured() {
    let page = TestPage::start();
    let stack = Stack::start(
        Some(&page.url),
        "[watermark]\nenabled = true\nposition = \"bottom-right\"\nopacity = 90\nsize_px = 20\n",
    );
    let run = stack.viewer(
        "watermark",
        &format!("{FIRST_FRAME}snapshot mark.png\n"),
        &[],
    );
    run.assert_ok("watermark");
    let shot = run.snapshots.join("mark.png");
    if let Ok(keep) = std::env::var("TSUITATE_KEEP_SHOTS") {
        let _ = std::fs::copy(&shot, std::path::Path::new(&keep).join("watermark.png"));
    }
    let pic = Picture::load(&shot);
    let (w, h) = (pic.width, pic.px.len() / pic.width);
    // The text's dark shadow on the page's light background, counted in a box.
    let dark_in = |x0: f64, x1: f64, y0: f64, y1: f64| {
        let mut n = 0;
        for y in (h as f64 * y0) as usize..(h as f64 * y1) as usize {
            for x in (w as f64 * x0) as usize..(w as f64 * x1) as usize {
                if pic.px[y * w + x].iter().all(|c| *c < 140) {
                    n += 1;
                }
            }
        }
        n
    };
    let bottom_right = dark_in(0.55, 1.0, 0.88, 1.0);
    let bottom_left = dark_in(0.0, 0.45, 0.88, 1.0);
    assert!(
        bottom_right > 150,
        "the watermark's text in the bottom-right corner: {bottom_right} dark pixels"
    );
    assert!(
        bottom_left < 20,
        "nothing drawn in the bottom-left corner: {bottom_left} dark pixels"
    );

    // The real agent reported its real browser and policy: `admin agents` shows them.
    let (code, out, err) = stack.admin(&["agents"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("agent-1: 0/") && out.contains(", Chromium ") && out.contains(", policy "),
        "{out}"
    );
}
