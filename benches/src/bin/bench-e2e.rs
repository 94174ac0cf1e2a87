//! End-to-end benchmark of the real stack on a scripted Japanese browsing workload
//! (docs/benchmarks.md). Run through `scripts/bench-e2e.sh`, which installs what it needs and
//! builds the release binaries first.
//!
//! 実際の構成（ゲートウェイ・エージェント＋Chromium・ヘッドレスビューア）で閲覧操作の台本を再生し、
//! 遅延・CPU・帯域を測ります。同じ実行の中で ffmpeg/x264 と比較します。
//!
//! 1. a long, scrollable Japanese page on 127.0.0.1 (the test kit's page server);
//! 2. the test kit's `Stack`: gateway and agent processes (Xvfb + Chromium on that page), a
//!    headless viewer that opens the session and keeps it (warm-up);
//! 3. run 1: the workload (reload, idle, wheel scrolling, typing ASCII and Japanese, clicking),
//!    sampling /proc and the gateway's metrics at its start, around the idle window and at its
//!    end; the page reports what it received;
//! 4. run W (unless `TSUITATE_BENCH_NO_WEB=1`): the same workload through the web viewer
//!    (`tsuitate-web`) in a headless Chromium driven over CDP: the page's capture→shown latency
//!    beside run 1's capture→decoded latency of the native viewer, and the web viewer's CPU;
//! 5. run 2 (unless `TSUITATE_BENCH_NO_X264=1`): the same workload while ffmpeg captures the
//!    session's Xvfb display at 30 fps with x264 (4:2:0, preset `TSUITATE_BENCH_X264_PRESET`,
//!    default veryfast, zerolatency); at its end the screen is grabbed, and the luma PSNR of
//!    the last picture each decoded (the viewer's snapshot, x264's last frame) against it
//!    is the text's legibility at rest;
//! 6. run 3 (unless `TSUITATE_BENCH_NO_VNC=1`): the same workload while x11vnc serves the
//!    session's display (XDamage, ZRLE) to an RFB client that takes every update and counts its
//!    bytes (`tsuitate_benches::vnc`);
//! 7. the summary: capture→decoded latency, agent CPU per session, bytes/s, frames in the idle
//!    window, native vs web viewer, and tsuitate vs x264 side by side.
//!
//! Environment: `TSUITATE_BENCH_SIZE` (default 1280x720), `TSUITATE_BENCH_IDLE_MS` (12000,
//! at least 6000), `TSUITATE_BENCH_NO_X264=1`, `TSUITATE_BENCH_NO_WEB=1`, `TSUITATE_BENCH_NO_VNC=1`,
//! `TSUITATE_BENCH_ENCODING` (`damage`, the agent's default, or `openh264`),
//! `TSUITATE_BENCH_X264_PRESET` (an x264 preset, default `veryfast`). Everything it starts is stopped at the end; the
//! working directory (logs, reports, snapshots) is kept and printed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tsuitate_benches::vnc::{VncCounter, VncCounts};
use tsuitate_testkit::picture::Picture;
use tsuitate_testkit::procs::{self, cmdline, cpu_seconds, descendants, environ, Child};
use tsuitate_testkit::stack::{http_get, metric, PASSWORD};
use tsuitate_testkit::viewer_gateway::psnr;
use tsuitate_testkit::{Stack, TestPage};

/// Reload, then let the page settle before the idle window.
const SETTLE_MS: u64 = 4000;
/// Clicks on the page's button.
const CLICKS: u32 = 10;
/// What is typed, word by word (ASCII and committed IME text).
const WORDS: [&str; 11] = [
    "tsuitate",
    "情報",
    "セキュリティ",
    "対策",
    "基準",
    "gateway",
    "画面転送",
    "無害化",
    "LGWAN",
    "接続系",
    "",
];

fn say(msg: &str) {
    eprintln!("\x1b[1m[bench-e2e]\x1b[0m {msg}");
}

struct Settings {
    width: u16,
    height: u16,
    idle_ms: u64,
    x264: bool,
    vnc: bool,
    /// The agent's `encoding` (`damage`, its default, or `openh264`).
    encoding: String,
    web: bool,
    /// x264's preset in run 2.
    x264_preset: String,
}

