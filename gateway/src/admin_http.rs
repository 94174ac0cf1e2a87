//! The admin listener: a tiny HTTP/1.1 responder for `/metrics` (Prometheus text),
//! `/healthz` and the admin API under `/admin/v1/` (JSON, bearer token; see [`crate::admin`]).
//! Loopback by default; one request per connection, no request body.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::admin;
use crate::state::State;

/// Admin connections served at once. Each may take up to 5 s; beyond this many, new ones are
/// closed at once, so idle or slow clients cannot pile up tasks and file descriptors.
pub const MAX_CONNECTIONS: usize = 16;

/// Serve until shutdown.
pub(crate) async fn serve(listener: TcpListener, state: Arc<State>) {
    let mut shutdown = state.shutdown.clone();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = crate::state::stopped(&mut shutdown) => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning on the error.
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ =
                tokio::time::timeout(Duration::from_secs(5), respond(stream, peer, &state)).await;
        });
    }
}

async fn respond(
    mut stream: TcpStream,
    peer: std::net::SocketAddr,
    state: &Arc<State>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 4096];
    let mut used = 0;
    while !buf[..used].windows(4).any(|w| w == b"\r\n\r\n") {
        if used == buf.len() {
            break;
        }
        let n = stream.read(&mut buf[used..]).await?;
        if n == 0 {
            break;
        }
        used += n;
    }
    let head = String::from_utf8_lossy(&buf[..used]);
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let token = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("authorization"))
        .and_then(|(_, v)| v.trim().strip_prefix("Bearer "))
        .map(str::trim);
    let (status, ctype, body) = if path.starts_with("/admin/v1/") {
        let req = admin::Request {
            method,
            path,
            query: query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .collect(),
            token,
            peer,
        };
        let a = admin::handle(state, req).await;
        (
            status_line(a.status),
            "application/json; charset=utf-8",
            format!("{}\n", a.body),
        )
    } else {
        match (method, path) {
            ("GET", "/metrics") => (
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                state.metrics.render(state.gauges()),
            ),
            ("GET", "/healthz") if state.shutting_down() => (
                "503 Service Unavailable",
                "text/plain",
                "shutting down\n".into(),
            ),
            // Audit records were lost: the gateway no longer meets its audit duty.
            ("GET", "/healthz") if state.audit.dropped() > 0 => (
                "503 Service Unavailable",
                "text/plain",
                format!(
                    "audit records dropped: {} (see tsuitate_audit_dropped_total; fix the cause, then restart)\n",
                    state.audit.dropped()
                ),
            ),
            ("GET", "/healthz") => ("200 OK", "text/plain", "ok\n".into()),
            ("GET", _) => ("404 Not Found", "text/plain", "not found\n".into()),
            _ => (
                "405 Method Not Allowed",
                "text/plain",
                "method not allowed\n".into(),
            ),
        }
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(resp.as_bytes()).await?;
    stream.shutdown().await
}

fn status_line(code: u16) -> &'static str {
    match code {
        200 => "200 OK",
        401 => "401 Unauthorized",
        403 => "403 Forbidden",
        404 => "404 Not Found",
        405 => "405 Method Not Allowed",
        _ => "500 Internal Server Error",
    }
}
