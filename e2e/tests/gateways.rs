//! Several gateways in front of one agent (issue 13, first slice): an agent connects to every
//! gateway in its list, each gateway places sessions on it, and the agent's capacity holds
//! across them — two gateways placing at once never over-commit it.

use std::time::Duration;

use tsuitate_testkit::procs::wait_for;
use tsuitate_testkit::stack::{metric, PASSWORD, USER};
use tsuitate_testkit::{Stack, TestPage};

#[test]
fn one_agent_serves_two_gateways_and_its_capacity_holds_across_them() {
    let page = TestPage::start();
    let mut stack = Stack::start(None, "");
    let second = stack.start_another_gateway();
    stack.add_user("suzuki", "e2e-パスワード-2");
    stack.add_user("sato", "e2e-パスワード-3");
    let gateways = format!(
        "max_sessions = 2\n\
         gateways = [{{ addr = \"{}\", server_name = \"localhost\" }}, \
                     {{ addr = \"{}\", server_name = \"localhost\" }}]\n",
        stack.agent_addr, second.agent_addr
    );
    stack.start_agent(&page.url, &gateways);
    let first_metrics = || stack.metrics();
    let second_metrics = || second.metrics();
    for (name, metrics) in [
        ("first", &first_metrics as &dyn Fn() -> String),
        ("second", &second_metrics),
    ] {
        assert!(
            wait_for(Duration::from_secs(30), || {
                metric(&metrics(), "tsuitate_agents_connected").filter(|v| *v >= 1.0)
            })
            .is_some(),
            "the agent registered with the {name} gateway:\n{}",
            stack.log("agent.log")
        );
    }

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
