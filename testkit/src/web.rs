//! The web viewer (`tsuitate-web`) in front of a [`Stack`]'s gateway, on loopback, with the
//! stack's CA (its HTTPS certificate is the gateway's, which names localhost and 127.0.0.1).

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::cdp::Browser;

use crate::procs::{bin, wait_for, Child};
use crate::stack::{s, table, write_toml, Stack};

/// A running `tsuitate-web`.
pub struct WebViewer {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The UDP port every browser's WebRTC uses, `127.0.0.1:PORT`.
    pub rtc_addr: String,
    /// The process (stopped with SIGTERM when dropped).
    pub child: Child,
    log: std::path::PathBuf,
}

impl WebViewer {
    /// Start it with `extra` TOML merged into its configuration.
    pub fn start(stack: &Stack, extra: &str) -> WebViewer {
        let d = stack.dir.path();
        let mut config = table([
            ("listen", s("127.0.0.1:0")),
            ("cert", s("pki/gateway.pem")),
            ("key", s("pki/gateway-key.pem")),
            ("ca", s("pki/ca.pem")),
            ("gateway", s(stack.viewer_addr.clone())),
            ("gateway_name", s("localhost")),
            ("rtc_ip", s("127.0.0.1")),
            ("rtc_port", toml::Value::Integer(0)),
        ]);
        let extra: toml::Table = toml::from_str(extra).expect("extra is TOML");
        config.extend(extra);
        write_toml(&d.join("web.toml"), &config);
        let ready = d.join("web.ready.json");
        let log = d.join("web.log");
        let mut child = Child::spawn(
            "tsuitate-web",
            Command::new(bin("tsuitate-web"))
                .args(["--config"])
                .arg(d.join("web.toml"))
                .arg("--ready-file")
                .arg(&ready)
                .env("TSUITATE_LOG", "info,webrtc=warn,rtc=warn")
                .stdout(Stdio::null())
                .stderr(
                    std::fs::File::create(&log)
                        .map(Stdio::from)
                        .unwrap_or_else(|_| Stdio::null()),
                ),
        );
        let addr = wait_for(Duration::from_secs(20), || {
            if child.exited() {
                return Some(None);
            }
            let text = std::fs::read_to_string(&ready).ok()?;
            let v: Value = serde_json::from_str(&text).ok()?;
            Some(
                v["listen"]
                    .as_str()
                    .zip(v["rtc"].as_str())
                    .map(|(a, b)| (a.to_owned(), b.to_owned())),
            )
        })
        .flatten()
        .unwrap_or_else(|| {
            panic!(
                "tsuitate-web did not start:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        let (addr, rtc_addr) = addr;
        WebViewer {
            url: format!("https://{addr}"),
            addr,
            rtc_addr,
            child,
            log,
        }
    }

    /// Start it as the trusted front `name`: a front certificate from the stack's CA (the
    /// stack's gateway must list `name` in `trusted_fronts`), so the gateway sees each
    /// browser's address.
    pub fn start_as_front(stack: &Stack, name: &str, extra: &str) -> WebViewer {
        let (cert, key) = stack.issue_front(name);
        let front = format!(
            "front_cert = {}\nfront_key = {}\n{extra}",
            toml::Value::String(cert.display().to_string()),
            toml::Value::String(key.display().to_string()),
        );
        WebViewer::start(stack, &front)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Log in through the login form; returns once the answer page (the viewer, or the login page
/// with a notice) has loaded.
pub fn login(b: &mut Browser, base: &str, user: &str, password: &str) {
    b.navigate(&format!("{base}/"));
    let js = format!(
        "document.getElementById('user').value = {u}; \
         document.getElementById('password').value = {p}; \
         document.getElementById('login').requestSubmit(); true",
        u = Value::from(user),
        p = Value::from(password),
    );
    b.eval(&js);
    // The POST answers with the next page (the viewer, or the login page with a notice).
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        b.wait_true("document.readyState === 'complete' && (location.pathname === '/view' || !!document.getElementById('notice'))", Duration::from_secs(30)),
        "no answer to the login"
    );
}

/// Page coordinates (CSS px) of a point of the remote frame.
pub fn frame_point(b: &mut Browser, x: u32, y: u32) -> (f64, f64) {
    let v = b.eval(&format!(
        "(() => {{ const v = document.getElementById('screen'); const r = v.getBoundingClientRect(); \
           const s = Math.min(r.width / v.videoWidth, r.height / v.videoHeight); \
           return [r.left + (r.width - v.videoWidth * s) / 2 + {x} * s + s / 2, \
                   r.top + (r.height - v.videoHeight * s) / 2 + {y} * s + s / 2]; }})()"
    ));
    (v[0].as_f64().expect("x"), v[1].as_f64().expect("y"))
}

/// Wait until the viewer page shows video (frames decoded, no status message over it).
pub fn wait_playing(b: &mut Browser) {
    assert!(
        b.wait_true(
            "!!window.tsuitate && tsuitate.stats().frames > 0 && document.getElementById('status').hidden",
            Duration::from_secs(40)
        ),
        "the video never played: {}",
        b.eval("JSON.stringify({stats: window.tsuitate && tsuitate.stats(), status: document.getElementById('status').textContent})")
    );
}