/// x264's presets, fastest first.
const X264_PRESETS: [&str; 10] = [
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

fn settings() -> Result<Settings, String> {
    let size = std::env::var("TSUITATE_BENCH_SIZE").unwrap_or_else(|_| "1280x720".into());
    let (w, h) = size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .ok_or("TSUITATE_BENCH_SIZE must look like 1280x720 / 1280x720 の形式で指定してください")?;
    let idle_ms: u64 = std::env::var("TSUITATE_BENCH_IDLE_MS")
        .unwrap_or_else(|_| "12000".into())
        .parse()
        .map_err(|_| "TSUITATE_BENCH_IDLE_MS must be a number / 数値で指定してください")?;
    if idle_ms < 6000 {
        return Err(
            "TSUITATE_BENCH_IDLE_MS must be at least 6000 / 6000 以上にしてください".into(),
        );
    }
    let x264_preset =
        std::env::var("TSUITATE_BENCH_X264_PRESET").unwrap_or_else(|_| "veryfast".into());
    if !X264_PRESETS.contains(&x264_preset.as_str()) {
        return Err(format!(
            "TSUITATE_BENCH_X264_PRESET must be one of {} / x264 のプリセット名を指定してください",
            X264_PRESETS.join(", ")
        ));
    }
    Ok(Settings {
        x264_preset,
        width: w,
        height: h,
        idle_ms,
        x264: std::env::var("TSUITATE_BENCH_NO_X264").as_deref() != Ok("1"),
        vnc: std::env::var("TSUITATE_BENCH_NO_VNC").as_deref() != Ok("1"),
        web: std::env::var("TSUITATE_BENCH_NO_WEB").as_deref() != Ok("1"),
        encoding: match std::env::var("TSUITATE_BENCH_ENCODING").as_deref() {
            Err(_) | Ok("damage") => "damage".into(),
            Ok("openh264") => "openh264".into(),
            Ok(_) => {
                return Err(
                    "TSUITATE_BENCH_ENCODING must be damage or openh264 / damage か openh264 を指定してください"
                        .into(),
                )
            }
        },
    })
}

/// A fixed bar with a text field and a button, then forty chapters of Japanese text.
fn page() -> String {
    let mut html = String::from(
        r#"<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8"><title>衝立 ベンチマーク</title>
<style>
 body { margin:0; font-family:"Noto Sans CJK JP",sans-serif; font-size:18px; line-height:1.7;
        background:#fff; color:#222; }
 #bar { position:fixed; top:0; left:0; right:0; height:120px; background:#e8eef8;
        border-bottom:1px solid #99a; }
 #field { position:absolute; left:20px; top:20px; width:600px; height:80px; font-size:28px; }
 #btn { position:absolute; left:660px; top:20px; width:300px; height:80px; font-size:28px; }
 #text { padding:140px 40px 40px 40px; max-width:1100px; }
 h2 { color:#1f4e99; }
</style></head><body>
<div id="bar"><input id="field" autocomplete="off" placeholder="ここに入力"><button id="btn">押す (0)</button></div>
<div id="text">
"#,
    );
    for i in 1..=40 {
        let _ = write!(
            html,
            "<h2>第{i}章 情報セキュリティ対策基準</h2>\n\
<p>本市は、住民の個人情報及び行政運営上重要な情報等を取り扱う情報システムを、マイナンバー利用事務系、LGWAN接続系及びインターネット接続系に分割し、それぞれの通信経路を分離する。インターネット接続系で閲覧した画面は、画面転送により無害化した上でLGWAN接続系の端末に表示する。</p>\n\
<p>職員は、業務上必要な場合を除き、インターネット上のファイルをLGWAN接続系に持ち込んではならない。クリップボードの共有、ファイルの転送及び印刷のリダイレクトは行わない。利用者認証は必須とし、操作の記録を監査のために保存する。</p>\n\
<p>情報セキュリティ管理者は、外部からの不正アクセス、マルウェア感染及び情報漏えいの防止のため、通信の監視、ソフトウェアの更新及び職員への教育を定期的に実施し、その結果を情報セキュリティ委員会に報告する。第{i}章の規定は、前章までの規定と合わせて適用する。</p>\n"
        );
    }
    html.push_str(
        r#"</div>
<script>
 // What arrived is reported to the page server, so the benchmark can check it.
 function report(q) { fetch('/event?' + q).catch(function(){}); }
 var n = 0, btn = document.getElementById('btn'), field = document.getElementById('field');
 btn.addEventListener('click', function() {
   n += 1;
   btn.textContent = '押す (' + n + ')';
   document.getElementById('bar').style.background = (n % 2) ? '#d8f0d8' : '#e8eef8';
   report('clicks=' + n);
 });
 field.addEventListener('input', function() {
   report('typed=' + encodeURIComponent(field.value));
 });
</script>
</body></html>
"#,
    );
    html
}

/// The workload script, and the text the field holds at its end (every word, then one
/// Backspace).
fn workload(idle_ms: u64) -> (String, String) {
    let mut s = String::new();
    let _ = writeln!(s, "# reload, let the page settle\nkey F5\nwait {SETTLE_MS}");
    let _ = writeln!(s, "# idle: nothing changes on screen\nwait {idle_ms}");
    s.push_str("# scroll down and back up with the wheel\n");
    s.push_str(&"wheel 0 2\nwait 100\n".repeat(40));
    s.push_str(&"wheel 0 -4\nwait 100\n".repeat(20));
    s.push_str("wait 1000\n# type into the field (ASCII and committed IME text)\n");
    s.push_str("click 300 145\nwait 300\n");
    let words: Vec<&str> = WORDS.iter().copied().filter(|w| !w.is_empty()).collect();
    for w in &words {
        let _ = writeln!(s, "type {w}\nwait 300");
    }
    s.push_str("key Backspace\nwait 300\n# click the button\n");
    s.push_str(&"click 810 145\nwait 400\n".repeat(CLICKS as usize));
    s.push_str("wait 1500\nsnapshot workload-end.png\n");
    let mut expected: String = words.concat();
    expected.pop();
    (s, expected)
}

/// One sample of the counters.
#[derive(Debug, Clone, Default)]
struct Sample {
    t: f64,
    values: HashMap<&'static str, f64>,
}

struct Probe<'a> {
    admin: &'a str,
    agent: u32,
    gateway: u32,
    started: Instant,
    ffmpeg: Option<(u32, std::path::PathBuf, std::path::PathBuf)>,
    /// x11vnc's pid and what the RFB client read from it.
    vnc: Option<(u32, std::sync::Arc<VncCounts>)>,
}

impl Probe<'_> {
    fn sample(&self) -> Sample {
        let mut v = HashMap::new();
        let metrics = http_get(self.admin, "/metrics").unwrap_or_default();
        let mut put = |k: &'static str, x: Option<f64>| {
            if let Some(x) = x {
                v.insert(k, x);
            }
        };
        put("agent_cpu", cpu_seconds(self.agent));
        put("tree_cpu", Some(procs::tree_cpu_seconds(self.agent)));
        put("gateway_cpu", cpu_seconds(self.gateway));
        put("frames", metric(&metrics, "tsuitate_frames_relayed_total"));
        put("bytes", metric(&metrics, "tsuitate_bytes_relayed_total"));
        if let Some((pid, out, progress)) = &self.ffmpeg {
            put("ffmpeg_cpu", cpu_seconds(*pid));
            put(
                "x264_bytes",
                std::fs::metadata(out).ok().map(|m| m.len() as f64),
            );
            put("x264_frames", ffmpeg_frames(progress));
        }
        if let Some((pid, counts)) = &self.vnc {
            use std::sync::atomic::Ordering::Relaxed;
            put("vnc_cpu", cpu_seconds(*pid));
            put("vnc_bytes", Some(counts.bytes.load(Relaxed) as f64));
            put("vnc_updates", Some(counts.updates.load(Relaxed) as f64));
        }
        Sample {
            t: self.started.elapsed().as_secs_f64(),
            values: v,
        }
    }
}

