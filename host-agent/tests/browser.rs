//! Real Xvfb + Chromium on a loopback page: input goes in, the page changes, the decoded
//! frame shows it; the screen idles without frames; scrolling makes frames; a resize reaches
//! the page and the frames, menus stay inside the session, new windows are fitted; the
//! session leaves nothing behind. One browser is shared by the steps (CI has two cores).

mod common;

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tsuitate_agent::x11::{self, CaptureMode, WindowSizer, X11Capture, X11Injector};
use tsuitate_agent::{BrowserSession, EncoderSettings, FrameSource, OpenH264Encoder, Pipeline};
use tsuitate_protocol::{Button, InputEvent, KeyCode, Modifiers, VideoFrame};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt as _, MapState};
use x11rb::rust_connection::RustConnection;

const W: u16 = 800;
const H: u16 = 600;

const PAGE: &str = r#"<!doctype html><html><head><meta charset="utf-8"><style>
body{margin:0;background:#fff;font:20px sans-serif}
#btn{position:absolute;left:0;top:0;width:300px;height:200px;background:rgb(0,0,255)}
#in{position:absolute;left:20px;top:260px;width:500px;height:40px;font-size:20px}
#tall{position:absolute;left:0;top:400px;width:700px;height:6000px;
 background:repeating-linear-gradient(#000 0 20px,#fff 20px 40px)}
</style></head><body>
<div id="btn"></div><input id="in" autocomplete="off"><div id="tall"></div>
<script>
function report(s){fetch('/report',{method:'POST',body:s});}
document.getElementById('btn').onclick=function(){this.style.background='rgb(255,0,0)';report('clicked');};
document.getElementById('in').addEventListener('keydown',function(e){if(e.key==='Enter'){report('value:'+this.value);}});
window.addEventListener('scroll',function(){report('scrolled:'+window.scrollY);});
window.addEventListener('load',function(){report('lang:'+navigator.language);report('offset:'+(window.outerHeight-window.innerHeight));});
window.addEventListener('resize',function(){report('inner:'+innerWidth+'x'+innerHeight);});
var avail='';setInterval(function(){var a=screen.availWidth+'x'+screen.availHeight;if(a!==avail){avail=a;report('avail:'+a);}},100);
</script></body></html>"#;

/// Japanese text with about 40 distinct characters.
const LONG_JA: &str =
    "情報セキュリティ対策基本方針に基づき、LGWAN接続系とインターネット接続系の分離を確認します。";

fn key(down: bool, code: KeyCode, keysym: u32) -> InputEvent {
    InputEvent::Key {
        down,
        code,
        keysym,
        modifiers: Modifiers::default(),
    }
}

/// Type `s` as key presses with US codes and the characters' keysyms (Shift for capitals).
fn type_ascii(s: &str) -> Vec<InputEvent> {
    let mut ev = Vec::new();
    for c in s.chars() {
        let shift = c.is_ascii_uppercase() || "!@#$%^&*()_+{}|:\"<>?~".contains(c);
        if shift {
            ev.push(key(true, KeyCode::ShiftLeft, 0xffe1));
        }
        let ks = x11::char_keysym(c);
        ev.push(key(true, KeyCode::Unidentified, ks));
        ev.push(key(false, KeyCode::Unidentified, ks));
        if shift {
            ev.push(key(false, KeyCode::ShiftLeft, 0xffe1));
        }
    }
    ev
}

fn click(x: u16, y: u16) -> Vec<InputEvent> {
    vec![
        InputEvent::PointerMove { x, y },
        InputEvent::Button {
            down: true,
            button: Button::Left,
        },
        InputEvent::Button {
            down: false,
            button: Button::Left,
        },
    ]
}

/// Frames received within `d`, decoded into `view`.
fn collect(rx: &mut mpsc::Receiver<VideoFrame>, view: &mut common::View, d: Duration) -> usize {
    let deadline = Instant::now() + d;
    let mut n = 0;
    while Instant::now() < deadline {
        match rx.try_recv() {
            Ok(f) => {
                view.decode(&f.data);
                n += 1;
            }
            Err(mpsc::error::TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(10)),
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        }
    }
    n
}

#[test]
fn real_chromium_session() {
    let (url, reports) = common::serve(PAGE);
    let opts = common::options(&url);
    let mut browser = BrowserSession::start(&opts, W, H).expect("browser starts");
    let dir = browser.dir().to_path_buf();
    let groups = browser.process_groups();

    let offset: u16 = reports
        .wait_for(Duration::from_secs(60), |r| r.starts_with("offset:"))
        .and_then(|r| r["offset:".len()..].parse().ok())
        .expect("page loaded and reported its offset");
    assert!(
        offset > 40 && offset < 200,
        "browser toolbar height {offset}"
    );

    // The screen is larger than the session: capture, input and windows use W×H.
    assert_eq!(browser.size(), (W, H));
    assert!(browser.screen_size() > (W, H), "room to grow");
    let connect = || x11::connect(browser.display(), Duration::from_secs(5)).expect("connect");
    let mut capture = X11Capture::new(connect(), CaptureMode::Shm).expect("capture");
    assert_eq!(capture.mode(), CaptureMode::Shm);
    capture.set_size(W, H).expect("capture rectangle");
    let mut inject = X11Injector::new(connect(), Some(capture.waker())).expect("injector");
    inject.set_size(W, H);
    let sizer = WindowSizer::new(connect(), W, H).expect("window sizer");
    let probe = connect();

    // The pointer is visible: with the cursor drawn in, the frame differs near the pointer.
    inject
        .apply(&[InputEvent::PointerMove {
            x: 600,
            y: offset + 150,
        }])
        .expect("move");
    std::thread::sleep(Duration::from_millis(300));
    let plain = capture.grab().expect("grab");
    let with_cursor = tsuitate_agent::FrameSource::capture(&mut capture).expect("capture");
    let differs = (600..616).any(|x| {
        (offset as usize + 150..offset as usize + 166)
            .any(|y| plain.pixel(x, y) != with_cursor.pixel(x, y))
    });
    assert!(differs, "cursor composited into the frame");

    let enc = OpenH264Encoder::new(EncoderSettings {
        width: W,
        height: H,
        fps: 30,
        bitrate_kbps: 4000,
        screen_content: true,
    })
    .expect("encoder");
    let (tx, mut rx) = mpsc::channel(4);
    let mut pipeline = Pipeline::start(Box::new(capture), Box::new(enc), 30, tx).expect("pipeline");
    let mut view = common::View::new();
    pipeline.request_keyframe();
    inject
        .apply(&[InputEvent::PointerMove {
            x: 601,
            y: offset + 150,
        }])
        .expect("move");
    assert!(
        collect(&mut rx, &mut view, Duration::from_secs(2)) > 0,
        "first frames"
    );
    let blue = view.rgb_at(50, offset as usize + 50);
    assert!(
        blue[2] > 200 && blue[0] < 60,
        "button starts blue: {blue:?}"
    );

    // 1. A click changes the page: the page reports it and the next frames show red.
    inject.apply(&click(150, offset + 100)).expect("click");
    assert!(
        reports
            .wait_for(Duration::from_secs(10), |r| r == "clicked")
            .is_some(),
        "page saw the click"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut red = false;
    while !red && Instant::now() < deadline {
        collect(&mut rx, &mut view, Duration::from_millis(200));
        let p = view.rgb_at(50, offset as usize + 50);
        red = p[0] > 200 && p[2] < 60;
    }
    view.save_ppm("/tmp/agent-click.ppm");
    assert!(
        red,
        "decoded frame shows the red button: {:?}",
        view.rgb_at(50, offset as usize + 50)
    );

    // 2. Typed ASCII (incl. JIS-relevant symbols) and committed Japanese text arrive exactly.
    inject
        .apply(&click(200, offset + 280))
        .expect("focus input");
    std::thread::sleep(Duration::from_millis(300));
    let ascii = "Hello, World! _|\\~ 123";
    inject.apply(&type_ascii(ascii)).expect("type ascii");
    inject
        .apply(&[
            key(true, KeyCode::IntlYen, 0xa5),
            key(false, KeyCode::IntlYen, 0xa5),
            InputEvent::Text("情報セキュリティ".into()),
            // More distinct characters than the layout has spare keycodes (≈19 on Xvfb):
            // spare keycodes get remapped while earlier ones are still being typed.
            InputEvent::Text(LONG_JA.into()),
            InputEvent::Text(LONG_JA.into()),
            key(true, KeyCode::Enter, 0xff0d),
            key(false, KeyCode::Enter, 0xff0d),
        ])
        .expect("type text");
    let expected = format!("value:{ascii}¥情報セキュリティ{LONG_JA}{LONG_JA}");
    let got = reports.wait_for(Duration::from_secs(10), |r| r.starts_with("value:"));
    assert_eq!(
        got.as_deref(),
        Some(expected.as_str()),
        "typed text arrives exactly"
    );

    // 2b. Keys repeat at the viewer's rate, never the X server's: a key held without its
    // release (a gateway lost mid-keystroke) types once; the viewer's repeats (down, down,
    // down, up) type three times.
    inject
        .apply(&[key(true, KeyCode::KeyX, u32::from(b'x'))])
        .expect("press x");
    std::thread::sleep(Duration::from_millis(1500));
    let y = u32::from(b'y');
    inject
        .apply(&[
            key(false, KeyCode::KeyX, u32::from(b'x')),
            key(true, KeyCode::KeyY, y),
            key(true, KeyCode::KeyY, y),
            key(true, KeyCode::KeyY, y),
            key(false, KeyCode::KeyY, y),
            key(true, KeyCode::Enter, 0xff0d),
            key(false, KeyCode::Enter, 0xff0d),
        ])
        .expect("held and repeated keys");
    let repeated = format!("{expected}xyyy");
    let got = reports.wait_for(Duration::from_secs(10), |r| {
        r.starts_with("value:") && r != expected
    });
    assert_eq!(
        got.as_deref(),
        Some(repeated.as_str()),
        "one x for a held key, three y for three downs"
    );

    // 3. An idle page produces no frames once it settles (focus off the input: no caret).
    inject.apply(&click(750, offset + 150)).expect("blur");
    collect(&mut rx, &mut view, Duration::from_secs(2));
    let idle = collect(&mut rx, &mut view, Duration::from_secs(2));
    assert_eq!(idle, 0, "no frames while idle");

    // 4. Scrolling produces frames.
    inject
        .apply(&[
            InputEvent::PointerMove {
                x: 400,
                y: offset + 300,
            },
            InputEvent::Wheel { dx: 0, dy: 3 },
        ])
        .expect("wheel");
    assert!(
        reports
            .wait_for(Duration::from_secs(10), |r| r.starts_with("scrolled:"))
            .is_some(),
        "page scrolled"
    );
    let scrolled = collect(&mut rx, &mut view, Duration::from_secs(2));
    assert!(scrolled > 0, "scrolling makes frames");

    // 5. Printing is disabled: Ctrl+P opens no print dialog (whose overlay greys the page
    // around it; the strip at the left edge is outside the dialog itself).
    collect(&mut rx, &mut view, Duration::from_millis(500));
    let before = view.rgb.clone();
    inject
        .apply(&[
            key(true, KeyCode::ControlLeft, 0xffe3),
            key(true, KeyCode::KeyP, 0x70),
            key(false, KeyCode::KeyP, 0x70),
            key(false, KeyCode::ControlLeft, 0xffe3),
        ])
        .expect("ctrl+p");
    collect(&mut rx, &mut view, Duration::from_secs(4));
    let changed = (offset as usize + 10..H as usize - 10)
        .flat_map(|y| (0..16).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let i = (y * view.width + x) * 3;
            (0..3).any(|c| before[i + c].abs_diff(view.rgb[i + c]) > 40)
        })
        .count();
    assert!(
        changed < 100,
        "no print dialog over the page ({changed} pixels changed)"
    );

    // 6. Resize: the page sees the new window size, the frames get it (new stream).
    let (w2, h2) = (1024u16, 640u16);
    sizer.resize(w2, h2).expect("fit windows");
    inject.set_size(w2, h2);
    pipeline.resize(w2, h2);
    let inner = format!("inner:{w2}x{}", h2 - offset);
    assert_eq!(
        reports.wait_for(Duration::from_secs(10), |r| r == inner),
        Some(inner.clone()),
        "page sees the new window size"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while view.width != usize::from(w2) && Instant::now() < deadline {
        collect(&mut rx, &mut view, Duration::from_millis(200));
    }
    assert_eq!(
        (view.width, view.height),
        (usize::from(w2), usize::from(h2))
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let page_at = |v: &common::View| v.rgb_at(900, offset as usize + 100) == [255, 255, 255];
    while !page_at(&view) && Instant::now() < deadline {
        collect(&mut rx, &mut view, Duration::from_millis(200));
    }
    view.save_ppm("/tmp/agent-resized.ppm");
    assert!(page_at(&view), "page drawn in the grown area");

    // 7. Menus stay inside the session: Chromium took the work area, and a context menu
    // opened at the bottom-right corner fits in it.
    let avail = format!("avail:{w2}x{h2}");
    assert!(
        reports
            .wait_for(Duration::from_secs(10), |r| r == avail)
            .is_some(),
        "screen.availWidth follows the work area"
    );
    inject
        .apply(&[
            InputEvent::PointerMove {
                x: w2 - 20,
                y: h2 - 20,
            },
            InputEvent::Button {
                down: true,
                button: Button::Right,
            },
            InputEvent::Button {
                down: false,
                button: Button::Right,
            },
        ])
        .expect("right click");
    let menus = wait_windows(&probe, |w| w.iter().any(|t| t.override_redirect));
    let menus: Vec<_> = menus.into_iter().filter(|t| t.override_redirect).collect();
    assert!(!menus.is_empty(), "context menu opened");
    for m in &menus {
        assert!(m.inside(w2, h2), "menu {m:?} inside {w2}x{h2}");
    }
    inject
        .apply(&[
            key(true, KeyCode::Escape, 0xff1b),
            key(false, KeyCode::Escape, 0xff1b),
        ])
        .expect("escape");

    // 8. A new browser window (Ctrl+N) is fitted to the session as soon as it is mapped.
    inject
        .apply(&[
            key(true, KeyCode::ControlLeft, 0xffe3),
            key(true, KeyCode::KeyN, 0x6e),
            key(false, KeyCode::KeyN, 0x6e),
            key(false, KeyCode::ControlLeft, 0xffe3),
        ])
        .expect("ctrl+n");
    let fitted = |w: &[TopLevel]| {
        let browsers: Vec<_> = w.iter().filter(|t| !t.override_redirect).collect();
        browsers.len() >= 2 && browsers.iter().all(|t| t.rect == (0, 0, w2, h2))
    };
    let windows = wait_windows(&probe, fitted);
    assert!(fitted(&windows), "every browser window fitted: {windows:?}");

    // 9. Session end leaves no process and no directory.
    pipeline.stop();
    drop(inject);
    drop(sizer);
    let left = browser.stop();
    assert!(left.is_empty(), "processes left: {left:?}");
    let still = tsuitate_agent::browser::session_processes(&groups, &dir);
    assert!(still.is_empty(), "processes still running: {still:?}");
    assert!(!dir.exists(), "session directory removed");
}

/// A viewable child of the root window.
#[derive(Debug, Clone, Copy)]
struct TopLevel {
    override_redirect: bool,
    rect: (i16, i16, u16, u16),
}

impl TopLevel {
    fn inside(&self, w: u16, h: u16) -> bool {
        let (x, y, ww, hh) = self.rect;
        x >= 0
            && y >= 0
            && i32::from(x) + i32::from(ww) <= i32::from(w)
            && i32::from(y) + i32::from(hh) <= i32::from(h)
    }
}

fn top_levels(conn: &RustConnection) -> Vec<TopLevel> {
    let root = conn.setup().roots[0].root;
    let tree = conn.query_tree(root).expect("query").reply().expect("tree");
    let mut out = Vec::new();
    for w in tree.children {
        let Ok(Ok(a)) = conn.get_window_attributes(w).map(|c| c.reply()) else {
            continue;
        };
        let Ok(Ok(g)) = conn.get_geometry(w).map(|c| c.reply()) else {
            continue;
        };
        if a.map_state == MapState::VIEWABLE {
            out.push(TopLevel {
                override_redirect: a.override_redirect,
                rect: (g.x, g.y, g.width, g.height),
            });
        }
    }
    out
}

/// The viewable top-level windows once `pred` holds for them (or after 10 s).
fn wait_windows(conn: &RustConnection, pred: impl Fn(&[TopLevel]) -> bool) -> Vec<TopLevel> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let w = top_levels(conn);
        if pred(&w) || Instant::now() >= deadline {
            return w;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
