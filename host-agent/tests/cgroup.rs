//! Each browser session in its own cgroup (issue 11), with the real kernel: Xvfb and every
//! Chromium process are in it from their start, the configured limits are what the kernel
//! enforces, a process in the cgroup dies with the session whatever its account, process group
//! or command line, the cgroup is removed, and a page that eats memory is stopped at the limit
//! and reported as such. Needs root (as in CI); without it the tests say so and pass.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tsuitate_agent::browser::cgroup::Limits;
use tsuitate_agent::browser::session_processes;
use tsuitate_agent::BrowserSession;

const PAGE: &str = r#"<!doctype html><html><head><meta charset="utf-8"></head>
<body style="margin:0;background:#fff"><p>cgroup</p><script>
function report(s){fetch('/report',{method:'POST',body:s});}
window.addEventListener('load',function(){report('loaded');});
</script></body></html>"#;

/// Keeps allocating (and touching) 64 MiB more every 20 ms until something stops it.
const EAT: &str = r#"<!doctype html><html><head><meta charset="utf-8"></head>
<body style="margin:0;background:#fff"><p>eat</p><script>
function report(s){fetch('/report',{method:'POST',body:s});}
var keep=[];
function eat(){for(var i=0;i<4;i++){var a=new Uint8Array(16<<20);for(var j=0;j<a.length;j+=4096){a[j]=1;}keep.push(a);}
 report('eaten:'+(keep.length*16));setTimeout(eat,20);}
window.addEventListener('load',function(){report('loaded');eat();});
</script></body></html>"#;

fn root() -> bool {
    let root = tsuitate_agent::browser::running_as_root();
    if !root {
        eprintln!("skipped: creating cgroups needs root (CI runs as root)");
    }
    root
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// The value of `file` in whichever of the session's directories has it.
fn limit(dirs: &[std::path::PathBuf], file: &str) -> Option<String> {
    dirs.iter().find_map(|d| read(d, file))
}

/// A browser on `page` in a session cgroup with `limits`, once the page reported it loaded.
fn start(page: &'static str, limits: Limits) -> (BrowserSession, common::Reports) {
    let (url, reports) = common::serve(page);
    let mut opts = common::options(&url);
    opts.cgroups = common::cgroups(limits);
    let browser = BrowserSession::start(&opts, 800, 600).expect("browser starts");
    assert!(
        reports
            .wait_for(Duration::from_secs(60), |r| r == "loaded")
            .is_some(),
        "the page loaded"
    );
    (browser, reports)
}

#[test]
fn a_session_lives_in_its_own_cgroup_and_dies_whole() {
    if !root() {
        return;
    }
    let (mut browser, _reports) = start(
        PAGE,
        Limits {
            memory_mb: 1536,
            pids: 1500,
            cpu_percent: 150,
        },
    );
    let cg = browser.cgroup().expect("the session has a cgroup");
    let dirs = cg.dirs().to_vec();

    // The kernel holds the configured limits (v2 or v1 file names).
    let memory = limit(&dirs, "memory.max").or_else(|| limit(&dirs, "memory.limit_in_bytes"));
    assert_eq!(memory, Some((1536u64 << 20).to_string()));
    assert_eq!(limit(&dirs, "pids.max"), Some("1500".into()));
    let cpu = limit(&dirs, "cpu.max").or_else(|| limit(&dirs, "cpu.cfs_quota_us"));
    assert!(
        cpu.as_deref()
            .is_some_and(|c| c == "150000 100000" || c == "150000"),
        "cpu quota {cpu:?}"
    );

    // Xvfb, Chromium and every process they started are in it (no process of the session
    // outside; a process is in a v1 cgroup once per hierarchy, listed once).
    let members = cg.pids();
    let session = session_processes(&browser.process_groups(), browser.dir());
    assert!(
        session.len() >= 4,
        "Xvfb, browser, zygote, renderer…: {session:?}"
    );
    let outside: Vec<u32> = session
        .iter()
        .copied()
        .filter(|p| !members.contains(p))
        .collect();
    assert!(
        outside.is_empty(),
        "session processes outside the cgroup: {outside:?}"
    );
    for g in browser.process_groups() {
        assert!(members.contains(&g), "group leader {g} in the cgroup");
    }

    // A process in the cgroup that is in no session group, runs as another account and does
    // not mention the session directory still dies with the session.
    let mut stray = Command::new("/bin/sleep")
        .arg("600")
        .process_group(0)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sleep");
    for f in cg.procs_files() {
        std::fs::write(&f, stray.id().to_string()).expect("move the stray into the cgroup");
    }
    assert!(cg.pids().contains(&stray.id()));
    assert!(!browser.memory_exceeded(), "no OOM kill in a quiet session");

    let left = browser.stop();
    assert!(left.is_empty(), "nothing survives: {left:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut status = None;
    while status.is_none() && Instant::now() < deadline {
        status = stray.try_wait().expect("wait");
        std::thread::sleep(Duration::from_millis(20));
    }
    if status.is_none() {
        let _ = stray.kill();
    }
    let _ = stray.wait();
    assert!(
        status.is_some_and(|s| !s.success()),
        "the stray process was killed with the session: {status:?}"
    );
    for d in &dirs {
        assert!(!d.exists(), "{} removed", d.display());
    }
}

#[test]
fn a_page_over_the_memory_limit_is_stopped_there_and_reported() {
    if !root() {
        return;
    }
    let (mut browser, reports) = start(
        EAT,
        Limits {
            memory_mb: 768,
            ..Limits::default()
        },
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !browser.memory_exceeded() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        browser.memory_exceeded(),
        "an OOM kill in the session's cgroup is seen"
    );
    // The page never got far past the limit: the kernel stopped it, not the host.
    let eaten = reports
        .all()
        .iter()
        .filter_map(|r| r.strip_prefix("eaten:")?.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    assert!(
        eaten < 768,
        "the page held {eaten} MiB under a 768 MiB limit"
    );
    assert!(browser.stop().is_empty());
}