/// The last `frame=N` of ffmpeg's `-progress` file.
fn ffmpeg_frames(progress: &std::path::Path) -> Option<f64> {
    std::fs::read_to_string(progress)
        .ok()?
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("frame=")?.trim().parse().ok())
}

/// The samples of one run: start, idle_start, idle_end, end.
struct Run {
    s: [Sample; 4],
    report: Value,
    /// Where the viewer wrote its snapshots.
    snapshots: std::path::PathBuf,
    typed: Option<String>,
    clicks: u32,
}

impl Run {
    fn delta(&self, key: &str, a: usize, b: usize) -> Option<f64> {
        Some(self.s[b].values.get(key)? - self.s[a].values.get(key)?)
    }
    fn secs(&self, a: usize, b: usize) -> f64 {
        self.s[b].t - self.s[a].t
    }
    fn rate(&self, key: &str, a: usize, b: usize) -> Option<f64> {
        ratio(self.delta(key, a, b), Some(self.secs(a, b)))
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

fn fmt(v: Option<f64>, decimals: usize) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.decimals$}"))
}

const START: usize = 0;
const IDLE_START: usize = 1;
const IDLE_END: usize = 2;
const END: usize = 3;

fn run_workload(
    stack: &Stack,
    probe: &Probe<'_>,
    page: &TestPage,
    name: &str,
    script: &str,
    idle_ms: u64,
) -> Result<Run, String> {
    let seen = page.events().len();
    let start = probe.sample();
    let viewer = stack.spawn_viewer(name, script, &["--keep-session"], PASSWORD);
    std::thread::sleep(Duration::from_millis(SETTLE_MS + 2500));
    let idle_start = probe.sample();
    std::thread::sleep(Duration::from_millis(idle_ms.saturating_sub(3000)));
    let idle_end = probe.sample();
    let run = viewer.wait();
    let end = probe.sample();
    if run.code != Some(0) {
        return Err(format!(
            "viewer run {name} failed with exit code {:?}: {}",
            run.code, run.stderr
        ));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (typed, clicks) = page_events(page, seen);
    Ok(Run {
        s: [start, idle_start, idle_end, end],
        report: run.report,
        snapshots: run.snapshots,
        typed,
        clicks,
    })
}

/// What the page reported since event number `seen`: the field's last text, and the clicks.
fn page_events(page: &TestPage, seen: usize) -> (Option<String>, u32) {
    let events = page.events();
    let mut typed = None;
    let mut clicks = 0;
    for e in &events[seen.min(events.len())..] {
        if let Some(t) = e.strip_prefix("typed=") {
            typed = Some(t.to_owned());
        } else if let Some(c) = e.strip_prefix("clicks=") {
            clicks = c.parse().unwrap_or(clicks);
        }
    }
    (typed, clicks)
}

fn page_check(run: &Run, expected: &str) -> String {
    typed_check(run.typed.as_deref(), run.clicks, expected)
}

fn typed_check(typed: Option<&str>, clicks: u32, expected: &str) -> String {
    let text = match typed {
        Some(t) if t == expected => "exact".to_owned(),
        other => format!("DIFFERENT: got {other:?}, expected {expected:?}"),
    };
    format!("typed text {text}; clicks seen {clicks}/{CLICKS}")
}

/// The session's Chromium (the browser process, not a renderer) under the agent.
fn chromium(agent: u32) -> Option<u32> {
    descendants(agent)
        .into_iter()
        .filter(|(_, comm)| comm.contains("chrom"))
        .map(|(pid, _)| pid)
        .find(|pid| !cmdline(*pid).iter().any(|a| a.starts_with("--type=")))
}

/// The web viewer's run: latency measured in the page, and the web viewer's own CPU.
struct WebRun {
    stats: Value,
    web_cpu: Option<f64>,
    secs: f64,
    typed: Option<String>,
    clicks: u32,
}

/// Replay the workload of [`workload`] through the web viewer: the same keys, wheel notches,
/// text and clicks, sent by Chromium's own input pipeline into the viewer page.
fn run_web(stack: &Stack, page: &TestPage, cfg: &Settings) -> Result<WebRun, String> {
    use tsuitate_testkit::cdp::Browser;
    use tsuitate_testkit::web::{frame_point, login, wait_playing, WebViewer};
    let web = WebViewer::start(stack, "");
    // The viewer page's bar takes some height: the stage below it gets the benchmark size.
    let mut b = Browser::launch("ja", u32::from(cfg.width), u32::from(cfg.height) + 40);
    login(&mut b, &web.url, tsuitate_testkit::stack::USER, PASSWORD);
    let bar = b
        .eval("document.getElementById('bar').offsetHeight")
        .as_u64()
        .unwrap_or(0);
    b.call(
        "Emulation.setDeviceMetricsOverride",
        serde_json::json!({"width": cfg.width, "height": u64::from(cfg.height) + bar,
                           "deviceScaleFactor": 1, "mobile": false}),
    );
    wait_playing(&mut b);
    std::thread::sleep(Duration::from_secs(3));
    let seen = page.events().len();
    let pid = web.child.pid();
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    b.eval("tsuitate.resetStats(); true");
    // reload, settle, idle
    b.key("F5", "F5", 116, None);
    std::thread::sleep(Duration::from_millis(SETTLE_MS + cfg.idle_ms));
    // wheel: 40 × 2 notches down, 20 × 4 up
    let (x, y) = frame_point(&mut b, u32::from(cfg.width) / 2, u32::from(cfg.height) / 2);
    for (n, dy) in [(40, 200.0), (20, -400.0)] {
        for _ in 0..n {
            b.call(
                "Input.dispatchMouseEvent",
                serde_json::json!({"type": "mouseWheel", "x": x, "y": y, "deltaX": 0, "deltaY": dy}),
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    std::thread::sleep(Duration::from_millis(1000));
    let (fx, fy) = frame_point(&mut b, 300, 145);
    b.click(fx, fy);
    std::thread::sleep(Duration::from_millis(300));
    for w in WORDS.iter().filter(|w| !w.is_empty()) {
        if w.is_ascii() {
            b.type_ascii(w);
        } else {
            b.insert_text(w);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    b.key("Backspace", "Backspace", 8, None);
    std::thread::sleep(Duration::from_millis(300));
    let (bx, by) = frame_point(&mut b, 810, 145);
    for _ in 0..CLICKS {
        b.click(bx, by);
        std::thread::sleep(Duration::from_millis(400));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let stats = b.eval("tsuitate.stats()");
    let secs = t0.elapsed().as_secs_f64();
    let web_cpu = match (cpu0, cpu_seconds(pid)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    b.eval("document.getElementById('logout').click(); true");
    std::thread::sleep(Duration::from_millis(1000));
    let (typed, clicks) = page_events(page, seen);
    Ok(WebRun {
        stats,
        web_cpu,
        secs,
        typed,
        clicks,
    })
}

fn web_summary(r1: &Run, w: &WebRun, expected: &str) -> String {
    let mut o = String::new();
    let native = |k: &str| r1.report["latency_ms"][k].as_f64();
    let page = |k: &str| w.stats["latency_ms"][k].as_f64();
    let _ = writeln!(
        o,
        "\n== same workload, native viewer (run 1, capture→decoded) vs web viewer in Chromium (run W, capture→shown, {:.1} s) ==",
        w.secs
    );
    let _ = writeln!(
        o,
        "{:24}{:>16}{:>16}{:>16}",
        "", "native", "web", "web − native"
    );
    for k in ["p50", "p95", "p99"] {
        let d = match (page(k), native(k)) {
            (Some(a), Some(b)) => Some(a - b),
            _ => None,
        };
        let _ = writeln!(
            o,
            "{:24}{:>16}{:>16}{:>16}",
            format!("latency {k}, ms"),
            fmt(native(k), 1),
            fmt(page(k), 1),
            fmt(d, 1)
        );
    }
    let dec = |k: &str| w.stats["decoded_ms"][k].as_f64();
    let _ = writeln!(
        o,
        "same end point as native (capture→decoded: the last packet's arrival + Chromium's decode time):"
    );
    for k in ["p50", "p95", "p99"] {
        let d = match (dec(k), native(k)) {
            (Some(a), Some(b)) => Some(a - b),
            _ => None,
        };
        let _ = writeln!(
            o,
            "{:24}{:>16}{:>16}{:>16}",
            format!("decoded {k}, ms"),
            fmt(native(k), 1),
            fmt(dec(k), 1),
            fmt(d, 1)
        );
    }
    let rx = |k: &str| w.stats["received_ms"][k].as_f64();
    let _ = writeln!(
        o,
        "web: capture→received   p50 {} ms   p95 {} ms (the part before Chromium's jitter buffer, decoder and compositor)",
        fmt(rx("p50"), 1),
        fmt(rx("p95"), 1)
    );
    let _ = writeln!(
        o,
        "web viewer CPU           {} CPU-s/s for its one session (tsuitate-web process)",
        fmt(ratio(w.web_cpu, Some(w.secs)), 3)
    );
    let _ = writeln!(
        o,
        "page frames shown        {} ({} latency samples), dropped {}",
        w.stats["frames"], w.stats["latency_ms"]["samples"], w.stats["dropped"]
    );
    let _ = writeln!(
        o,
        "page check               runW: {}",
        typed_check(w.typed.as_deref(), w.clicks, expected)
    );
    o
}

fn main() -> ExitCode {
    match bench() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("[bench-e2e] error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench() -> Result<(), String> {
    let cfg = settings()?;
    let page = TestPage::serve(page());
    let extra = format!(
        "[session]\ndefault_width = {}\ndefault_height = {}\n",
        cfg.width, cfg.height
    );
    say("starting gateway and agent / ゲートウェイとエージェントを起動します…");
    let agent_extra = format!("encoding = \"{}\"\n", cfg.encoding);
    let mut stack = Stack::start_with(Some(&page.url), &extra, &agent_extra);
    stack.keep_files();
    let dir = stack.path("");
    say(&format!(
        "working directory / 作業ディレクトリ: {}",
        dir.display()
    ));
    let agent = stack.agent_pid().ok_or("the stack has no agent")?;
    let probe = Probe {
        admin: &stack.admin_addr,
        agent,
        gateway: stack.gateway_pid(),
        started: Instant::now(),
        ffmpeg: None,
        vnc: None,
    };

    say("warm-up: starting the session / セッションを開始します…");
    let warm = stack.viewer(
        "warmup",
        "expect-change 60000\nwait 6000\nsnapshot warmup.png\n",
        &["--keep-session"],
    );
    if warm.code != Some(0) {
        return Err(format!("warm-up failed ({:?}): {}", warm.code, warm.stderr));
    }
    let (script, expected) = workload(cfg.idle_ms);

    say("run 1: workload through tsuitate / 計測 1: tsuitate で台本を再生…");
    let run1 = run_workload(&stack, &probe, &page, "run1", &script, cfg.idle_ms)?;

    let web = if cfg.web {
        say("run W: the same workload through the web viewer in Chromium / 計測 W: Web ビューアで同じ台本…");
        Some(run_web(&stack, &page, &cfg)?)
    } else {
        None
    };

    let mut run2 = None;
    let mut legibility = None;
    if cfg.x264 {
        let chrome = chromium(agent).ok_or("no Chromium process found under the agent")?;
        let display = environ(chrome, "DISPLAY");
        if display.is_empty() {
            return Err("Chromium has no DISPLAY (run as root to read its environment)".into());
        }
        say(&format!(
            "run 2: same workload, ffmpeg x264 capturing {display} / 計測 2: ffmpeg x264 で同じ台本…"
        ));
        let (out, progress) = (dir.join("x264.h264"), dir.join("x264.progress"));
        let log = std::fs::File::create(dir.join("ffmpeg.log")).map_err(|e| e.to_string())?;
        let size = format!("{}x{}", cfg.width, cfg.height);
        let mut ffmpeg_child = Child::spawn(
            "ffmpeg",
            quiet_ffmpeg()
                .arg("-progress")
                .arg(&progress)
                .args([
                    "-f",
                    "x11grab",
                    "-framerate",
                    "30",
                    "-video_size",
                    &size,
                    "-i",
                ])
                .arg(&display)
                // 4:2:0 like tsuitate's stream (what browsers decode); from the X server's
                // RGB ffmpeg would otherwise pick 4:4:4.
                .args(["-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset"])
                .arg(&cfg.x264_preset)
                .args(["-tune", "zerolatency"])
                // Each packet written as it is made: the file's size is x264's bytes so far
                // (buffered, it grew in 256 KiB steps).
                .args(["-flush_packets", "1", "-f", "h264", "-y"])
                .arg(&out)
                .env("XAUTHORITY", environ(chrome, "XAUTHORITY"))
                .stderr(log),
        );
        std::thread::sleep(Duration::from_secs(2));
        let pid = ffmpeg_child.pid();
        let probe2 = Probe {
            ffmpeg: Some((pid, out, progress)),
            vnc: None,
            ..probe
        };
        let r2 = run_workload(&stack, &probe2, &page, "run2", &script, cfg.idle_ms)?;
        // The page is still now: the screen as it is, then x264's last frame once ffmpeg ends.
        let screen = dir.join("screen-end.png");
        let grabbed = succeeds(
            quiet_ffmpeg()
                .args(["-f", "x11grab", "-video_size", &size, "-i"])
                .arg(&display)
                .args(["-frames:v", "1", "-y"])
                .arg(&screen)
                .env("XAUTHORITY", environ(chrome, "XAUTHORITY")),
        );
        // SIGINT and time to finish: a second signal makes ffmpeg exit at once, leaving the
        // last seconds of its stream unwritten.
        procs::signal(ffmpeg_child.pid(), libc::SIGINT);
        procs::wait_for(Duration::from_secs(10), || {
            ffmpeg_child.exited().then_some(())
        });
        ffmpeg_child.stop(Duration::from_secs(5));
        let last = dir.join("x264-end.png");
        let decoded = succeeds(
            quiet_ffmpeg()
                .arg("-i")
                .arg(dir.join("x264.h264"))
                .args(["-update", "1", "-y"])
                .arg(&last),
        );
        legibility = Some(if grabbed && decoded {
            (
                luma_psnr(&screen, &r2.snapshots.join("workload-end.png")),
                luma_psnr(&screen, &last),
            )
        } else {
            (None, None)
        });
        run2 = Some(r2);
    }

    let run3 = if cfg.vnc {
        Some(run_vnc(&stack, &probe, &page, &script, &cfg, &dir)?)
    } else {
        None
    };

    let mut summary = summary(&cfg, &run1, run2.as_ref(), legibility, &expected, &dir);
    if let Some(r3) = &run3 {
        let v = vnc_summary(&run1, r3, &expected);
        match summary.find("\ndetails:") {
            Some(at) => summary.insert_str(at, &v),
            None => summary.push_str(&v),
        }
    }
    if let Some(w) = &web {
        summary.push_str(&web_summary(&run1, w, &expected));
    }
    print!("{summary}");
    let _ = std::fs::write(dir.join("results.txt"), &summary);
    Ok(())
}

/// Run 3: the same workload while x11vnc serves the session's display (XDamage, ZRLE) to an
/// RFB client that takes every update (`tsuitate_benches::vnc`).
fn run_vnc(
    stack: &Stack,
    probe: &Probe<'_>,
    page: &TestPage,
    script: &str,
    cfg: &Settings,
    dir: &std::path::Path,
) -> Result<Run, String> {
    let chrome = chromium(probe.agent).ok_or("no Chromium process found under the agent")?;
    let display = environ(chrome, "DISPLAY");
    if display.is_empty() {
        return Err("Chromium has no DISPLAY (run as root to read its environment)".into());
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    say(&format!(
        "run 3: same workload, x11vnc serving {display} to an RFB client (ZRLE) / 計測 3: x11vnc で同じ台本…"
    ));
    let log = std::fs::File::create(dir.join("x11vnc.log")).map_err(|e| e.to_string())?;
    // x11vnc runs as the display's user: Xvfb then can attach its shared-memory segments
    // (MIT-SHM, as the agent's own capture uses).
    let ids = |key: &str| -> Option<String> {
        std::fs::read_to_string(format!("/proc/{chrome}/status"))
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()
            .map(str::to_owned)
    };
    let mut command = match (ids("Uid:"), ids("Gid:")) {
        (Some(uid), Some(gid)) if uid != "0" && procs_running_as_root() => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .args(["--clear-groups", "x11vnc"]);
            c
        }
        _ => Command::new("x11vnc"),
    };
    let mut child = Child::spawn(
        "x11vnc",
        command
            .args(["-display", &display, "-rfbport", &port.to_string()])
            .args([
                "-localhost",
                "-nopw",
                "-shared",
                "-forever",
                "-norc",
                "-quiet",
            ])
            .env("XAUTHORITY", environ(chrome, "XAUTHORITY"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log),
    );
    let addr = format!("127.0.0.1:{port}");
    let client = procs::wait_for(Duration::from_secs(15), || VncCounter::connect(&addr).ok());
    let Some(client) = client else {
        child.stop(Duration::from_secs(5));
        return Err(format!(
            "x11vnc did not accept a client (see {})",
            dir.join("x11vnc.log").display()
        ));
    };
    std::thread::sleep(Duration::from_secs(2));
    let probe3 = Probe {
        vnc: Some((child.pid(), client.counts())),
        ffmpeg: None,
        ..*probe
    };
    let run = run_workload(stack, &probe3, page, "run3", script, cfg.idle_ms);
    let ended = client.stop();
    child.stop(Duration::from_secs(5));
    if let Some(e) = ended {
        return Err(format!("the RFB client stopped: {e}"));
    }
    run
}

/// A table of (name, agent value, peer value, decimals) rows with the ratio agent / peer.
fn side_by_side(o: &mut String, peer: &str, rows: &[(&str, Option<f64>, Option<f64>, usize)]) {
    let _ = writeln!(
        o,
        "{:24}{:>16}{:>16}{:>10}",
        "", "tsuitate agent", peer, "ratio"
    );
    for &(name, a, b, d) in rows {
        let _ = writeln!(
            o,
            "{name:24}{:>16}{:>16}{:>10}",
            fmt(a, d),
            fmt(b, d),
            fmt(ratio(a, b), 2)
        );
    }
}

fn procs_running_as_root() -> bool {
    tsuitate_testkit::stack::running_as_root()
}

fn vnc_summary(r1: &Run, r3: &Run, expected: &str) -> String {
    let mut o = String::new();
    let t3 = r3.secs(START, END);
    let idle3 = Some(r3.secs(IDLE_START, IDLE_END));
    let agent3 = r3.delta("agent_cpu", START, END);
    let vnc = r3.delta("vnc_cpu", START, END);
    let (frames3, updates) = (
        r3.delta("frames", START, END),
        r3.delta("vnc_updates", START, END),
    );
    let (bytes3, vb) = (
        r3.delta("bytes", START, END),
        r3.delta("vnc_bytes", START, END),
    );
    let _ = writeln!(
        o,
        "\n== same workload, tsuitate vs x11vnc (XDamage, ZRLE, one client taking every update) (run 3, {t3:.1} s) =="
    );
    let rows = [
        (
            "encode CPU, CPU-s/s",
            ratio(agent3, Some(t3)),
            ratio(vnc, Some(t3)),
            3,
        ),
        ("frames / updates", frames3, updates, 0),
        ("bytes", bytes3, vb, 0),
        (
            "kbit/s",
            ratio(bytes3, Some(t3 * 125.0)),
            ratio(vb, Some(t3 * 125.0)),
            0,
        ),
        (
            "idle window bytes",
            r3.delta("bytes", IDLE_START, IDLE_END),
            r3.delta("vnc_bytes", IDLE_START, IDLE_END),
            0,
        ),
        (
            "idle window CPU-s/s",
            ratio(r3.delta("agent_cpu", IDLE_START, IDLE_END), idle3),
            ratio(r3.delta("vnc_cpu", IDLE_START, IDLE_END), idle3),
            3,
        ),
    ];
    side_by_side(&mut o, "x11vnc", &rows);
    let _ = writeln!(o, "page check run3: {}", page_check(r3, expected));
    let agent1 = r1.rate("agent_cpu", START, END);
    let _ = writeln!(
        o,
        "(run 1 agent CPU for the same workload without x11vnc running: {} CPU-s/s; ratio to x11vnc {})",
        fmt(agent1, 3),
        fmt(ratio(agent1, ratio(vnc, Some(t3))), 2)
    );
    o
}

/// ffmpeg without its banner, its stdin or anything but errors on stderr.
fn quiet_ffmpeg() -> Command {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

/// Run `cmd` to its end; whether it succeeded.
fn succeeds(cmd: &mut Command) -> bool {
    cmd.status().is_ok_and(|s| s.success())
}

/// Luma PSNR (dB) of the picture in PNG file `b` against `a`; `None` when either is missing
/// or their sizes differ.
fn luma_psnr(a: &std::path::Path, b: &std::path::Path) -> Option<f64> {
    if !a.is_file() || !b.is_file() {
        return None;
    }
    let (a, b) = (Picture::load(a), Picture::load(b));
    if a.width != b.width || a.px.len() != b.px.len() {
        return None;
    }
    // BT.601 luma, the same formula for both.
    let luma = |p: &Picture| -> Vec<u8> {
        p.px.iter()
            .map(|[r, g, b]| {
                let y = 66 * u32::from(*r) + 129 * u32::from(*g) + 25 * u32::from(*b);
                (((y + 128) >> 8) + 16) as u8
            })
            .collect()
    };
    Some(psnr(&luma(&a), &luma(&b)))
}

fn summary(
    cfg: &Settings,
    r1: &Run,
    r2: Option<&Run>,
    legibility: Option<(Option<f64>, Option<f64>)>,
    expected: &str,
    dir: &std::path::Path,
) -> String {
    let mut o = String::new();
    let t1 = r1.secs(START, END);
    let lat = |k: &str| r1.report["latency_ms"][k].as_f64().unwrap_or(f64::NAN);
    let _ = writeln!(
        o,
        "\n== tsuitate (agent encoding = {}), scripted workload at {}x{}, {t1:.1} s (run 1) ==",
        cfg.encoding, cfg.width, cfg.height
    );
    let _ = writeln!(
        o,
        "capture→decoded latency  p50 {:.1} ms   p95 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
        lat("p50"),
        lat("p95"),
        lat("p99"),
        lat("max")
    );
    let _ = writeln!(
        o,
        "frames decoded           {} ({:.1} fps over the viewer's run), dropped {}",
        r1.report["frames_decoded"],
        r1.report["fps"].as_f64().unwrap_or(f64::NAN),
        r1.report["dropped_frames"]
    );
    let bytes1 = r1.delta("bytes", START, END);
    let _ = writeln!(
        o,
        "frames relayed           {}",
        fmt(r1.delta("frames", START, END), 0)
    );
    let _ = writeln!(
        o,
        "bytes per second         {} kB/s ({} kbit/s)",
        fmt(ratio(bytes1, Some(t1 * 1e3)), 1),
        fmt(ratio(bytes1, Some(t1 * 125.0)), 0)
    );
    let agent1 = r1.rate("agent_cpu", START, END);
    let _ = writeln!(
        o,
        "agent CPU per session    {} CPU-s/s (agent process: capture, convert, encode, QUIC)",
        fmt(agent1, 3)
    );
    let _ = writeln!(
        o,
        "  with Xvfb + Chromium   {} CPU-s/s (agent and all its descendants)",
        fmt(r1.rate("tree_cpu", START, END), 3)
    );
    let _ = writeln!(
        o,
        "gateway CPU              {} CPU-s/s",
        fmt(r1.rate("gateway_cpu", START, END), 3)
    );
    let _ = writeln!(
        o,
        "idle window              {:.1} s: {} frames relayed (goal 0), agent CPU {} CPU-s/s",
        r1.secs(IDLE_START, IDLE_END),
        fmt(r1.delta("frames", IDLE_START, IDLE_END), 0),
        fmt(r1.rate("agent_cpu", IDLE_START, IDLE_END), 3)
    );
    let _ = writeln!(
        o,
        "page check               run1: {}",
        page_check(r1, expected)
    );
    if let Some(r2) = r2 {
        let t2 = r2.secs(START, END);
        let agent2 = r2.delta("agent_cpu", START, END);
        let ff = r2.delta("ffmpeg_cpu", START, END);
        let (frames2, xf) = (
            r2.delta("frames", START, END),
            r2.delta("x264_frames", START, END),
        );
        let (bytes2, xb) = (
            r2.delta("bytes", START, END),
            r2.delta("x264_bytes", START, END),
        );
        let idle2 = Some(r2.secs(IDLE_START, IDLE_END));
        let _ = writeln!(
            o,
            "\n== same workload, tsuitate vs ffmpeg x264 ({}, zerolatency, 4:2:0, 30 fps) (run 2, {t2:.1} s) ==",
            cfg.x264_preset
        );
        let rows = [
            (
                "encode CPU, CPU-s/s",
                ratio(agent2, Some(t2)),
                ratio(ff, Some(t2)),
                3,
            ),
            ("frames encoded", frames2, xf, 0),
            (
                "CPU ms per frame",
                ratio(agent2, ratio(frames2, Some(1e3))),
                ratio(ff, ratio(xf, Some(1e3))),
                2,
            ),
            ("bytes", bytes2, xb, 0),
            (
                "kbit/s",
                ratio(bytes2, Some(t2 * 125.0)),
                ratio(xb, Some(t2 * 125.0)),
                0,
            ),
            (
                "idle window bytes",
                r2.delta("bytes", IDLE_START, IDLE_END),
                r2.delta("x264_bytes", IDLE_START, IDLE_END),
                0,
            ),
            (
                "idle window CPU-s/s",
                ratio(r2.delta("agent_cpu", IDLE_START, IDLE_END), idle2),
                ratio(r2.delta("ffmpeg_cpu", IDLE_START, IDLE_END), idle2),
                3,
            ),
        ];
        side_by_side(&mut o, "ffmpeg x264", &rows);
        if let Some((ours, theirs)) = legibility {
            let _ = writeln!(
                o,
                "last picture vs screen   luma PSNR {} dB (tsuitate) / {} dB (x264): the text at rest",
                fmt(ours, 1),
                fmt(theirs, 1)
            );
        }
        let _ = writeln!(o, "page check run2: {}", page_check(r2, expected));
        let _ = writeln!(
            o,
            "(run 1 agent CPU for the same workload without ffmpeg running: {} CPU-s/s; ratio to x264 {})",
            fmt(agent1, 3),
            fmt(ratio(agent1, ratio(ff, Some(t2))), 2)
        );
    }
    let _ = writeln!(
        o,
        "\ndetails: {}run1.report.json, snapshots and logs in {}",
        dir.display(),
        dir.display()
    );
    o
}
