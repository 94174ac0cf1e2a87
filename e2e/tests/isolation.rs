//! Browser isolation through the real viewer (issue 11, managed policy): an LGWAN user sees web
//! pages, never the agent host's files, a file chooser over its file system, DevTools or the
//! browser's settings or a print dialog. Real gateway, agent (Xvfb + Chromium under the managed policy the agent
//! installs), headless viewer; every check is a pixel check of what the viewer decoded.

use std::path::{Path, PathBuf};

use tsuitate_testkit::picture::Picture;
use tsuitate_testkit::{Stack, TestPage};

/// Share of pixels that are the test pages' red (#e00000).
fn red(p: &Picture) -> f64 {
    p.share(|p| p[0] > 190 && p[1] < 50 && p[2] < 50)
}

/// A page with a large file input and a large download link; clicking them reports
/// `file-click=1` / `download-click=1` (the click reached them).
const FILE_PAGE: &str = r#"<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8"><title>isolation</title>
<style>body { margin:0; background:#fff; font-family:sans-serif; }
 #f { position:absolute; left:40px; top:40px; width:500px; height:160px; font-size:40px; }
 #d { position:absolute; left:40px; top:240px; width:500px; height:160px; font-size:40px;
      display:block; background:#ddeeff; }</style>
</head><body><input type="file" id="f">
<a id="d" href="/download/tsuitate-dl-test.bin">ダウンロード / download</a>
<script>
 document.getElementById('f').addEventListener('click', function() { fetch('/event?file-click=1'); });
 document.getElementById('d').addEventListener('click', function() { fetch('/event?download-click=1'); });
 fetch('/event?loaded=1');
</script></body></html>"#;

/// A page that is all red: what a shown file:// page would look like.
const RED: &str = r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>red</title></head>
<body style="margin:0;background:#e00000"><div style="height:3000px"></div></body></html>"#;

/// A world-readable red page on the agent host (what `file://` would show).
fn host_file() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("tsuitate-isolation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let file = dir.join("red.html");
    std::fs::write(&file, RED).expect("write page");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    file
}

/// Files under `dir` whose name satisfies `pred`.
fn files_where(dir: &Path, pred: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if pred(&e.file_name().to_string_lossy()) {
                found.push(p);
            }
        }
    }
    found
}

fn go(url: &str, snapshot: &str) -> String {
    format!("key Control+l\nwait 500\ntype {url}\nkey Enter\nwait 4000\nsnapshot {snapshot}\n")
}

#[test]
fn host_files_file_dialogs_devtools_and_settings_stay_out_of_reach() {
    let page = TestPage::serve(FILE_PAGE.to_owned());
    let red_page = TestPage::serve(RED.to_owned());
    let file = host_file();
    let stack = Stack::start(Some(&page.url), "");
    let script = format!(
        "expect-change 30000\nwait 3000\nsnapshot start.png\n\
         key F12\nwait 2500\nkey Escape\nwait 1500\nsnapshot f12.png\n\
         key Control+Shift+i\nwait 2500\nkey Escape\nwait 1500\nsnapshot ctrl-shift-i.png\n\
         click 290 200\nwait 2500\nsnapshot file-input.png\nkey Escape\nwait 500\n\
         click 290 440\nwait 3000\n\
         key Escape\nwait 500\nsnapshot before-print.png\n\
         key Control+p\nwait 3000\nsnapshot print.png\nkey Escape\nwait 500\n\
         {}{}{}",
        go(&red_page.url, "web-red.png"),
        go(&format!("file://{}", file.display()), "file-url.png"),
        go("chrome://settings", "settings.png"),
    );
    // The session is kept so that its directory can be searched for the download afterwards.
    let run = stack.viewer("isolation", &script, &["--keep-session"]);
    let _ = std::fs::remove_dir_all(file.parent().unwrap_or(Path::new("/nonexistent")));
    run.assert_ok("isolation");
    let snap = |name: &str| Picture::load(&run.snapshots.join(name));
    let start = snap("start.png");

    // F12 and Ctrl+Shift+I open no DevTools: Chromium says "DevTools is blocked by your
    // organization" in a message that Escape dismisses, and the window is as before; a docked
    // or separate DevTools would still be there.
    for name in ["f12.png", "ctrl-shift-i.png"] {
        let changed = snap(name).changed_from(&start);
        assert!(changed < 0.03, "{name}: DevTools appeared ({changed})");
    }

    // The click reached the file input, and no file chooser opened over the browser: the tab
    // strip and toolbar (the top ~11 % of the frame) are as before; Chromium only shows a bar
    // "access to local files is disabled by the administrator" below the toolbar.
    assert!(
        page.events().iter().any(|e| e == "file-click=1"),
        "the click reached the file input: {:?}",
        page.events()
    );
    let file_input = snap("file-input.png");
    let top = file_input.changed_in(&start, 0.0, 0.11);
    assert!(top < 0.03, "a file chooser covered the toolbar ({top})");
    // Nor one placed lower: the bottom fifth of the page stays blank.
    let bottom = file_input.changed_in(&start, 0.8, 1.0);
    assert!(bottom < 0.03, "a file chooser covered the page ({bottom})");

    // The download link was clicked, and nothing was stored on the agent host.
    assert!(
        page.events().iter().any(|e| e == "download-click=1"),
        "the click reached the download link: {:?}",
        page.events()
    );
    let work = stack.path("agent-work");
    // The file itself, or Chromium's partial download ("Unconfirmed NNN.crdownload").
    let stored = files_where(&work, |name| {
        name.starts_with("tsuitate-dl-test")
            || name.starts_with("Unconfirmed")
            || name.ends_with(".crdownload")
    });
    assert!(stored.is_empty(), "the download was stored: {stored:?}");

    // Ctrl+P prints nothing: no print dialog or preview covers the page, and no file of a
    // print-to-file lands in the session's folders.
    let printed = snap("print.png").changed_from(&snap("before-print.png"));
    assert!(printed < 0.03, "a print dialog appeared ({printed})");
    let prints = files_where(&work, |name| {
        name.ends_with(".pdf") || name.ends_with(".ps") || name.ends_with(".prn")
    });
    assert!(prints.is_empty(), "printing stored a file: {prints:?}");

    // Navigation works (a red web page shows red) ...
    let web = red(&snap("web-red.png"));
    assert!(web > 0.5, "the red web page was shown ({web})");
    // ... but the same page as a file on the agent host is blocked.
    let blocked = snap("file-url.png");
    assert!(
        red(&blocked) < 0.01,
        "file:// was shown ({})",
        red(&blocked)
    );
    // chrome://settings shows the same block page as file://, not the settings UI.
    let settings = snap("settings.png").changed_from(&blocked);
    assert!(settings < 0.05, "chrome://settings was shown ({settings})");
}

