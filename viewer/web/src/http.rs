//! HTTPS (HTTP/1.1 over rustls, TLS 1.3 only): the login form, the viewer page, the WebRTC
//! offer, logout and the bundled assets. Every response carries a strict
//! Content-Security-Policy and `Cache-Control: no-store`; every POST needs the session's CSRF
//! token; bodies are bounded before they are read.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, COOKIE, LOCATION, SET_COOKIE};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::{mpsc, oneshot};
use tsuitate_protocol::{Limits, MAX_PASSWORD_BYTES, MAX_USER_BYTES};
use tsuitate_viewer::client::{self, ClientConfig, ClientError};
use tsuitate_viewer::i18n::{self, Lang};
use webrtc::peer_connection::RTCSessionDescription;

use crate::config::WebConfig;
use crate::pages::{self, Notice};
use crate::rtc::RtcError;
use crate::session::{self, Command, SessionContext, SessionHandle};

/// Largest login form body.
const MAX_FORM: usize = 4 * 1024;
/// Largest SDP offer body.
const MAX_OFFER: usize = 64 * 1024;
/// How long an ended session's message waits to be shown before it is forgotten.
const ENDED_KEEP: Duration = Duration::from_secs(600);
const SESSION_COOKIE: &str = "tsuitate_session";
const LOGIN_COOKIE: &str = "tsuitate_login";

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; media-src 'self' blob:; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";
const PERMISSIONS: &str = "clipboard-read=(), clipboard-write=(), camera=(), microphone=(), \
                           geolocation=(), usb=(), serial=(), hid=(), payment=(), \
                           picture-in-picture=(), display-capture=()";

type Body = Full<Bytes>;

struct Entry {
    handle: Arc<SessionHandle>,
    lang: Lang,
    ended_seen: Option<Instant>,
}

/// The web viewer's shared state.
pub struct App {
    cfg: WebConfig,
    /// QUIC client configuration for every login (CA and front certificate read once).
    quic: quinn::ClientConfig,
    ctx: Arc<SessionContext>,
    sessions: Mutex<HashMap<String, Entry>>,
}

impl App {
    /// State for `cfg`.
    pub fn new(cfg: WebConfig, quic: quinn::ClientConfig, ctx: Arc<SessionContext>) -> Arc<App> {
        Arc::new(App {
            cfg,
            quic,
            ctx,
            sessions: Mutex::new(HashMap::new()),
        })
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sessions still running.
    pub fn live_sessions(&self) -> usize {
        self.sessions()
            .values()
            .filter(|e| e.handle.ended().is_none())
            .count()
    }

    /// Forget ended sessions whose message nobody came to read.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.sessions().retain(|_, e| match e.handle.ended() {
            None => true,
            Some(_) => {
                let seen = *e.ended_seen.get_or_insert(now);
                now.duration_since(seen) < ENDED_KEEP
            }
        });
    }

    /// Ask every live session to log out (shutdown).
    pub async fn logout_all(&self) {
        let handles: Vec<_> = self.sessions().values().map(|e| e.handle.clone()).collect();
        for h in &handles {
            let _ = h.commands.send(Command::Logout).await;
        }
        let all_ended = async {
            for h in &handles {
                h.wait_ended().await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(3), all_ended).await;
    }
}

/// A random token (32 bytes, hex).
pub fn token() -> String {
    let mut b = [0u8; 32];
    if getrandom::fill(&mut b).is_err() {
        // Without OS randomness no session can be safe: refuse to run rather than guess.
        panic!("the operating system's random number generator failed");
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn cookie<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn set_cookie(name: &str, value: &str, max_age: Option<u32>) -> String {
    let age = max_age.map_or(String::new(), |a| format!("; Max-Age={a}"));
    format!("{name}={value}; Path=/; HttpOnly; Secure; SameSite=Strict{age}")
}

fn query<'a>(req: &'a Request<Incoming>, key: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// Decode `application/x-www-form-urlencoded`.
pub fn parse_form(body: &[u8]) -> Option<HashMap<String, String>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut out = HashMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(percent_decode(k)?, percent_decode(v)?);
    }
    Some(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(s.len());
    let mut it = s.bytes();
    while let Some(b) = it.next() {
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = [it.next()?, it.next()?];
                let hex = std::str::from_utf8(&hex).ok()?;
                bytes.push(u8::from_str_radix(hex, 16).ok()?);
            }
            b => bytes.push(b),
        }
    }
    String::from_utf8(bytes).ok()
}

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    let mut put = |k: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    put("content-type", content_type);
    put("content-security-policy", CSP);
    put("cache-control", "no-store");
    put("x-content-type-options", "nosniff");
    put("referrer-policy", "no-referrer");
    put("x-frame-options", "DENY");
    put("cross-origin-opener-policy", "same-origin");
    put("permissions-policy", PERMISSIONS);
    put("strict-transport-security", "max-age=31536000");
    r
}

