//! A real Chromium driven over the DevTools protocol (CDP), standing in for a staff member's
//! Edge or Chrome on an LGWAN PC: headless, its own profile, killed (with its whole process
//! group) when dropped.
//!
//! Only what the web viewer's tests need: navigate, evaluate, screenshot, and input as the
//! browser's own input pipeline sees it (mouse, keys, IME composition, inserted text).

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::procs::wait_for;

use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

/// A headless Chromium and a CDP session on its first page.
pub struct Browser {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    // Dropped after the socket: the process (and its group) is killed, then its profile removed.
    _proc: Proc,
    _profile: tempfile::TempDir,
}

/// The Chromium process: killed with its whole process group when dropped — also when
/// `launch` fails half-way (a leaked headless Chromium spins a core).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // Chromium's helpers share its process group (process_group(0) in launch).
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// GET on the DevTools HTTP endpoint (it keeps the connection open: read `Content-Length`).
fn devtools_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>())
                })?
                .ok()?;
            if body.len() >= len {
                return Some(body[..len].to_owned());
            }
        }
    }
}

impl Browser {
    /// Start Chromium (Japanese UI, `accept_lang` for pages) at `width`×`height`.
    ///
    /// Test-only choices, each documented in docs/testing.md: `--ignore-certificate-errors`
    /// (the test CA is not in this profile's NSS store), `--no-sandbox` (it runs as root of
    /// its mount namespace) and that namespace itself (no agent-host policy).
    pub fn launch(accept_lang: &str, width: u32, height: u32) -> Browser {
        let profile = tempfile::Builder::new()
            .prefix("tsuitate-lgwan-pc-")
            .tempdir()
            .expect("profile dir");
        // The LGWAN PC is another machine than the agent host: the agent's managed policy in
        // /etc/chromium/policies (no DevTools, no file://) must not apply to it. Chromium runs
        // in its own mount namespace with an empty policy folder over the host's.
        let mut cmd = Command::new("unshare");
        if !is_root() {
            cmd.args(["--user", "--map-root-user"]);
        }
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs tsuitate-lgwan-pc /etc/chromium/policies 2>/dev/null; exec chromium \"$@\"")
            .arg("sh")
            .arg("--headless=new")
            .arg("--remote-debugging-port=0")
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--lang={accept_lang}"))
            .arg(format!("--accept-lang={accept_lang}"))
            .arg("--ignore-certificate-errors")
            .arg("--autoplay-policy=no-user-gesture-required")
            .arg("--no-first-run")
            .arg("--no-default-browser-check")
            .arg("--disable-gpu")
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Chromium refuses its sandbox as (namespace) root.
        cmd.arg("--no-sandbox");
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let child = Proc(cmd.spawn().expect("start chromium"));
        let port_file = profile.path().join("DevToolsActivePort");
        let port = wait_for(Duration::from_secs(30), || {
            let text = std::fs::read_to_string(&port_file).ok()?;
            text.lines().next()?.trim().parse::<u16>().ok()
        });
        let Some(port) = port else {
            panic!("chromium did not open its DevTools port");
        };
        let addr = format!("127.0.0.1:{port}");
        let ws_url = wait_for(Duration::from_secs(10), || {
            let list = devtools_get(&addr, "/json/list")?;
            let v: Value = serde_json::from_str(&list).ok()?;
            v.as_array()?
                .iter()
                .find(|t| t["type"] == "page")
                .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_owned))
        })
        .expect("a page target");
        let stream = TcpStream::connect(&addr).expect("connect to DevTools");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let (ws, _) = tungstenite::client(ws_url.as_str(), stream).expect("DevTools websocket");
        let mut b = Browser {
            _proc: child,
            ws,
            next_id: 0,
            _profile: profile,
        };
        b.call("Page.enable", json!({}));
        b
    }

    /// Call a CDP method and return its result (events in between are skipped). Panics on a
    /// protocol error: a test cannot go on without the browser.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(msg)).expect("send to DevTools");
        loop {
            let m = self.ws.read().expect("read from DevTools");
            let Message::Text(text) = m else { continue };
            let v: Value = serde_json::from_str(text.as_str()).expect("DevTools JSON");
            if v["id"] == id {
                if let Some(err) = v.get("error") {
                    panic!("{method} failed: {err}");
                }
                return v["result"].clone();
            }
        }
    }

    /// Open `url` and wait until its document has loaded.
    pub fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
        self.wait_true(
            "document.readyState === 'complete'",
            Duration::from_secs(20),
        );
    }

    /// Evaluate `expr` in the page (promises awaited) and return its value.
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "awaitPromise": true, "returnByValue": true}),
        );
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("evaluating {expr:?} threw: {ex}");
        }
        r["result"]["value"].clone()
    }

    /// Wait until `expr` is `true` in the page; false after `limit`.
    pub fn wait_true(&mut self, expr: &str, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        loop {
            let r = self.call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true}),
            );
            if r["result"]["value"] == true {
                return true;
            }
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A PNG screenshot of the viewport, written to `path` and returned as bytes.
    pub fn screenshot(&mut self, path: &Path) -> Vec<u8> {
        use base64::Engine;
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let data = r["data"].as_str().expect("screenshot data");
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("base64 screenshot");
        std::fs::write(path, &png).expect("write screenshot");
        png
    }

    /// A left click at page coordinates (CSS pixels).
    pub fn click(&mut self, x: f64, y: f64) {
        self.mouse("mouseMoved", x, y, "none", 0);
        self.mouse("mousePressed", x, y, "left", 1);
        self.mouse("mouseReleased", x, y, "left", 1);
    }

    fn mouse(&mut self, kind: &str, x: f64, y: f64, button: &str, clicks: u32) {
        self.call(
            "Input.dispatchMouseEvent",
            json!({"type": kind, "x": x, "y": y, "button": button, "clickCount": clicks}),
        );
    }

    /// Press and release one key as a keyboard would (`key`, `code`, the Windows key code, and
    /// the text it types, if any).
    pub fn key(&mut self, key: &str, code: &str, vk: u32, text: Option<&str>) {
        let mut down = json!({"type": "keyDown", "key": key, "code": code,
                              "windowsVirtualKeyCode": vk, "nativeVirtualKeyCode": vk});
        if let Some(t) = text {
            down["text"] = json!(t);
            down["unmodifiedText"] = json!(t);
        }
        self.call("Input.dispatchKeyEvent", down);
        self.call(
            "Input.dispatchKeyEvent",
            json!({"type": "keyUp", "key": key, "code": code,
                   "windowsVirtualKeyCode": vk, "nativeVirtualKeyCode": vk}),
        );
    }

    /// A chord as a keyboard sends it: the modifier keys of the CDP `modifiers` (1 Alt, 2 Ctrl,
    /// 4 Meta, 8 Shift) go down, then `key` (`code`, Windows key code `vk`) is pressed and
    /// released, then the modifiers come up.
    pub fn chord(&mut self, modifiers: u32, key: &str, code: &str, vk: u32) {
        const KEYS: [(u32, &str, &str, u32); 4] = [
            (1, "Alt", "AltLeft", 0x12),
            (2, "Control", "ControlLeft", 0x11),
            (4, "Meta", "MetaLeft", 0x5b),
            (8, "Shift", "ShiftLeft", 0x10),
        ];
        let held: Vec<_> = KEYS.iter().filter(|k| modifiers & k.0 != 0).collect();
        let mut mods = 0;
        for (bit, k, c, v) in &held {
            mods |= bit;
            self.key_event("rawKeyDown", k, c, *v, mods);
        }
        self.key_event("rawKeyDown", key, code, vk, mods);
        self.key_event("keyUp", key, code, vk, mods);
        for (bit, k, c, v) in held.iter().rev() {
            mods &= !bit;
            self.key_event("keyUp", k, c, *v, mods);
        }
    }

    fn key_event(&mut self, kind: &str, key: &str, code: &str, vk: u32, modifiers: u32) {
        self.call(
            "Input.dispatchKeyEvent",
            json!({"type": kind, "key": key, "code": code, "modifiers": modifiers,
                   "windowsVirtualKeyCode": vk, "nativeVirtualKeyCode": vk}),
        );
    }

    /// Type ASCII text key by key (letters, digits, space).
    pub fn type_ascii(&mut self, text: &str) {
        for c in text.chars() {
            let (code, vk) = match c {
                'a'..='z' => (
                    format!("Key{}", c.to_ascii_uppercase()),
                    u32::from(c.to_ascii_uppercase()),
                ),
                'A'..='Z' => (format!("Key{c}"), u32::from(c)),
                '0'..='9' => (format!("Digit{c}"), u32::from(c)),
                ' ' => ("Space".into(), 0x20),
                other => panic!("type_ascii: {other:?} is not supported"),
            };
            let s = c.to_string();
            self.key(&s, &code, vk, Some(&s));
        }
    }

    /// An IME composition as MS-IME drives it: composition updates, then the commit.
    pub fn ime_compose(&mut self, steps: &[&str], commit: &str) {
        for s in steps {
            let n = s.chars().count();
            self.call(
                "Input.imeSetComposition",
                json!({"text": s, "selectionStart": n, "selectionEnd": n}),
            );
        }
        self.call("Input.insertText", json!({"text": commit}));
    }

    /// Insert text as an IME commit without a composition (CDP `Input.insertText`).
    pub fn insert_text(&mut self, text: &str) {
        self.call("Input.insertText", json!({"text": text}));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.ws.close(None);
    }
}
