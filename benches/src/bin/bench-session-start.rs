//! Session start time (login → first decoded picture) with and without the browser isolation
//! of issue 11, measured side by side in one run (docs/benchmarks.md §Session start). Run
//! through `scripts/bench-session-start.sh`, which builds the agent of the commit before the
//! isolation work as the "before" binary.
//!
//! ログインから最初の画面が表示されるまでの時間を、ブラウザ隔離（セッションごとのユーザー・
//! cgroup・管理ポリシー）の前後で、同じ実行の中で交互に測ります。
//!
//! One gateway (the current build) and, in alternating rounds, one agent of each kind on a
//! loopback page; each round runs one headless viewer login per agent kind that waits for its
//! first picture and logs out (a new Chromium each time). The viewer's report gives
//! `first_frame_ms` (from before the QUIC handshake to the first decoded picture).
//!
//! Usage: `bench-session-start BEFORE_AGENT [ROUNDS]` (default 8 rounds). `BEFORE_AGENT` runs
//! with one shared `browser_user` and no managed policy (what it supported); the current agent
//! with its pool, cgroup limits and policy. Must run as root (both agents start Chromium as
//! other accounts).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use tsuitate_testkit::procs::{bin, wait_for, Child};
use tsuitate_testkit::stack::{metric, s, table, write_toml, PASSWORD};
use tsuitate_testkit::{Stack, TestPage};

/// Where the current agent writes Chromium's managed policy; the "before" agent knew none, so
/// its rounds run without the file (restored by the current agent at its next start).
const POLICY: &str = "/etc/chromium/policies/managed/tsuitate.json";

fn say(msg: &str) {
    eprintln!("\x1b[1m[bench-session-start]\x1b[0m {msg}");
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Before,
    After,
}

fn agent_config(stack: &Stack, kind: Kind, url: &str) -> PathBuf {
    let d = stack.dir.path();
    let work = d.join(format!("work-{kind:?}"));
    std::fs::create_dir_all(&work).expect("work dir");
    std::fs::set_permissions(&work, std::os::unix::fs::PermissionsExt::from_mode(0o711))
        .expect("chmod");
    let mut config = table([
        ("agent_id", s("agent-1")),
        ("max_sessions", toml::Value::Integer(1)),
        ("start_url", s(url)),
        ("ca", s(d.join("pki/ca.pem").to_string_lossy())),
        ("cert", s(d.join("pki/agent-agent-1.pem").to_string_lossy())),
        (
            "key",
            s(d.join("pki/agent-agent-1-key.pem").to_string_lossy()),
        ),
        ("work_dir", s(work.to_string_lossy())),
        (
            "gateways",
            toml::Value::Array(vec![toml::Value::Table(table([
                ("addr", s(stack.agent_addr.clone())),
                ("server_name", s("localhost")),
            ]))]),
        ),
    ]);
    match kind {
        Kind::Before => config.insert("browser_user".into(), s("tsuitate-browser")),
        Kind::After => config.insert("browser_user_pool".into(), s("tsuitate-browser")),
    };
    let path = d.join(format!("agent-{kind:?}.toml"));
    write_toml(&path, &config);
    path
}

fn start_agent(stack: &Stack, binary: &Path, config: &Path, kind: Kind) -> Child {
    let d = stack.dir.path();
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(d.join(format!("agent-{kind:?}.log")))
        .expect("agent log");
    let child = Child::spawn(
        "agent",
        Command::new(binary)
            .arg("--config")
            .arg(config)
            .current_dir(d)
            .stdout(Stdio::null())
            .stderr(log),
    );
    let up = wait_for(Duration::from_secs(30), || {
        metric(&stack.metrics(), "tsuitate_agents_connected").filter(|v| *v >= 1.0)
    });
    assert!(up.is_some(), "the {kind:?} agent did not register");
    child
}