fn html(status: StatusCode, body: String) -> Response<Body> {
    respond(status, "text/html; charset=utf-8", body)
}

fn plain(status: StatusCode, ja: &str, en: &str) -> Response<Body> {
    respond(status, "text/plain; charset=utf-8", format!("{ja}\n{en}\n"))
}

fn redirect(to: &str) -> Response<Body> {
    let mut r = respond(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "");
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

fn with_cookie(mut r: Response<Body>, cookie: String) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().append(SET_COOKIE, v);
    }
    r
}

async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, Response<Body>> {
    let too_large = || {
        plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "リクエストが大きすぎます。",
            "The request is too large.",
        )
    };
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(_) => Err(too_large()),
    }
}

fn forbidden_csrf() -> Response<Body> {
    plain(
        StatusCode::FORBIDDEN,
        "ページの有効期限が切れています。ページを読み込み直してください。",
        "This page has expired. Please reload it.",
    )
}

/// Serve one request.
pub async fn handle(app: Arc<App>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let path = req.uri().path().to_owned();
    match (req.method(), path.as_str()) {
        (&Method::GET, "/") => login_get(&app, &req),
        (&Method::POST, "/login") => login_post(&app, req, peer).await,
        (&Method::GET, "/view") => view_get(&app, &req),
        (&Method::POST, "/offer") => offer_post(&app, req).await,
        (&Method::GET, "/state") => state_get(&app, &req),
        (&Method::POST, "/logout") => logout_post(&app, req).await,
        (&Method::GET, p) if p.starts_with("/assets/") => match pages::asset(&p[8..]) {
            Some((content_type, body)) => respond(StatusCode::OK, content_type, body),
            None => not_found(),
        },
        (_, "/" | "/login" | "/view" | "/offer" | "/logout" | "/state") => plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "この操作はできません。",
            "Method not allowed.",
        ),
        _ => not_found(),
    }
}

fn not_found() -> Response<Body> {
    plain(
        StatusCode::NOT_FOUND,
        "ページが見つかりません。",
        "Not found.",
    )
}

