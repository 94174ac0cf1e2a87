//! The agent against a minimal in-test gateway over loopback QUIC with mTLS: Hello/Welcome,
//! Ping/Pong, a session opened with a real browser (Started, then a keyframe), capacity
//! reporting and refusal, a resize (the page and the frames follow, the stream stays valid for
//! the gateway's sanitizer, the size is clamped to `max_width`×`max_height`), and a malformed
//! message ending the session cleanly.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use quinn::{Endpoint, RecvStream, SendStream};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;
use tsuitate_agent::config::AgentConfig;
use tsuitate_protocol::{
    AgentSessionToGateway, AgentToGateway, GatewayToAgent, GatewayToAgentSession, Limits, Message,
    MessageBuffer, NalSanitizer, Reason, ALPN, PROTOCOL_VERSION,
};

/// Write ca.pem, gateway.pem/-key.pem and agent.pem/-key.pem (CN agent-1) into `dir`.
fn make_pki(dir: &Path) {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::default();
    ca.distinguished_name.push(DnType::CommonName, "test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca, &ca_key);
    let gw_key = KeyPair::generate().expect("key");
    let gw = CertificateParams::new(vec!["localhost".into()]).expect("params");
    let gw_cert = gw.signed_by(&gw_key, &issuer).expect("gw cert");
    let ag_key = KeyPair::generate().expect("key");
    let mut ag = CertificateParams::new(vec!["agent-1".into()]).expect("params");
    ag.distinguished_name.push(DnType::CommonName, "agent-1");
    let ag_cert = ag.signed_by(&ag_key, &issuer).expect("agent cert");
    for (name, pem) in [
        ("ca.pem", ca_cert.pem()),
        ("gateway.pem", gw_cert.pem()),
        ("gateway-key.pem", gw_key.serialize_pem()),
        ("agent.pem", ag_cert.pem()),
        ("agent-key.pem", ag_key.serialize_pem()),
    ] {
        std::fs::write(dir.join(name), pem).expect("write pem");
    }
}

fn page_tls(dir: &Path) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_file(dir.join("gateway.pem")).expect("cert")],
            PrivateKeyDer::from_pem_file(dir.join("gateway-key.pem")).expect("key"),
        )
        .expect("page tls");
    Arc::new(tls)
}

fn server(dir: &Path) -> Endpoint {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("ca.pem")).expect("ca"))
        .expect("root");
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .expect("verifier");
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from_pem_file(dir.join("gateway.pem")).expect("cert")],
            PrivateKeyDer::from_pem_file(dir.join("gateway-key.pem")).expect("key"),
        )
        .expect("server config");
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).expect("quic");
    let config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    Endpoint::server(config, "127.0.0.1:0".parse().expect("addr")).expect("endpoint")
}

struct Reader<M> {
    recv: RecvStream,
    buf: MessageBuffer<M>,
}