/// (uid, gid) of a process.
fn owner(pid: u32) -> Option<(u32, u32)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u32> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("Uid:")?, field("Gid:")?))
}

/// The session directories of the running browsers (from `--user-data-dir=DIR/profile`) with
/// their owner.
fn browsers(stack: &Stack) -> Vec<(PathBuf, (u32, u32))> {
    stack
        .browser_processes()
        .into_iter()
        .filter(|(_, comm)| comm.starts_with("chrom"))
        .filter_map(|(pid, _)| {
            let args = tsuitate_testkit::procs::cmdline(pid);
            if args.iter().any(|a| a.starts_with("--type=")) {
                return None;
            }
            let profile = args
                .iter()
                .find_map(|a| a.strip_prefix("--user-data-dir="))?;
            Some((Path::new(profile).parent()?.to_path_buf(), owner(pid)?))
        })
        .collect()
}

/// Run `cmd` as `(uid, gid)`; whether it succeeded.
fn as_user(id: (u32, u32), cmd: &str, args: &[&str]) -> bool {
    use std::os::unix::process::CommandExt;
    std::process::Command::new(cmd)
        .args(args)
        .uid(id.0)
        .gid(id.1)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn each_session_runs_as_its_own_account_and_leaves_no_process() {
    let running_as_root = owner(std::process::id()).is_some_and(|(u, _)| u == 0);
    if !running_as_root {
        eprintln!("skipped: needs root to run browsers as pool accounts");
        return;
    }
    let page = TestPage::start();
    let stack = Stack::start(Some(&page.url), "[session]\nlinger_s = 120\n");
    stack.add_user("sato", "sato-パスワード-2");
    let open = "expect-change 30000\nwait 2000\n";
    for (user, password) in [
        (
            tsuitate_testkit::stack::USER,
            tsuitate_testkit::stack::PASSWORD,
        ),
        ("sato", "sato-パスワード-2"),
    ] {
        let run = stack
            .spawn_viewer_as(user, password, user, open, &["--keep-session"])
            .wait();
        assert_eq!(run.code, Some(0), "{user}: {}", run.stderr);
    }
    let sessions = browsers(&stack);
    assert_eq!(sessions.len(), 2, "two browsers: {sessions:?}");
    let ((dir_a, a), (dir_b, b)) = (sessions[0].clone(), sessions[1].clone());
    assert!(a.0 != 0 && b.0 != 0, "never root: {a:?} {b:?}");
    assert_ne!(a.0, b.0, "two sessions, two accounts");
    // Session A's account cannot read B's profile or X authority, nor list B's folder.
    let b_file = |p: &str| dir_b.join(p).to_string_lossy().into_owned();
    assert!(
        as_user(b, "cat", &[&b_file("profile/Local State")]),
        "B reads its own"
    );
    assert!(
        !as_user(a, "cat", &[&b_file("profile/Local State")]),
        "A read B's profile"
    );
    assert!(
        !as_user(a, "cat", &[&b_file("Xauthority")]),
        "A read B's X authority"
    );
    assert!(
        !as_user(a, "ls", &[&dir_b.to_string_lossy()]),
        "A listed B's folder"
    );
    assert!(!as_user(
        b,
        "cat",
        &[&dir_a.join("Xauthority").to_string_lossy()]
    ));

    // A process of A's account that left the session (setsid) ends with A's session.
    let escapee = {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("setsid")
            .args(["sleep", "600"])
            .uid(a.0)
            .gid(a.1)
            .spawn()
            .expect("start setsid sleep")
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let mut escapee = escapee;
    std::thread::spawn(move || {
        let _ = tx.send(escapee.wait());
    });
    // Whose session is A? The first viewer's user, or the second's: end the one whose browser
    // runs as A by logging both users in again without keeping the session, A's first.
    let a_user = if sessions[0].1 == a { 0 } else { 1 };
    let users = [
        (
            tsuitate_testkit::stack::USER,
            tsuitate_testkit::stack::PASSWORD,
        ),
        ("sato", "sato-パスワード-2"),
    ];
    let (user, password) = users[a_user];
    let run = stack
        .spawn_viewer_as(user, password, "end-a", open, &[])
        .wait();
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let ended = rx.recv_timeout(std::time::Duration::from_secs(30));
    assert!(
        ended
            .as_ref()
            .is_ok_and(|s| s.as_ref().is_ok_and(|s| !s.success())),
        "the setsid process of A's account was killed with the session: {ended:?}"
    );
    // B's browser runs on.
    let left = browsers(&stack);
    assert!(
        left.iter().any(|(_, o)| *o == b) && !left.iter().any(|(_, o)| *o == a),
        "only A's session ended: {left:?}"
    );
}
