//! A gateway dies under a session (issue 13): the agent keeps the browser, the viewer —
//! given both gateways — reconnects through the other one, which finds the browser the agent
//! holds and resumes it from a keyframe. The page is the same (never reloaded), and the text
//! typed before the loss is still in its field.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tsuitate_testkit::cdp::Browser;
use tsuitate_testkit::procs::wait_for;
use tsuitate_testkit::stack::{http_get, metric, OtherGateway, PASSWORD, USER};
use tsuitate_testkit::web::{frame_point, login, wait_playing, WebViewer};
use tsuitate_testkit::{Stack, TestPage};

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Two gateways sharing their owner key and one agent connected to both, its start page
/// `page`.
fn two_gateways_one_agent(page: &TestPage) -> (Stack, OtherGateway) {
    let mut stack = Stack::start(None, "[session]\nowner_key_file = \"owner.key\"\n");
    let second = stack.start_another_gateway();
    let gateways = format!(
        "gateways = [{{ addr = \"{}\", server_name = \"localhost\" }}, \
                     {{ addr = \"{}\", server_name = \"localhost\" }}]\n",
        stack.agent_addr, second.agent_addr
    );
    stack.start_agent(&page.url, &gateways);
    for (name, admin) in [("first", &stack.admin_addr), ("second", &second.admin_addr)] {
        assert!(
            wait_for(Duration::from_secs(30), || {
                let m = http_get(admin, "/metrics").unwrap_or_default();
                metric(&m, "tsuitate_agents_connected").filter(|v| *v >= 1.0)
            })
            .is_some(),
            "the agent registered with the {name} gateway:\n{}",
            stack.log("agent.log")
        );
    }
    (stack, second)
}

/// After the kill: the second gateway took over the browser the agent held, and started none.
fn second_gateway_resumed_the_browser(second: &OtherGateway) {
    let resumed = wait_for(Duration::from_secs(30), || {
        (metric(
            &second.metrics(),
            "tsuitate_sessions_resumed_on_agent_total",
        ) == Some(1.0))
        .then_some(())
    });
    let m = second.metrics();
    assert!(
        resumed.is_some(),
        "the second gateway took over the browser the agent held:\n{m}"
    );
    assert_eq!(
        metric(&m, "tsuitate_sessions_started_total"),
        Some(0.0),
        "no new browser was started:\n{m}"
    );
}

/// A headless viewer given both gateways that types `abc` into the page's field, waits
/// `pause_ms` (the test stops gateways meanwhile), types `def` and logs out; returned once the
/// page has seen `abc`.
fn typing_viewer(
    stack: &Stack,
    second: &OtherGateway,
    page: &TestPage,
    name: &str,
    pause_ms: u64,
) -> tsuitate_testkit::stack::RunningViewer {
    let both = format!("{},{}", stack.viewer_addr, second.viewer_addr);
    let script = format!(
        "expect-change 30000\nwait 2000\nclick 300 410\nwait 500\ntype abc\n\
         wait {pause_ms}\ntype def\nwait 3000\nsnapshot after.png\n"
    );
    let viewer = stack.spawn_viewer_at(&both, USER, PASSWORD, name, &script, &[]);
    assert!(
        page.wait_event(Duration::from_secs(60), |e| e == "text=abc")
            .is_some(),
        "{name}: typed before the gateways were touched: {:?}",
        page.events()
    );
    viewer
}