impl<M: Message> Reader<M> {
    fn new(recv: RecvStream) -> Self {
        Reader {
            recv,
            buf: MessageBuffer::new(Limits::default()),
        }
    }
    async fn next(&mut self) -> Option<M> {
        let fut = async {
            loop {
                if let Ok(Some(m)) = self.buf.next_message() {
                    return Some(m);
                }
                match self.recv.read_chunk(1 << 20, true).await {
                    Ok(Some(c)) => self.buf.push(&c.bytes),
                    _ => return None,
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(60), fut)
            .await
            .ok()
            .flatten()
    }
}

async fn send<M: Message>(s: &mut SendStream, m: &M) {
    s.write_all(&m.to_bytes()).await.expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_serves_a_gateway() {
    let pki = tempfile::tempdir().expect("tempdir");
    make_pki(pki.path());
    let work = tempfile::tempdir().expect("work dir");
    // The browser user must be able to traverse to its session directory.
    std::fs::set_permissions(
        work.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .expect("chmod work dir");
    let endpoint = server(pki.path());
    let addr = endpoint.local_addr().expect("addr");
    // The start page is HTTPS with a certificate from the test CA, trusted only through
    // `extra_ca`: the page reporting back proves the browser trusts the bundle.
    let (url, reports) = common::serve_tls(
        "<html><body style='background:#0a0'>ok<script>fetch('/report',{method:'POST',body:'loaded'});\
         addEventListener('resize',function(){fetch('/report',{method:'POST',body:'inner:'+innerWidth})})</script></body></html>",
        page_tls(pki.path()),
    );
    let user = match common::browser_user() {
        Some(u) => format!("browser_user = \"{}:{}\"\n", u.uid, u.gid),
        None => String::new(),
    };
    let toml = format!(
        "agent_id = \"agent-1\"\nmax_sessions = 1\n{user}start_url = \"{url}\"\n\
         gateways = [{{ addr = \"{addr}\", server_name = \"localhost\" }}]\n\
         ca = \"{0}/ca.pem\"\ncert = \"{0}/agent.pem\"\nkey = \"{0}/agent-key.pem\"\n\
         work_dir = \"{1}\"\nbitrate_kbps = 2000\nextra_ca = \"{0}/ca.pem\"\n\
         max_width = 1024\nmax_height = 768\n",
        pki.path().display(),
        work.path().display()
    );
    let config = AgentConfig::parse(&toml).unwrap_or_else(|e| panic!("{e}"));
    let (stop_tx, stop_rx) = watch::channel(false);
    let agent = tokio::spawn(tsuitate_agent::client::run(config, stop_rx));

    // Control stream: Hello → Welcome; Ping → Pong.
    let conn = tokio::time::timeout(Duration::from_secs(20), async {
        endpoint
            .accept()
            .await
            .expect("incoming")
            .await
            .expect("handshake")
    })
    .await
    .expect("agent connects");
    let (mut ctl_send, ctl_recv) = conn.accept_bi().await.expect("control stream");
    let mut ctl = Reader::<AgentToGateway>::new(ctl_recv);
    match ctl.next().await {
        Some(AgentToGateway::Hello {
            version,
            agent_id,
            capacity,
        }) => {
            assert_eq!(
                (version, agent_id.as_str(), capacity),
                (PROTOCOL_VERSION, "agent-1", 1)
            );
        }
        other => panic!("expected Hello, got {other:?}"),
    }
    send(
        &mut ctl_send,
        &GatewayToAgent::Welcome {
            version: PROTOCOL_VERSION,
        },
    )
    .await;
    send(
        &mut ctl_send,
        &GatewayToAgent::Ping {
            nonce: 7,
            gateway_us: 1,
        },
    )
    .await;
    let pong = loop {
        match ctl.next().await {
            Some(AgentToGateway::Pong {
                nonce, agent_us, ..
            }) => break (nonce, agent_us),
            Some(_) => continue,
            None => panic!("control stream ended"),
        }
    };
    assert_eq!(pong.0, 7);
    assert!(
        pong.1 > 1_600_000_000_000_000,
        "agent_us is µs since the epoch"
    );

    // A session: Open → Started → a keyframe of the right size.
    let (mut s1, r1) = conn.open_bi().await.expect("session stream");
    send(
        &mut s1,
        &GatewayToAgentSession::Open {
            session_id: 1,
            width: 641,
            height: 480,
        },
    )
    .await;
    let mut r1 = Reader::<AgentSessionToGateway>::new(r1);
    match r1.next().await {
        Some(AgentSessionToGateway::Started { width, height }) => {
            assert_eq!((width, height), (640, 480))
        }
        other => panic!("expected Started, got {other:?}"),
    }
    let mut sanitizer = NalSanitizer::new(Limits::default());
    match r1.next().await {
        Some(AgentSessionToGateway::Video(f)) => {
            assert!(sanitizer.sanitize(&f.header, &f.data).is_ok(), "sanitizer");
            assert!(f.header.keyframe, "first frame is a keyframe");
            assert_eq!((f.header.width, f.header.height), (640, 480));
            let mut view = common::View::new();
            assert!(view.decode(&f.data), "keyframe decodes");
            assert_eq!((view.width, view.height), (640, 480));
        }
        other => panic!("expected Video, got {other:?}"),
    }
    assert!(
        reports
            .wait_for(Duration::from_secs(30), |r| r == "loaded")
            .is_some(),
        "HTTPS page trusted through extra_ca loaded"
    );

    // Resize: odd sizes round down to even; beyond max_width×max_height is clamped. Each
    // new size arrives as an IDR of that size which the gateway's sanitizer accepts, and the
    // page sees the new window width.
    for ((w, h), want) in [((801, 601), (800, 600)), ((3840, 2160), (1024, 768))] {
        send(
            &mut s1,
            &GatewayToAgentSession::Resize {
                width: w,
                height: h,
            },
        )
        .await;
        resized_keyframe(&mut r1, &mut sanitizer, want).await;
        let inner = format!("inner:{}", want.0);
        assert!(
            reports
                .wait_for(Duration::from_secs(30), |r| r == inner)
                .is_some(),
            "page sees {inner}"
        );
    }
    let free_is = |want: u16| move |m: &AgentToGateway| matches!(m, AgentToGateway::Capacity { free } if *free == want);
    let mut saw_zero = false;
    while !saw_zero {
        match ctl.next().await {
            Some(m) => saw_zero = free_is(0)(&m),
            None => panic!("control ended"),
        }
    }

    // No capacity left: a second session is refused.
    let (mut s2, r2) = conn.open_bi().await.expect("second stream");
    send(
        &mut s2,
        &GatewayToAgentSession::Open {
            session_id: 2,
            width: 640,
            height: 480,
        },
    )
    .await;
    let mut r2 = Reader::<AgentSessionToGateway>::new(r2);
    assert_eq!(
        r2.next().await,
        Some(AgentSessionToGateway::Ended {
            reason: Reason::NoCapacity
        })
    );

    // A malformed message (unknown kind) ends the session with ProtocolViolation.
    s1.write_all(&[0xee, 0, 0, 0, 0])
        .await
        .expect("write garbage");
    let ended = loop {
        match r1.next().await {
            Some(AgentSessionToGateway::Video(_)) => continue,
            other => break other,
        }
    };
    assert_eq!(
        ended,
        Some(AgentSessionToGateway::Ended {
            reason: Reason::ProtocolViolation
        })
    );
    let mut saw_one = false;
    while !saw_one {
        match ctl.next().await {
            Some(m) => saw_one = free_is(1)(&m),
            None => panic!("control ended"),
        }
    }
    // The session's browser is gone and its directory wiped.
    let agent_dir = work.path().join("tsuitate-agent-agent-1");
    let left = tsuitate_agent::browser::session_processes(&[], &agent_dir);
    assert!(left.is_empty(), "processes left: {left:?}");
    let entries = std::fs::read_dir(&agent_dir)
        .map(|d| d.count())
        .unwrap_or(99);
    assert_eq!(entries, 0, "session directory removed");

    // A crashed browser ends its session with BrowserExited.
    let (mut s3, r3) = conn.open_bi().await.expect("third stream");
    send(
        &mut s3,
        &GatewayToAgentSession::Open {
            session_id: 3,
            width: 640,
            height: 480,
        },
    )
    .await;
    let mut r3 = Reader::<AgentSessionToGateway>::new(r3);
    assert!(matches!(
        r3.next().await,
        Some(AgentSessionToGateway::Started { .. })
    ));
    let chromium: Vec<u32> = tsuitate_agent::browser::session_processes(&[], &agent_dir)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(15).any(|w| w == b"--user-data-dir"))
        })
        .collect();
    assert!(!chromium.is_empty(), "chromium runs");
    for pid in &chromium {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    let ended = loop {
        match r3.next().await {
            Some(AgentSessionToGateway::Video(_)) => continue,
            other => break other,
        }
    };
    assert_eq!(
        ended,
        Some(AgentSessionToGateway::Ended {
            reason: Reason::BrowserExited
        })
    );
    let left = tsuitate_agent::browser::session_processes(&[], &agent_dir);
    assert!(left.is_empty(), "processes left after crash: {left:?}");

    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), agent).await;
}

/// Read frames (each must pass the gateway's sanitizer) until a keyframe of `want` that
/// decodes to that size.
async fn resized_keyframe(
    r: &mut Reader<AgentSessionToGateway>,
    sanitizer: &mut NalSanitizer,
    want: (u16, u16),
) {
    loop {
        let f = match r.next().await {
            Some(AgentSessionToGateway::Video(f)) => f,
            other => panic!("expected video at {want:?}, got {other:?}"),
        };
        let checked = sanitizer.sanitize(&f.header, &f.data);
        assert!(checked.is_ok(), "sanitizer refused: {checked:?}");
        if (f.header.width, f.header.height) != want {
            continue;
        }
        assert!(f.header.keyframe, "a new size starts with an IDR");
        let mut view = common::View::new();
        assert!(view.decode(&f.data), "keyframe decodes");
        assert_eq!((view.width, view.height), (want.0.into(), want.1.into()));
        return;
    }
}