fn stop_agent(stack: &Stack, mut agent: Child) {
    agent.stop(Duration::from_secs(15));
    let gone = wait_for(Duration::from_secs(15), || {
        metric(&stack.metrics(), "tsuitate_agents_connected").filter(|v| *v < 1.0)
    });
    assert!(gone.is_some(), "the agent left the gateway");
}

/// One login → first picture → page loaded → logout: the viewer's `first_frame_ms` and the
/// time from starting the viewer to the page's `loaded=1` report (Chromium started and the page
/// loaded in it).
fn one_session(stack: &Stack, page: &TestPage, name: &str) -> (u64, u64) {
    let loads = || page.events().iter().filter(|e| *e == "loaded=1").count();
    let before = loads();
    let start = Instant::now();
    let viewer = stack.spawn_viewer(name, "expect-change 30000\nwait 4000\n", &[], PASSWORD);
    let loaded = wait_for(Duration::from_secs(30), || {
        (loads() > before).then(|| start.elapsed())
    })
    .unwrap_or_else(|| panic!("{name}: the page did not load"));
    let run = viewer.wait();
    run.assert_ok(name);
    let first = run.report["first_frame_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("{name}: no first_frame_ms in {}", run.report));
    (first, u64::try_from(loaded.as_millis()).unwrap_or(u64::MAX))
}

fn median(v: &mut [u64]) -> f64 {
    v.sort_unstable();
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        v[n / 2] as f64
    } else {
        (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(before) = args.first().map(PathBuf::from) else {
        eprintln!("usage: bench-session-start BEFORE_AGENT [ROUNDS] / 使い方: bench-session-start 旧エージェント [回数]");
        return ExitCode::from(2);
    };
    let rounds: usize = match args.get(1).map(|r| r.parse()) {
        None => 8,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("ROUNDS must be a positive number / 回数は正の整数で指定してください");
            return ExitCode::from(2);
        }
    };
    if !before.is_file() {
        eprintln!("{}: not found / 見つかりません", before.display());
        return ExitCode::from(2);
    }
    let page = TestPage::start();
    let mut stack = Stack::start(None, "");
    stack.keep_files();
    let after = bin("tsuitate-agent");
    let configs = [
        (
            Kind::Before,
            before.clone(),
            agent_config(&stack, Kind::Before, &page.url),
        ),
        (
            Kind::After,
            after.clone(),
            agent_config(&stack, Kind::After, &page.url),
        ),
    ];
    // Per kind: first picture, page loaded.
    let mut times: [(Vec<u64>, Vec<u64>); 2] = Default::default();
    // One warm-up login per kind (page cache, fontconfig caches), not counted.
    for round in 0..=rounds {
        for (i, (kind, binary, config)) in configs.iter().enumerate() {
            if *kind == Kind::Before {
                let _ = std::fs::remove_file(POLICY);
            }
            let agent = start_agent(&stack, binary, config, *kind);
            let (first, loaded) = one_session(&stack, &page, &format!("{kind:?}-{round}"));
            stop_agent(&stack, agent);
            let what = if round == 0 {
                "warm-up".to_owned()
            } else {
                times[i].0.push(first);
                times[i].1.push(loaded);
                format!("round {round}")
            };
            say(&format!(
                "{what} {kind:?}: first picture {first} ms, page loaded {loaded} ms"
            ));
        }
    }
    let [(mut bf, mut bl), (mut af, mut al)] = times;
    println!("session start, median of {rounds} rounds each (before = shared account, no policy, no cgroup; after = own account, policy, cgroup limits):");
    for (what, b, a) in [
        ("login → first picture", &mut bf, &mut af),
        ("login → page loaded  ", &mut bl, &mut al),
    ] {
        let (mb, ma) = (median(b), median(a));
        println!(
            "  {what}: before {mb:.0} ms, after {ma:.0} ms, after/before {:.3} ({:+.1} %)   before {b:?} after {a:?}",
            ma / mb.max(1.0),
            (ma / mb.max(1.0) - 1.0) * 100.0
        );
    }
    say(&format!(
        "logs and reports kept in {}",
        stack.dir.path().display()
    ));
    ExitCode::SUCCESS
}