fn request_lang(req: &Request<Incoming>) -> Lang {
    let accept = req
        .headers()
        .get(hyper::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    pages::pick_lang(query(req, "lang"), accept)
}

/// The page language: an explicit `?lang=` wins, else the language chosen at login.
fn session_lang(req: &Request<Incoming>, chosen: Lang) -> Lang {
    if query(req, "lang").is_some() {
        request_lang(req)
    } else {
        chosen
    }
}

/// The login page again, with why the gateway (or this service) refused.
fn refused(lang: Lang, status: StatusCode, e: &ClientError) -> Response<Body> {
    let text = i18n::error_message(lang, e);
    let notice = Notice {
        name: tsuitate_viewer::outcome::error_name(e),
        text: &text,
        error: true,
    };
    fresh_login(lang, status, Some(notice))
}

fn session_ended() -> Response<Body> {
    plain(
        StatusCode::GONE,
        "セッションは終了しています。",
        "The session has ended.",
    )
}

fn fresh_login(lang: Lang, status: StatusCode, notice: Option<Notice<'_>>) -> Response<Body> {
    let csrf = token();
    let page = pages::login_page(lang, &csrf, notice);
    with_cookie(html(status, page), set_cookie(LOGIN_COOKIE, &csrf, None))
}

fn login_get(app: &App, req: &Request<Incoming>) -> Response<Body> {
    if let Some(tok) = cookie(req, SESSION_COOKIE) {
        let mut sessions = app.sessions();
        let ended = sessions.get(tok).map(|e| (e.handle.ended(), e.lang));
        match ended {
            Some((None, _)) => return redirect("/view"),
            Some((Some(end), chosen)) => {
                sessions.remove(tok);
                drop(sessions);
                let lang = session_lang(req, chosen);
                let text = match lang {
                    Lang::Ja => &end.ja,
                    Lang::En => &end.en,
                };
                let notice = Notice {
                    name: &end.name,
                    text,
                    error: end.name != "Logout",
                };
                let r = fresh_login(lang, StatusCode::OK, Some(notice));
                return with_cookie(r, set_cookie(SESSION_COOKIE, "", Some(0)));
            }
            None => {}
        }
    }
    fresh_login(request_lang(req), StatusCode::OK, None)
}

async fn login_post(app: &Arc<App>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let pre = cookie(&req, LOGIN_COOKIE).map(str::to_owned);
    let accept = req
        .headers()
        .get(hyper::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match read_body(req, MAX_FORM).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(form) = parse_form(&body) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "フォームを読み取れません。",
            "The form could not be read.",
        );
    };
    let lang = pages::pick_lang(form.get("lang").map(String::as_str), accept.as_deref());
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if pre.is_none() || pre.as_deref() != Some(field("csrf")) {
        return forbidden_csrf();
    }
    let (user, password) = (field("user"), field("password"));
    if user.is_empty() || password.is_empty() {
        return fresh_login(
            lang,
            StatusCode::BAD_REQUEST,
            Some(Notice {
                name: "missing",
                text: match lang {
                    Lang::Ja => "ユーザー名とパスワードを入力してください。",
                    Lang::En => "Please enter your user name and password.",
                },
                error: true,
            }),
        );
    }
    // Longer than the protocol allows: no such user. Refused here, as the gateway would, rather
    // than sent as a malformed Login (which the gateway counts as a protocol violation).
    if user.len() > MAX_USER_BYTES || password.len() > MAX_PASSWORD_BYTES {
        return refused(lang, StatusCode::UNAUTHORIZED, &ClientError::Denied);
    }
    if app.live_sessions() >= app.cfg.max_sessions {
        return refused(
            lang,
            StatusCode::SERVICE_UNAVAILABLE,
            &ClientError::NoCapacity,
        );
    }
    let cfg = ClientConfig {
        gateway: app.cfg.gateway.clone(),
        server_name: app.cfg.gateway_name.clone(),
        ca_file: app.cfg.ca.clone(),
        user: user.to_owned(),
        password: password.to_owned(),
        connect_timeout: app.cfg.connect_timeout_s,
        limits: Limits::default(),
        forwarded_for: app.cfg.front_identity().map(|_| peer),
    };
    match client::connect_with(&cfg, app.quic.clone()).await {
        Ok(conn) => {
            tracing::info!(user = %user, browser = %peer, "web login");
            let tok = token();
            let csrf = token();
            let (tx, rx) = mpsc::channel(8);
            let handle = Arc::new(SessionHandle::new(user.to_owned(), csrf, tx));
            session::spawn(conn, cfg, rx, handle.clone(), app.ctx.clone());
            app.sessions().insert(
                tok.clone(),
                Entry {
                    handle,
                    lang,
                    ended_seen: None,
                },
            );
            let r = with_cookie(redirect("/view"), set_cookie(SESSION_COOKIE, &tok, None));
            with_cookie(r, set_cookie(LOGIN_COOKIE, "", Some(0)))
        }
        Err(e) => {
            let name = tsuitate_viewer::outcome::error_name(&e);
            tracing::info!(user = %user, browser = %peer, outcome = name, "web login refused");
            let status = match e {
                ClientError::Denied => StatusCode::UNAUTHORIZED,
                ClientError::LockedOut { .. } => StatusCode::TOO_MANY_REQUESTS,
                ClientError::NoCapacity => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_GATEWAY,
            };
            refused(lang, status, &e)
        }
    }
}

fn live_session(app: &App, req: &Request<Incoming>) -> Option<(Arc<SessionHandle>, Lang)> {
    let tok = cookie(req, SESSION_COOKIE)?;
    let sessions = app.sessions();
    let e = sessions.get(tok)?;
    e.handle
        .ended()
        .is_none()
        .then(|| (e.handle.clone(), e.lang))
}

fn view_get(app: &App, req: &Request<Incoming>) -> Response<Body> {
    match live_session(app, req) {
        Some((h, lang)) => html(
            StatusCode::OK,
            pages::viewer_page(session_lang(req, lang), &h.csrf, &h.user),
        ),
        None => redirect("/"),
    }
}

