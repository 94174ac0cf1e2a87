//! The real viewer window under Xvfb: it shows the gateway's picture (compared with an X
//! screenshot), and X keyboard/pointer input arrives at the gateway as the right events.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tsuitate_protocol::{Button, InputEvent, KeyCode, ViewerToGateway};
use tsuitate_testkit::viewer_gateway::{psnr, render, GatewayOptions, TestGateway, PASSWORD, USER};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ConfigureWindowAux, ConnectionExt, ImageFormat, InputFocus, Window, BUTTON_PRESS_EVENT,
    BUTTON_RELEASE_EVENT, KEY_PRESS_EVENT, KEY_RELEASE_EVENT, MOTION_NOTIFY_EVENT,
};
use x11rb::protocol::xtest::ConnectionExt as _;

/// An Xvfb server, killed (and reaped) on drop.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Xvfb {
        let mut child = Command::new("/usr/bin/Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1024x768x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let display = format!(":{}", line.trim());
        assert!(line.trim().parse::<u32>().is_ok(), "Xvfb said {line:?}");
        Xvfb { child, display }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The viewer process, killed on drop.
struct Viewer(Child);

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_viewer(gw: &TestGateway, x: &Xvfb, password: &str) -> Viewer {
    start_viewer_lang(gw, x, password, "C")
}

fn start_viewer_lang(gw: &TestGateway, x: &Xvfb, password: &str, lang: &str) -> Viewer {
    let mut cmd = viewer_command(gw, x, lang);
    cmd.env("TSUITATE_PASSWORD", password);
    Viewer(cmd.spawn().unwrap())
}

fn viewer_command(gw: &TestGateway, x: &Xvfb, lang: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tsuitate-viewer"));
    cmd.args([
        "--gateway",
        &gw.addr.to_string(),
        "--server-name",
        "localhost",
        "--ca",
    ])
    .arg(&gw.ca_path)
    .args(["--user", USER, "--scale", "nearest"])
    .env("DISPLAY", &x.display)
    .env_remove("WAYLAND_DISPLAY")
    .env_remove("TSUITATE_PASSWORD")
    .env("LANG", lang)
    .env_remove("LC_ALL")
    .env_remove("LC_MESSAGES")
    .stdin(Stdio::null())
    .stdout(Stdio::null());
    cmd
}

/// The viewer's top-level window: (id, x, y, width, height), once it is mapped at `want` size.
fn find_window(
    conn: &impl Connection,
    root: Window,
    want: (u16, u16),
) -> Option<(Window, i16, i16)> {
    let tree = conn.query_tree(root).ok()?.reply().ok()?;
    tree.children.into_iter().rev().find_map(|w| {
        let attrs = conn.get_window_attributes(w).ok()?.reply().ok()?;
        if attrs.map_state != x11rb::protocol::xproto::MapState::VIEWABLE {
            return None;
        }
        let g = conn.get_geometry(w).ok()?.reply().ok()?;
        ((g.width, g.height) == want).then_some((w, g.x, g.y))
    })
}

/// RGB8 pixels of a window.
fn screenshot(conn: &impl Connection, win: Window, w: u16, h: u16) -> Option<Vec<u8>> {
    let img = conn
        .get_image(ImageFormat::Z_PIXMAP, win, 0, 0, w, h, !0)
        .ok()?
        .reply()
        .ok()?;
    // 24-bit depth on a little-endian server: BGRX per pixel.
    Some(
        img.data
            .chunks_exact(4)
            .flat_map(|p| [p[2], p[1], p[0]])
            .collect(),
    )
}

/// The keycode that produces `keysym` in the server's keymap.
fn keycode_of(conn: &impl Connection, keysym: u32) -> Option<u8> {
    let setup = conn.setup();
    let (min, max) = (setup.min_keycode, setup.max_keycode);
    let map = conn
        .get_keyboard_mapping(min, max - min + 1)
        .ok()?
        .reply()
        .ok()?;
    let per = usize::from(map.keysyms_per_keycode);
    map.keysyms
        .chunks(per.max(1))
        .position(|syms| syms.contains(&keysym))
        .and_then(|i| u8::try_from(i).ok())
        .map(|i| min + i)
}

fn wait_until<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[test]
fn window_shows_the_picture_and_sends_x_input() {
    let x = Xvfb::start();
    let gw = TestGateway::start(GatewayOptions::default());
    let _viewer = start_viewer(&gw, &x, PASSWORD);
    let (conn, screen) = x11rb::connect(Some(&x.display)).unwrap();
    let root = conn.setup().roots[screen].root;
    let source = render(0, 640, 360);
    // The window resizes itself to the session size and shows picture 0.
    let mut best = 0.0;
    let found = wait_until(Duration::from_secs(20), || {
        let (win, _, _) = find_window(&conn, root, (640, 360))?;
        let shot = screenshot(&conn, win, 640, 360)?;
        let p = psnr(&shot, &source);
        best = f64::max(best, p);
        (p > 30.0).then_some(win)
    });
    let Some(win) = found else {
        panic!("no window showing the picture (best PSNR {best:.1} dB)");
    };
    // X input through the real window (XTEST, as a user's hardware would): a click and a key.
    let (_, wx, wy) = find_window(&conn, root, (640, 360)).unwrap();
    // No window manager under Xvfb: give the viewer the keyboard focus ourselves.
    conn.set_input_focus(InputFocus::PARENT, win, x11rb::CURRENT_TIME)
        .unwrap();
    let fake = |kind: u8, detail: u8, x: i16, y: i16| {
        conn.xtest_fake_input(kind, detail, x11rb::CURRENT_TIME, root, x, y, 0)
            .unwrap();
        conn.flush().unwrap();
    };
    fake(MOTION_NOTIFY_EVENT, 0, wx + 100, wy + 50);
    fake(BUTTON_PRESS_EVENT, 1, 0, 0);
    fake(BUTTON_RELEASE_EVENT, 1, 0, 0);
    let ret = keycode_of(&conn, 0xff0d).expect("a keycode for Return");
    fake(KEY_PRESS_EVENT, ret, 0, 0);
    fake(KEY_RELEASE_EVENT, ret, 0, 0);
    let got = wait_until(Duration::from_secs(10), || {
        let inputs = gw.recorded().inputs;
        let has_key_up = inputs.iter().any(|e| {
            matches!(
                e,
                InputEvent::Key {
                    down: false,
                    code: KeyCode::Enter,
                    keysym: 0xff0d,
                    ..
                }
            )
        });
        has_key_up.then_some(inputs)
    });
    let inputs = got.unwrap_or_else(|| panic!("inputs: {:?}", gw.recorded().inputs));
    assert!(
        inputs.contains(&InputEvent::PointerMove { x: 100, y: 50 }),
        "{inputs:?}"
    );
    let down = inputs.iter().position(|e| {
        *e == InputEvent::Button {
            down: true,
            button: Button::Left,
        }
    });
    let up = inputs.iter().position(|e| {
        *e == InputEvent::Button {
            down: false,
            button: Button::Left,
        }
    });
    assert!(down.is_some() && up > down, "{inputs:?}");
    assert!(inputs.iter().any(|e| matches!(
        e,
        InputEvent::Key {
            down: true,
            code: KeyCode::Enter,
            keysym: 0xff0d,
            ..
        }
    )));
    // Resizing the window asks the gateway for that size (debounced, once).
    conn.configure_window(win, &ConfigureWindowAux::new().width(800).height(600))
        .unwrap();
    conn.flush().unwrap();
    let resized = wait_until(Duration::from_secs(10), || {
        let control = gw.recorded().control;
        control
            .contains(&ViewerToGateway::Resize {
                width: 800,
                height: 600,
            })
            .then_some(control)
    });
    let control = resized.unwrap_or_else(|| panic!("control: {:?}", gw.recorded().control));
    let resizes = control
        .iter()
        .filter(|m| matches!(m, ViewerToGateway::Resize { .. }))
        .count();
    assert_eq!(resizes, 1, "{control:?}");
}

/// The `_NET_WM_NAME` (UTF-8 title) of every top-level window.
fn titles(conn: &impl Connection, root: Window) -> Vec<String> {
    let Ok(atom) = conn.intern_atom(false, b"_NET_WM_NAME").map(|c| c.reply()) else {
        return Vec::new();
    };
    let Ok(atom) = atom else { return Vec::new() };
    let Some(tree) = conn.query_tree(root).ok().and_then(|c| c.reply().ok()) else {
        return Vec::new();
    };
    tree.children
        .into_iter()
        .filter_map(|w| {
            let r = conn
                .get_property(
                    false,
                    w,
                    atom.atom,
                    x11rb::protocol::xproto::AtomEnum::ANY,
                    0,
                    1024,
                )
                .ok()?
                .reply()
                .ok()?;
            String::from_utf8(r.value).ok()
        })
        .collect()
}

#[test]
fn window_shows_a_translated_message_for_a_wrong_password() {
    let x = Xvfb::start();
    let gw = TestGateway::start(GatewayOptions::default());
    let mut viewer = start_viewer_lang(&gw, &x, "wrong", "ja_JP.UTF-8");
    let (conn, screen) = x11rb::connect(Some(&x.display)).unwrap();
    let root = conn.setup().roots[screen].root;
    let want = "ユーザー名またはパスワードが違います。";
    let found = wait_until(Duration::from_secs(20), || {
        titles(&conn, root).into_iter().find(|t| t.contains(want))
    });
    assert!(found.is_some(), "titles: {:?}", titles(&conn, root));
    // The window stays open with the message; the process is still running.
    assert!(viewer.0.try_wait().unwrap().is_none());
    assert_eq!(gw.recorded().logins, vec![USER.to_string()]);
}

#[test]
fn window_asks_for_the_password_and_logs_in() {
    let x = Xvfb::start();
    let gw = TestGateway::start(GatewayOptions::default());
    let _viewer = Viewer(viewer_command(&gw, &x, "C").spawn().unwrap());
    let (conn, screen) = x11rb::connect(Some(&x.display)).unwrap();
    let root = conn.setup().roots[screen].root;
    // The login form: the title shows the user line, no connection yet.
    let win = wait_until(Duration::from_secs(20), || {
        titles(&conn, root)
            .iter()
            .any(|t| t.contains("User: alice"))
            .then(|| find_window(&conn, root, (1280, 720)).map(|w| w.0))
            .flatten()
    })
    .unwrap_or_else(|| panic!("titles: {:?}", titles(&conn, root)));
    assert_eq!(gw.recorded().connections, 0);
    conn.set_input_focus(InputFocus::PARENT, win, x11rb::CURRENT_TIME)
        .unwrap();
    let shift = keycode_of(&conn, 0xffe1).unwrap();
    for c in PASSWORD.chars().chain(['\r']) {
        let keysym = if c == '\r' {
            0xff0d
        } else {
            u32::from(c.to_ascii_lowercase())
        };
        let code = keycode_of(&conn, keysym).unwrap_or_else(|| panic!("no keycode for {c:?}"));
        let upper = c.is_ascii_uppercase();
        for (kind, key, on) in [
            (KEY_PRESS_EVENT, shift, upper),
            (KEY_PRESS_EVENT, code, true),
            (KEY_RELEASE_EVENT, code, true),
            (KEY_RELEASE_EVENT, shift, upper),
        ] {
            if on {
                conn.xtest_fake_input(kind, key, x11rb::CURRENT_TIME, root, 0, 0, 0)
                    .unwrap();
            }
        }
        conn.flush().unwrap();
    }
    let source = render(0, 640, 360);
    let shown = wait_until(Duration::from_secs(20), || {
        let (win, _, _) = find_window(&conn, root, (640, 360))?;
        let shot = screenshot(&conn, win, 640, 360)?;
        (psnr(&shot, &source) > 30.0).then_some(())
    });
    assert!(shown.is_some(), "logins: {:?}", gw.recorded().logins);
    assert_eq!(gw.recorded().logins, vec![USER.to_string()]);
    // Typing into the form is not input for the browser.
    assert!(
        gw.recorded().inputs.is_empty(),
        "{:?}",
        gw.recorded().inputs
    );
}

#[test]
fn a_timeout_warning_shows_over_the_picture_until_the_user_acts() {
    use tsuitate_protocol::{GatewayToViewer, Message, TimeoutKind};
    let x = Xvfb::start();
    let warning = GatewayToViewer::TimeoutWarning {
        kind: TimeoutKind::Idle,
        seconds: 300,
    }
    .to_bytes();
    let gw = TestGateway::start(GatewayOptions {
        raw_after_first_frame: Some(warning),
        ..GatewayOptions::default()
    });
    let _viewer = start_viewer_lang(&gw, &x, PASSWORD, "ja_JP.UTF-8");
    let (conn, screen) = x11rb::connect(Some(&x.display)).unwrap();
    let root = conn.setup().roots[screen].root;
    let source = render(0, 640, 360);
    // The banner's light-yellow text in the top middle of the picture.
    let banner = |shot: &[u8]| {
        (12..40)
            .flat_map(|y| (120..520).map(move |x| (y * 640 + x) * 3))
            .filter(|&i| {
                shot[i] > 220 && shot[i + 1] > 190 && shot[i + 2] > 100 && shot[i + 2] < 170
            })
            .count()
    };
    let shown = wait_until(Duration::from_secs(20), || {
        let (win, _, _) = find_window(&conn, root, (640, 360))?;
        let shot = screenshot(&conn, win, 640, 360)?;
        (banner(&shot) > 100 && psnr(&shot, &source) < 40.0).then_some((win, shot))
    });
    let Some((win, shot)) = shown else {
        panic!("no timeout warning over the picture");
    };
    if let Ok(dir) = std::env::var("TSUITATE_KEEP_SHOTS") {
        let frame = tsuitate_viewer::decode::DecodedFrame {
            width: 640,
            height: 360,
            rgb: shot.clone(),
            sequence: 0,
            capture_us: 0,
        };
        let _ = tsuitate_viewer::snapshot::write_png(
            &frame,
            &std::path::Path::new(&dir).join("timeout-warning.png"),
        );
    }
    // Any key goes to the gateway and takes the idle warning away.
    conn.set_input_focus(InputFocus::PARENT, win, x11rb::CURRENT_TIME)
        .unwrap();
    let ret = keycode_of(&conn, 0xff0d).expect("a keycode for Return");
    for kind in [KEY_PRESS_EVENT, KEY_RELEASE_EVENT] {
        conn.xtest_fake_input(kind, ret, x11rb::CURRENT_TIME, root, 0, 0, 0)
            .unwrap();
    }
    conn.flush().unwrap();
    let gone = wait_until(Duration::from_secs(10), || {
        let shot = screenshot(&conn, win, 640, 360)?;
        (banner(&shot) == 0).then_some(())
    });
    assert!(gone.is_some(), "the warning stays after input");
}
