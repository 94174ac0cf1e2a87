//! Test support: a loopback HTTP server that serves one page and records what it posts, the
//! browser account, and an H.264 decoder for checking what the viewer would see.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use tsuitate_agent::browser::cgroup::{Cgroups, Layout, Limits};
use tsuitate_agent::{BrowserOptions, BrowserUser};

/// Reports posted by the page (`POST /report`, body text).
#[derive(Clone, Default)]
pub struct Reports(Arc<(Mutex<Vec<String>>, Condvar)>);

impl Reports {
    /// Every report so far.
    pub fn all(&self) -> Vec<String> {
        self.0 .0.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Wait until a report satisfying `pred` arrives; returns it.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.0;
        let mut seen = lock.lock().ok()?;
        loop {
            if let Some(r) = seen.iter().find(|r| pred(r)) {
                return Some(r.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            seen = cv.wait_timeout(seen, deadline - now).ok()?.0;
        }
    }

    fn push(&self, r: String) {
        let (lock, cv) = &*self.0;
        if let Ok(mut v) = lock.lock() {
            v.push(r);
        }
        cv.notify_all();
    }
}

/// Serve `page` at `/` on 127.0.0.1; returns the URL and the report log.
pub fn serve(page: &'static str) -> (String, Reports) {
    serve_with(page, None)
}

/// Like [`serve`] but over HTTPS with `tls` (URL host `localhost`).
pub fn serve_tls(page: &'static str, tls: Arc<rustls::ServerConfig>) -> (String, Reports) {
    serve_with(page, Some(tls))
}

fn serve_with(page: &'static str, tls: Option<Arc<rustls::ServerConfig>>) -> (String, Reports) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("addr").port();
    let url = match tls {
        Some(_) => format!("https://localhost:{port}/"),
        None => format!("http://127.0.0.1:{port}/"),
    };
    let reports = Reports::default();
    let r = reports.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let r = r.clone();
            let tls = tls.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                match tls.and_then(|c| rustls::ServerConnection::new(c).ok()) {
                    Some(conn) => handle(rustls::StreamOwned::new(conn, stream), page, &r),
                    None => handle(stream, page, &r),
                }
            });
        }
    });
    (url, reports)
}

fn handle<S: Read + Write>(stream: S, page: &str, reports: &Reports) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let request = line.trim().to_string();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let resp = if request.starts_with("POST /report") {
            reports.push(String::from_utf8_lossy(&body).into_owned());
            "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n".to_string()
        } else if request.starts_with("GET / ") {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\r\n{}",
                page.len(),
                page
            )
        } else {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string()
        };
        let out = reader.get_mut();
        if out
            .write_all(resp.as_bytes())
            .and_then(|_| out.flush())
            .is_err()
        {
            return;
        }
    }
}

/// The account the browser runs as in tests. As root (CI), the `tsuitate-browser` system user
/// is created if missing (scripts/setup-browser-user.sh does the same).
pub fn browser_user() -> Option<BrowserUser> {
    if !tsuitate_agent::browser::running_as_root() {
        return None;
    }
    if BrowserUser::lookup("tsuitate-browser").is_err() {
        let status = std::process::Command::new("useradd")
            .args(["--system", "--no-create-home", "--home-dir", "/nonexistent"])
            .args(["--shell", "/usr/sbin/nologin", "tsuitate-browser"])
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "useradd tsuitate-browser"
        );
    }
    Some(BrowserUser::lookup("tsuitate-browser").expect("tsuitate-browser user"))
}

/// Options for a test browser on `url`.
pub fn options(url: &str) -> BrowserOptions {
    BrowserOptions {
        pool: None,
        chromium: tsuitate_agent::browser::default_chromium(),
        xvfb: PathBuf::from("/usr/bin/Xvfb"),
        start_url: url.to_string(),
        user: browser_user(),
        proxy: None,
        proxy_bypass: None,
        work_dir: None,
        extra_ca: None,
        // Room for the resize steps, small enough for CI.
        max_size: (1280, 720),
        cgroups: cgroups(Limits::default()),
    }
}

/// As root (CI): session cgroups with `limits` below `tsuitate-test/agent-t<test pid>`, the
/// agent's own start-up preparation done once per test process.
pub fn cgroups(limits: Limits) -> Option<Cgroups> {
    static PREPARED: std::sync::Once = std::sync::Once::new();
    if !tsuitate_agent::browser::running_as_root() {
        return None;
    }
    let layout = Layout::detect().expect("cgroup controllers (memory, pids, cpu)");
    let id = format!("t{}", std::process::id());
    let c = Cgroups::new(
        layout,
        std::path::Path::new("tsuitate-test"),
        &id,
        limits,
        2,
    );
    PREPARED.call_once(|| {
        c.prepare().expect("prepare the session cgroups");
    });
    Some(c)
}

/// Decodes access units and answers pixel questions in RGB.
pub struct View {
    decoder: Decoder,
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

impl View {
    pub fn new() -> View {
        View {
            decoder: Decoder::new().expect("decoder"),
            width: 0,
            height: 0,
            rgb: Vec::new(),
        }
    }

    /// Decode one access unit; true when a picture came out.
    pub fn decode(&mut self, au: &[u8]) -> bool {
        match self.decoder.decode(au) {
            Ok(Some(yuv)) => {
                let (w, h) = yuv.dimensions();
                self.width = w;
                self.height = h;
                self.rgb.resize(w * h * 3, 0);
                yuv.write_rgb8(&mut self.rgb);
                true
            }
            _ => false,
        }
    }

    /// The RGB of a pixel.
    pub fn rgb_at(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// Write the picture as a PPM (debugging).
    pub fn save_ppm(&self, path: &str) {
        let mut data = format!("P6\n{} {}\n255\n", self.width, self.height).into_bytes();
        data.extend_from_slice(&self.rgb);
        let _ = std::fs::write(path, data);
    }
}
