//! Per-session limits through the real product (issue 11, cgroups): a page that eats memory in
//! one session is stopped at that session's memory limit; its viewer is told why (the
//! `MemoryExceeded` message), the gateway audits it, and another user's session on the same
//! agent keeps working. Real gateway, agent (Xvfb + Chromium in one cgroup per session), two
//! headless viewers. Needs root for cgroups (as in CI); without it the test says so and passes.

use std::time::Duration;

use tsuitate_protocol::Reason;
use tsuitate_testkit::{Stack, TestPage};

/// Keeps allocating (and touching) 64 MiB more every 20 ms.
const EAT: &str = r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>eat</title></head>
<body style="margin:0;background:#fff"><p>メモリを使います</p><script>
var keep=[];
function eat(){for(var i=0;i<4;i++){var a=new Uint8Array(16<<20);for(var j=0;j<a.length;j+=4096){a[j]=1;}keep.push(a);}
 fetch('/event?eaten='+(keep.length*16)).catch(function(){});setTimeout(eat,20);}
eat();
</script></body></html>"#;

#[test]
fn a_session_over_its_memory_limit_ends_alone_with_the_reason() {
    if !tsuitate_testkit::stack::running_as_root() {
        eprintln!("skipped: per-session cgroups need an agent running as root (CI runs as root)");
        return;
    }
    let page = TestPage::start();
    let eat = TestPage::serve(EAT.to_owned());
    let stack = Stack::start_with(
        Some(&page.url),
        "",
        "[limits]\nmemory_mb = 768\npids = 1500\ncpu_percent = 100\n",
    );
    stack.add_user("hanako", "hanako-pass-2026");

    // The other user's session: up first, then idle long enough for the first to end, then typed into.
    let other = stack.spawn_viewer_as(
        "hanako",
        "hanako-pass-2026",
        "other",
        "expect-change 30000\nwait 3000\nclick 300 410\nwait 30000\ntype hello\nwait 3000\n",
        &[],
    );
    assert!(
        page.wait_event(Duration::from_secs(40), |e| e == "loaded=1")
            .is_some(),
        "the other session's page loaded"
    );

    let eater = format!(
        "expect-change 30000\nwait 3000\nkey Control+l\nwait 500\ntype {}\nkey Enter\nwait 90000\n",
        eat.url
    );
    let run = stack.viewer("eater", &eater, &[]);
    assert_eq!(
        run.report["end_reason"], "MemoryExceeded",
        "report: {}\n{}",
        run.report, run.stderr
    );
    assert_eq!(
        run.report["message"],
        Reason::MemoryExceeded.message_en(),
        "the viewer shows why"
    );
    assert_ne!(run.code, Some(0), "the script did not complete");
    let eaten = eat
        .events()
        .iter()
        .filter_map(|e| e.strip_prefix("eaten=")?.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    assert!(eaten >= 64, "the page ate memory: {:?}", eat.events());
    assert!(eaten < 768, "…and was stopped at the limit: {eaten} MiB");
    assert!(
        !page.events().iter().any(|e| e.starts_with("text=")),
        "the other session had not typed yet: the check below comes after the end"
    );

    // The other session lives on: its typing arrives and its script completes.
    assert!(
        page.wait_event(Duration::from_secs(90), |e| e == "text=hello")
            .is_some(),
        "typing in the other session arrives after the first one ended: {:?}",
        page.events()
    );
    let other = other.wait();
    other.assert_ok("the other session");

    let audit = stack.log("audit.jsonl");
    assert!(
        audit.contains("\"MemoryExceeded\""),
        "the gateway audits the reason:\n{audit}"
    );
}