/// Whether the page's session still runs, or how it ended (the page asks when its WebRTC
/// connection drops: to reconnect, or to show why it ended).
fn state_get(app: &App, req: &Request<Incoming>) -> Response<Body> {
    let entry = cookie(req, SESSION_COOKIE).and_then(|tok| {
        let sessions = app.sessions();
        sessions.get(tok).map(|e| e.handle.ended())
    });
    let body = match entry {
        None => serde_json::json!({"live": false}),
        Some(None) => serde_json::json!({"live": true}),
        Some(Some(e)) => serde_json::json!({"live": false, "name": e.name, "ja": e.ja, "en": e.en}),
    };
    respond(StatusCode::OK, "application/json", body.to_string())
}

async fn offer_post(app: &App, req: Request<Incoming>) -> Response<Body> {
    let Some((h, _)) = live_session(app, &req) else {
        return plain(
            StatusCode::UNAUTHORIZED,
            "ログインしていません。",
            "Not logged in.",
        );
    };
    let csrf_ok = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == h.csrf);
    if !csrf_ok {
        return forbidden_csrf();
    }
    let body = match read_body(req, MAX_OFFER).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Ok(offer) = serde_json::from_slice::<RTCSessionDescription>(&body) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "接続情報を読み取れません。",
            "The connection offer could not be read.",
        );
    };
    let (tx, rx) = oneshot::channel();
    if h.commands
        .send(Command::Offer(Box::new(offer), tx))
        .await
        .is_err()
    {
        return session_ended();
    }
    match tokio::time::timeout(Duration::from_secs(10), rx).await {
        Ok(Ok(Ok(answer))) => match serde_json::to_vec(&answer) {
            Ok(json) => respond(StatusCode::OK, "application/json", json),
            Err(_) => plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "内部エラー",
                "Internal error",
            ),
        },
        Ok(Ok(Err(RtcError::NoH264))) => plain(
            StatusCode::BAD_REQUEST,
            "このブラウザとは映像の接続ができません (H.264 が必要です)。",
            "No video connection with this browser (H.264 is needed).",
        ),
        Ok(Ok(Err(RtcError::Webrtc(_)))) => plain(
            StatusCode::BAD_REQUEST,
            "接続情報を読み取れません。",
            "The connection offer could not be read.",
        ),
        _ => session_ended(),
    }
}

async fn logout_post(app: &App, req: Request<Incoming>) -> Response<Body> {
    let Some((h, _)) = live_session(app, &req) else {
        return redirect("/");
    };
    let body = match read_body(req, MAX_FORM).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let csrf_ok = parse_form(&body)
        .and_then(|f| f.get("csrf").cloned())
        .is_some_and(|c| c == h.csrf);
    if !csrf_ok {
        return forbidden_csrf();
    }
    let _ = h.commands.send(Command::Logout).await;
    let _ = tokio::time::timeout(Duration::from_secs(3), h.wait_ended()).await;
    redirect("/")
}

/// A rustls server config for HTTPS: TLS 1.3 only, ring, HTTP/1.1.
pub fn tls_config(cfg: &WebConfig) -> anyhow::Result<rustls::ServerConfig> {
    let certs = tsuitate_transport::tls::load_certs(&cfg.cert)?;
    let key = tsuitate_transport::tls::load_key(&cfg.key)?;
    let mut tls = rustls::ServerConfig::builder_with_provider(tsuitate_transport::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

/// Accept HTTPS connections until `stop` resolves.
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    tls: rustls::ServerConfig,
    stop: impl std::future::Future<Output = ()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    tokio::pin!(stop);
    let mut sweep = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = sweep.tick() => app.sweep(),
            accepted = listener.accept() => {
                let Ok((tcp, peer)) = accepted else { continue };
                let acceptor = acceptor.clone();
                let app = app.clone();
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                        Ok(Ok(t)) => t,
                        _ => return,
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let app = app.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(app, req, peer).await) }
                    });
                    // A client that trickles its headers (slowloris) is cut off.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(10))
                        .max_buf_size(64 * 1024)
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode() {
        let f = parse_form(b"user=%E5%B1%B1%E7%94%B0&password=a+b%26c&csrf=x").unwrap();
        assert_eq!(f["user"], "山田");
        assert_eq!(f["password"], "a b&c");
        assert!(parse_form(b"user=%zz").is_none());
        assert!(parse_form(b"user=%E5").is_none());
        assert!(parse_form(&[0xff]).is_none());
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let (a, b) = (token(), token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
