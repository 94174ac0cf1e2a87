//! A local test page on 127.0.0.1 that reports what happens in it to the test.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The page: a big button that turns the page green and reports `click`, and a text field
/// whose value is reported on every change as `text=<value>`.
pub const PAGE: &str = r#"<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8"><title>tsuitate e2e</title>
<style>
 body { margin:0; background:#ffffff; font-family:"Noto Sans CJK JP",sans-serif; }
 #btn { position:absolute; left:40px; top:40px; width:400px; height:200px; font-size:32px; }
 #field { position:absolute; left:40px; top:280px; width:700px; height:80px; font-size:32px; }
 #tall { position:absolute; top:400px; height:5000px; width:10px; }
</style></head>
<body>
<button id="btn">押す</button>
<input id="field" autocomplete="off">
<div id="tall"></div>
<script>
 function report(q) { fetch('/event?' + q).catch(function(){}); }
 document.getElementById('btn').addEventListener('click', function() {
   document.body.style.background = '#00c000';
   report('click=1');
 });
 document.getElementById('field').addEventListener('input', function(e) {
   report('text=' + encodeURIComponent(e.target.value));
 });
 report('loaded=1');
</script>
</body></html>"#;

/// What `/download/NAME` answers, as an attachment named NAME.
pub const DOWNLOAD_BODY: &str = "tsuitate download test: this file must not be stored\n";

/// Serves a page (by default [`PAGE`]) at `/`, a file to download at `/download/NAME`, and
/// records each `/event?…` query, decoded.
#[derive(Debug)]
pub struct TestPage {
    /// The page's URL.
    pub url: String,
    events: Arc<Mutex<Vec<String>>>,
}

impl TestPage {
    /// Start serving [`PAGE`] on an ephemeral loopback port (the thread lives as long as the
    /// program).
    pub fn start() -> TestPage {
        TestPage::serve(PAGE.to_owned())
    }

    /// Start serving `html` at `/`; the page reports with `fetch('/event?…')`.
    pub fn serve(html: String) -> TestPage {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind test page");
        let url = format!("http://{}/", listener.local_addr().expect("local addr"));
        let events = Arc::new(Mutex::new(Vec::new()));
        let ev = events.clone();
        let html = Arc::new(html);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (ev, html) = (ev.clone(), html.clone());
                std::thread::spawn(move || serve(stream, &ev, &html));
            }
        });
        TestPage { url, events }
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<String> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Wait until an event satisfies `pred`.
    pub fn wait_event(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        crate::procs::wait_for(timeout, || self.events().into_iter().find(|e| pred(e)))
    }
}

fn serve(stream: TcpStream, events: &Mutex<Vec<String>>, html: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(&stream);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    let mut line = String::new();
    while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
        line.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut extra_header = String::new();
    let (body, ctype) = if let Some(q) = path.strip_prefix("/event?") {
        if let Ok(mut e) = events.lock() {
            e.push(percent_decode(q));
        }
        ("ok", "text/plain")
    } else if path == "/" {
        (html, "text/html; charset=utf-8")
    } else if let Some(name) = path.strip_prefix("/download/") {
        // A file the browser would save: a download test looks for it on the agent host.
        let name: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .collect();
        extra_header = format!("Content-Disposition: attachment; filename=\"{name}\"\r\n");
        (DOWNLOAD_BODY, "application/octet-stream")
    } else {
        ("", "text/plain")
    };
    let mut out = &stream;
    let _ = write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{extra_header}Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Decode `%XX` escapes (UTF-8) and `+`.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
