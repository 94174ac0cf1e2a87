//! Several gateways in front of one agent (issue 13, first slice): an agent connects to every
//! gateway in its list, each gateway places sessions on it, and the agent's capacity holds
//! across them — two gateways placing at once never over-commit it.

use std::time::Duration;

use serde_json::Value;
use tsuitate_testkit::procs::wait_for;
use tsuitate_testkit::redis::Redis;
use tsuitate_testkit::stack::{metric, OtherGateway, PASSWORD, USER};
use tsuitate_testkit::{Stack, TestPage};

/// Start the stack's agent with `max_sessions` slots, connected to both gateways, and wait
/// until both have registered it.
fn agent_for_both(stack: &mut Stack, second: &OtherGateway, page: &TestPage, max_sessions: u16) {
    let gateways = format!(
        "max_sessions = {max_sessions}\n\
         gateways = [{{ addr = \"{}\", server_name = \"localhost\" }}, \
                     {{ addr = \"{}\", server_name = \"localhost\" }}]\n",
        stack.agent_addr, second.agent_addr
    );
    stack.start_agent(&page.url, &gateways);
    let first = || stack.metrics();
    let other = || second.metrics();
    for (name, metrics) in [("first", &first as &dyn Fn() -> String), ("second", &other)] {
        let registered = wait_for(Duration::from_secs(30), || {
            metric(&metrics(), "tsuitate_agents_connected").filter(|v| *v >= 1.0)
        });
        assert!(
            registered.is_some(),
            "the agent registered with the {name} gateway:\n{}",
            stack.log("agent.log")
        );
    }
}

#[test]
fn one_agent_serves_two_gateways_and_its_capacity_holds_across_them() {
    let page = TestPage::start();
    let mut stack = Stack::start(None, "");
    let second = stack.start_another_gateway();
    stack.add_user("suzuki", "e2e-パスワード-2");
    stack.add_user("sato", "e2e-パスワード-3");
    agent_for_both(&mut stack, &second, &page, 2);
    let first_metrics = || stack.metrics();
    let second_metrics = || second.metrics();

    // One session through each gateway, at the same time, on the one agent.
    let a = stack.spawn_viewer_at(
        &stack.viewer_addr,
        USER,
        PASSWORD,
        "via-first",
        "wait 20000\nsnapshot a.png\n",
        &[],
    );
    let b = stack.spawn_viewer_at(
        &second.viewer_addr,
        "suzuki",
        "e2e-パスワード-2",
        "via-second",
        "wait 20000\nsnapshot b.png\n",
        &[],
    );
    for (name, metrics) in [
        ("first", &first_metrics as &dyn Fn() -> String),
        ("second", &second_metrics),
    ] {
        // Each gateway has its session, and has heard from the agent that it is full.
        let placed = wait_for(Duration::from_secs(30), || {
            let m = metrics();
            (metric(&m, "tsuitate_sessions_active") == Some(1.0)
                && metric(&m, "tsuitate_agent_capacity_free") == Some(0.0))
            .then_some(())
        });
        assert!(placed.is_some(), "{name} gateway: {}", metrics());
    }

    // The agent is full: a third login, through either gateway, is told no browser is free.
    for (gateway, name) in [
        (&stack.viewer_addr, "third-1"),
        (&second.viewer_addr, "third-2"),
    ] {
        let c = stack
            .spawn_viewer_at(gateway, "sato", "e2e-パスワード-3", name, "wait 500\n", &[])
            .wait();
        assert_eq!(c.code, Some(6), "{name}: {}", c.report);
    }
    let (a, b) = (a.wait(), b.wait());
    a.assert_ok("the session through the first gateway");
    b.assert_ok("the session through the second gateway");
    for r in [&a, &b] {
        assert!(
            r.report["frames_decoded"].as_u64() > Some(0),
            "{}",
            r.report
        );
    }
    // Once both have logged out, the agent takes sessions again through either gateway.
    let d = stack
        .spawn_viewer_at(
            &second.viewer_addr,
            "sato",
            "e2e-パスワード-3",
            "after",
            "wait 1000\n",
            &[],
        )
        .wait();
    d.assert_ok("a session after the others ended");
}

/// Twenty logins at once: ten users, each through both gateways at the same instant (issue 13).
/// With the gateways' shared store no user ever gets two browsers — the second login waits for
/// the first's browser and takes it over; the others are told no browser is free, or get one
/// once a session ends.
#[test]
fn twenty_simultaneous_logins_over_two_gateways_start_at_most_one_browser_per_user() {
    let redis = Redis::start();
    let page = TestPage::start();
    let extra = format!(
        "[session]\nowner_key_file = \"owner.key\"\n[lockout]\nshared_store = \"{}\"\n",
        redis.addr
    );
    let mut stack = Stack::start(None, &extra);
    let second = stack.start_another_gateway();
    let users: Vec<String> = (0..10).map(|i| format!("staff{i}")).collect();
    for u in &users {
        stack.add_user(u, "e2e-パスワード-s");
    }
    const SLOTS: usize = 4;
    agent_for_both(&mut stack, &second, &page, SLOTS as u16);

    // Each user's two logins together, one user after the other (a browser takes seconds to
    // start: the first users' pairs race for the slots, and each pair races within itself).
    let mut viewers = Vec::new();
    for u in &users {
        std::thread::sleep(Duration::from_millis(200));
        for (gateway, tag) in [(&stack.viewer_addr, "a"), (&second.viewer_addr, "b")] {
            let name = format!("{u}-{tag}");
            viewers.push((
                name.clone(),
                // Twenty password checks (argon2id) and four browser starts at once on a
                // two-core CI machine: the login's answer may take longer than the default 10 s.
                stack.spawn_viewer_at(
                    gateway,
                    u,
                    "e2e-パスワード-s",
                    &name,
                    "wait 6000\n",
                    &["--connect-timeout-s", "40"],
                ),
            ));
        }
    }
    for (name, v) in viewers {
        let run = v.wait();
        let replaced = run.code == Some(7) && run.report["end_reason"] == "Replaced";
        assert!(
            matches!(run.code, Some(0) | Some(6)) || replaced,
            "{name}: logged in and stayed, was told no browser is free, or was replaced by its \
             own second login: {:?} {}\n{}",
            run.code,
            run.report,
            run.stderr
        );
    }

    // Every browser started, as both gateways audited it.
    std::thread::sleep(Duration::from_millis(500));
    let mut started: Vec<String> = Vec::new();
    for log in ["audit.jsonl", "audit-2.jsonl"] {
        let text = std::fs::read_to_string(stack.path(log)).unwrap_or_default();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if v["event"] == "session_start" && v["resumed_on_agent"] == false {
                started.push(v["user"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    let mut per_user = std::collections::BTreeMap::<&str, usize>::new();
    for u in &started {
        *per_user.entry(u).or_default() += 1;
    }
    assert!(
        per_user.values().all(|n| *n == 1),
        "one browser per user: {per_user:?}\n{}",
        stack.log("agent.log")
    );
    // Every slot was used (ten users want one; sessions that end free theirs for later users).
    assert!(
        started.len() >= SLOTS,
        "at least {SLOTS} users got a browser: {per_user:?}"
    );
}