#[test]
fn a_killed_gateway_costs_a_viewer_a_reconnect_not_its_browser() {
    let page = TestPage::start();
    let (mut stack, second) = two_gateways_one_agent(&page);
    let first_metrics = || stack.metrics();

    // The viewer knows both gateways and starts on the first. It types, waits while the
    // first gateway is killed, and types again.
    let viewer = typing_viewer(&stack, &second, &page, "failover", 15_000);
    assert_eq!(
        metric(&first_metrics(), "tsuitate_sessions_active"),
        Some(1.0),
        "the session runs through the first gateway"
    );

    // kill -9 the first gateway.
    let killed_at = unix_ms();
    stack.gateway.kill();

    let run = viewer.wait();
    if std::env::var_os("TSUITATE_KEEP_SHOTS").is_some() {
        let _ = std::fs::copy(run.snapshots.join("after.png"), "/tmp/failover-after.png");
        stack.keep_files();
        println!("kept {}", stack.dir.path().display());
    }
    run.assert_ok("the viewer, across the loss of its gateway");
    let text = page.wait_event(Duration::from_secs(10), |e| e == "text=abcdef");
    assert!(
        text.is_some(),
        "the text typed before the loss was still in the field: {:?}",
        page.events()
    );
    let loads = page.events().iter().filter(|e| *e == "loaded=1").count();
    assert_eq!(loads, 1, "the page was never reloaded: {:?}", page.events());
    second_gateway_resumed_the_browser(&second);
    let reconnects = run.report["reconnects"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(reconnects.len(), 1, "one reconnect: {}", run.report);
    let back = reconnects[0]["back_unix_ms"].as_u64().unwrap_or(0);
    let after = back.saturating_sub(killed_at);
    // The goal (3 s) is measured, not asserted (docs/benchmarks.md); this bound only says the
    // picture came back at all within the viewer's script.
    println!("failover: a picture again {after} ms after kill -9 of the gateway");
    assert!(
        back > killed_at && after < 15_000,
        "a picture came back after the kill ({after} ms): {}",
        run.report
    );
}

#[test]
fn a_killed_gateway_costs_a_web_viewer_page_a_moment_not_its_browser() {
    let page = TestPage::start();
    let (mut stack, second) = two_gateways_one_agent(&page);
    let both = format!(
        "gateway = \"{},{}\"\n",
        stack.viewer_addr, second.viewer_addr
    );
    let web = WebViewer::start(&stack, &both);
    let mut b = Browser::launch("ja", 1280, 860);
    login(&mut b, &web.url, USER, PASSWORD);
    wait_playing(&mut b);
    assert!(
        page.wait_event(Duration::from_secs(30), |e| e == "loaded=1")
            .is_some(),
        "the remote page loaded"
    );
    // The loaded page on screen before the click (as the other web tests wait).
    std::thread::sleep(Duration::from_secs(2));
    let (x, y) = frame_point(&mut b, 300, 410);
    b.click(x, y);
    std::thread::sleep(Duration::from_millis(500));
    b.type_ascii("abc");
    assert!(
        page.wait_event(Duration::from_secs(20), |e| e == "text=abc")
            .is_some(),
        "typed before the loss: {:?}\n{}",
        page.events(),
        web.log()
    );
    assert_eq!(
        metric(&stack.metrics(), "tsuitate_sessions_active"),
        Some(1.0),
        "the session runs through the first gateway"
    );

    // kill -9 the first gateway: the page keeps its WebRTC connection to the web viewer,
    // which logs in again through the second gateway.
    stack.gateway.kill();
    let shots = stack.path("shots");
    std::fs::create_dir_all(&shots).expect("shots dir");
    // What the page shows meanwhile (kept for a person to look at).
    if b.wait_true(
        "!document.getElementById('status').hidden",
        Duration::from_secs(5),
    ) {
        b.screenshot(&shots.join("web-reconnecting.png"));
    }
    second_gateway_resumed_the_browser(&second);
    assert!(
        b.wait_true(
            "document.getElementById('status').hidden",
            Duration::from_secs(20)
        ),
        "the page's reconnect notice went away: {}\n{}",
        b.eval("document.getElementById('status').textContent"),
        web.log()
    );
    b.type_ascii("def");
    let text = page.wait_event(Duration::from_secs(20), |e| e == "text=abcdef");
    assert!(
        text.is_some(),
        "the text typed before the loss was still in the field: {:?}\n{}",
        page.events(),
        web.log()
    );
    let loads = page.events().iter().filter(|e| *e == "loaded=1").count();
    assert_eq!(loads, 1, "the page was never reloaded: {:?}", page.events());
    assert_eq!(
        b.eval("location.pathname"),
        "/view",
        "still the viewer page"
    );
    std::thread::sleep(Duration::from_secs(1));
    b.screenshot(&shots.join("web-after-failover.png"));
    if std::env::var_os("TSUITATE_KEEP_SHOTS").is_some() {
        for f in ["web-reconnecting.png", "web-after-failover.png"] {
            let _ = std::fs::copy(shots.join(f), format!("/tmp/{f}"));
        }
    }
}

#[test]
fn a_rolling_restart_of_both_gateways_ends_no_session() {
    let page = TestPage::start();
    let (mut stack, mut second) = two_gateways_one_agent(&page);
    let viewer = typing_viewer(&stack, &second, &page, "rolling", 45_000);
    let registered = |admin: &str| {
        wait_for(Duration::from_secs(40), || {
            let m = http_get(admin, "/metrics").unwrap_or_default();
            metric(&m, "tsuitate_agents_connected").filter(|v| *v >= 1.0)
        })
        .is_some()
    };
    // The first gateway (the viewer's) is upgraded: SIGTERM, then the same again. Its viewer
    // moves to the second gateway; the agent comes back to the first.
    stack.restart_gateway();
    second_gateway_resumed_the_browser(&second);
    assert!(
        registered(&stack.admin_addr),
        "the agent is back on the restarted first gateway:\n{}",
        stack.log("agent.log")
    );
    // Then the second: the viewer moves back to the first.
    second.restart(&stack);
    let back = wait_for(Duration::from_secs(30), || {
        (metric(&stack.metrics(), "tsuitate_sessions_resumed_on_agent_total") == Some(1.0))
            .then_some(())
    });
    assert!(
        back.is_some(),
        "the restarted first gateway took the browser over:\n{}",
        stack.metrics()
    );
    let run = viewer.wait();
    run.assert_ok("the viewer, across both restarts");
    let reconnects = run.report["reconnects"].as_array().map_or(0, Vec::len);
    assert_eq!(reconnects, 2, "one reconnect per restart: {}", run.report);
    assert!(
        page.wait_event(Duration::from_secs(10), |e| e == "text=abcdef")
            .is_some(),
        "the same field, the same text: {:?}",
        page.events()
    );
    let loads = page.events().iter().filter(|e| *e == "loaded=1").count();
    assert_eq!(loads, 1, "the page was never reloaded: {:?}", page.events());
}
