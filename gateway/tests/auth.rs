//! Authentication: viewer passwords and lockout, agent certificates.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tsuitate_gateway::users::UsersFile;
use tsuitate_protocol::{GatewayToViewer, LoginStatus, Reason, ViewerToGateway};
use tsuitate_testkit::agent::{self, close_reason, AgentOptions};
use tsuitate_testkit::fixture::{Fixture, PASSWORD};
use tsuitate_testkit::redis::Redis;
use tsuitate_testkit::viewer::TestViewer;

const T: Duration = Duration::from_secs(20);

async fn try_login(
    fx: &Fixture,
    addr: std::net::SocketAddr,
    user: &str,
    pw: &str,
) -> (LoginStatus, u32) {
    let mut v = TestViewer::connect(addr, &fx.ca(), None).await;
    v.login(user, pw).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_denied_and_locks_out_after_n() {
    let mut fx = Fixture::new(&["a"], &["yamada", "suzuki"]);
    fx.config.lockout.max_failures_per_user = 3;
    let gw = fx.start().await;
    let _ag = fx.connect_agent(&gw, AgentOptions::new("a")).await;
    for _ in 0..3 {
        assert_eq!(
            try_login(&fx, gw.viewer_addr, "yamada", "wrong").await.0,
            LoginStatus::Denied
        );
    }
    // Locked now, even with the right password.
    let (status, retry) = try_login(&fx, gw.viewer_addr, "yamada", PASSWORD).await;
    assert_eq!(status, LoginStatus::LockedOut);
    assert!(retry > 0);
    // Other users are not affected.
    assert_eq!(
        try_login(&fx, gw.viewer_addr, "suzuki", PASSWORD).await.0,
        LoginStatus::Ok
    );
    // Unknown users are denied like wrong passwords.
    assert_eq!(
        try_login(&fx, gw.viewer_addr, "nobody", PASSWORD).await.0,
        LoginStatus::Denied
    );
    let m = gw.metrics();
    assert_eq!(m.login_denied.load(std::sync::atomic::Ordering::Relaxed), 4);
    assert_eq!(
        m.login_locked_out
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    gw.flush_audit().await;
    let log = std::fs::read_to_string(fx.audit_path()).unwrap();
    assert!(log.contains("\"cause\":\"locked_out\""));
    assert!(!log.contains("wrong") && !log.contains(PASSWORD));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_user_is_denied_and_changes_apply_without_restart() {
    let fx = Fixture::new(&[], &["yamada"]);
    let gw = fx.start().await;
    let mut users = UsersFile::load(&fx.config.users_file).unwrap();
    users.set_disabled("yamada", true).unwrap();
    // A different mtime is needed for the reload; make sure it differs.
    tokio::time::sleep(Duration::from_millis(20)).await;
    users.save(&fx.config.users_file).unwrap();
    assert_eq!(
        try_login(&fx, gw.viewer_addr, "yamada", PASSWORD).await.0,
        LoginStatus::Denied
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_password_user_add_accepts_can_log_in() {
    let mut fx = Fixture::new(&["a"], &[]);
    fx.config.lockout.max_failures_per_user = 100;
    let longest = "パ".repeat(85); // 255 bytes
    assert_eq!(longest.len(), tsuitate_protocol::MAX_PASSWORD_BYTES);
    let mut users = UsersFile::default();
    let cheap = argon2::Params::new(1024, 1, 1, None).unwrap();
    users.add("nagai", &longest, cheap.clone()).unwrap();
    assert!(
        users
            .add("nagasugi", &format!("{longest}x"), cheap)
            .is_err(),
        "a password the protocol cannot carry is refused when it is set"
    );
    users.save(&fx.config.users_file).unwrap();
    let gw = fx.start().await;
    let _ag = fx.connect_agent(&gw, AgentOptions::new("a")).await;
    assert_eq!(
        try_login(&fx, gw.viewer_addr, "nagai", &longest).await.0,
        LoginStatus::Ok
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_capacity_and_version_mismatch() {
    let fx = Fixture::new(&[], &["yamada"]);
    let gw = fx.start().await;
    assert_eq!(
        try_login(&fx, gw.viewer_addr, "yamada", PASSWORD).await.0,
        LoginStatus::NoCapacity
    );
    let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    v.send(&ViewerToGateway::Hello { version: 999 }).await;
    match v.next(T).await {
        Some(GatewayToViewer::Bye { reason }) => assert_eq!(reason, Reason::VersionMismatch),
        other => panic!("{other:?}"),
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_without_a_valid_certificate_cannot_connect() {
    let fx = Fixture::new(&["a"], &[]);
    let other = Fixture::new(&["a"], &[]);
    let gw = fx.start().await;
    // No client certificate.
    let r = agent::connect(gw.agent_addr, &fx.ca(), None, AgentOptions::new("a")).await;
    assert!(r.is_err());
    // A certificate from another CA.
    let (c, k) = other.agent_identity("a");
    let r = agent::connect(
        gw.agent_addr,
        &fx.ca(),
        Some((&c, &k)),
        AgentOptions::new("a"),
    )
    .await;
    assert!(r.is_err());
    // The gateway's own server certificate is not a client certificate.
    let (gw_cert, gw_key) = fx.pki().gateway();
    let r = agent::connect(
        gw.agent_addr,
        &fx.ca(),
        Some((&gw_cert, &gw_key)),
        AgentOptions::new("a"),
    )
    .await;
    assert!(r.is_err());
    assert_eq!(gw.gauges().agents, 0);
    // A valid certificate, but Hello claims another id.
    let (c, k) = fx.agent_identity("a");
    let mut opts = AgentOptions::new("a");
    opts.hello_id = "b".into();
    match agent::connect(gw.agent_addr, &fx.ca(), Some((&c, &k)), opts).await {
        Err(_) => {}
        Ok(ag) => {
            let _ = tokio::time::timeout(T, ag.conn.closed()).await;
            assert_eq!(close_reason(&ag.conn), Some(Reason::ProtocolViolation));
        }
    }
    assert!(gw.metrics().violations("agent", "identity_mismatch") >= 1);
    assert_eq!(gw.gauges().agents, 0);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_passwords_do_not_outrun_the_user_lockout() {
    const VIEWERS: usize = 12;
    let mut fx = Fixture::new(&[], &["yamada"]);
    fx.config.lockout.max_failures_per_user = 2;
    fx.config.lockout.max_failures_per_ip = 1000;
    fx.config.quic.max_connections_per_ip = 64;
    let gw = fx.start().await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(VIEWERS));
    let mut tasks = Vec::new();
    for _ in 0..VIEWERS {
        let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let hello = ViewerToGateway::Hello {
                version: tsuitate_protocol::PROTOCOL_VERSION,
            };
            assert!(v.send(&hello).await);
            let welcome = v.next(T).await;
            assert!(matches!(welcome, Some(GatewayToViewer::Welcome { .. })));
            // Every guess arrives at once.
            barrier.wait().await;
            let login = ViewerToGateway::Login {
                user: "yamada".into(),
                password: "wrong guess".into(),
            };
            assert!(v.send(&login).await);
            match v.next(T).await {
                Some(GatewayToViewer::LoginResult { status, .. }) => status,
                other => panic!("expected LoginResult, got {other:?}"),
            }
        }));
    }
    let mut denied = 0;
    for t in tasks {
        if t.await.unwrap() == LoginStatus::Denied {
            denied += 1;
        }
    }
    // Only the checks already running when the lock fell may still be answered Denied.
    let bound = 2 + tsuitate_gateway::lockout::CONCURRENT_CHECKS - 1;
    assert!(
        denied <= bound,
        "{denied} of {VIEWERS} guesses were checked"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_our_alpn_cannot_connect() {
    use std::sync::Arc;
    let fx = Fixture::new(&[], &["u1"]);
    let gw = fx.start().await;
    for alpn in [vec![], vec![b"h3".to_vec()]] {
        let roots = tsuitate_transport::tls::root_store(&fx.ca()).unwrap();
        let mut tls =
            rustls::ClientConfig::builder_with_provider(tsuitate_transport::tls::provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        tls.alpn_protocols = alpn.clone();
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(tls)).unwrap();
        let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
        let conn = ep.connect(gw.viewer_addr, "localhost").unwrap();
        let r = tokio::time::timeout(T, conn).await.unwrap();
        assert!(r.is_err(), "connected with ALPN {alpn:?}");
    }
    gw.shutdown().await;
}

/// A web viewer (trusted front) logs browsers in from one address: with its front certificate
/// and `Forwarded`, the per-address lockout and the audit log see each browser's own address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_front_forwards_each_browsers_address() {
    let mut fx = Fixture::new(&["a"], &["yamada", "suzuki", "tanaka"]);
    fx.config.lockout.max_failures_per_user = 100;
    fx.config.lockout.max_failures_per_ip = 3;
    fx.config.trusted_fronts = vec!["web-1".into()];
    let (cert, key) = fx.pki().issue_front("web-1");
    let gw = fx.start().await;
    let _ag = fx.connect_agent(&gw, AgentOptions::new("a")).await;
    let tuning = tsuitate_transport::Tuning::default();
    let front = || async {
        TestViewer::connect_as(gw.viewer_addr, &fx.ca(), &tuning, Some((&cert, &key))).await
    };
    let guesser: std::net::SocketAddr = "10.20.0.7:50123".parse().unwrap();
    let colleague: std::net::SocketAddr = "10.20.0.8:50999".parse().unwrap();
    // A guessing browser: three failures lock its address (not the front's) ...
    for user in ["yamada", "suzuki", "tanaka"] {
        let (status, _) = front().await.login_for(user, "guess", Some(guesser)).await;
        assert_eq!(status, LoginStatus::Denied);
    }
    let (status, _) = front()
        .await
        .login_for("tanaka", PASSWORD, Some(guesser))
        .await;
    assert_eq!(status, LoginStatus::LockedOut);
    // ... while a colleague behind the same web viewer logs in.
    let (status, _) = front()
        .await
        .login_for("suzuki", PASSWORD, Some(colleague))
        .await;
    assert_eq!(status, LoginStatus::Ok);
    gw.flush_audit().await;
    let log = std::fs::read_to_string(fx.audit_path()).unwrap();
    let success = log
        .lines()
        .find(|l| l.contains("login_success"))
        .expect("a login_success record");
    assert!(
        success.contains("\"viewer\":\"10.20.0.8:50999\"") && success.contains("\"via\":\"web-1 "),
        "{success}"
    );
    assert!(log.contains("\"viewer\":\"10.20.0.7:50123\""), "{log}");
    gw.shutdown().await;
}

/// `Forwarded` from anyone but a trusted front is a protocol violation: an ordinary viewer, an
/// agent's certificate, or a front whose name the gateway does not list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_from_an_untrusted_connection_is_a_violation() {
    let mut fx = Fixture::new(&["a"], &["yamada"]);
    fx.config.trusted_fronts = vec!["web-1".into()];
    let (other_cert, other_key) = fx.pki().issue_front("web-2");
    let (agent_cert, agent_key) = fx.agent_identity("a");
    let gw = fx.start().await;
    let tuning = tsuitate_transport::Tuning::default();
    let claim: std::net::SocketAddr = "10.9.9.9:1".parse().unwrap();
    let identities: [Option<(&std::path::Path, &std::path::Path)>; 3] = [
        None,
        Some((&other_cert, &other_key)),
        Some((&agent_cert, &agent_key)),
    ];
    for identity in identities {
        let mut v = TestViewer::connect_as(gw.viewer_addr, &fx.ca(), &tuning, identity).await;
        assert!(
            v.send(&ViewerToGateway::Hello {
                version: tsuitate_protocol::PROTOCOL_VERSION
            })
            .await
        );
        assert!(matches!(
            v.next(T).await,
            Some(GatewayToViewer::Welcome { .. })
        ));
        assert!(v.send(&ViewerToGateway::Forwarded { client: claim }).await);
        let login = ViewerToGateway::Login {
            user: "yamada".into(),
            password: PASSWORD.into(),
        };
        let _ = v.send(&login).await;
        // No LoginResult: the connection is closed for the violation.
        assert!(v.next(T).await.is_none());
        let _ = tokio::time::timeout(T, v.conn.closed()).await;
        assert_eq!(close_reason(&v.conn), Some(Reason::ProtocolViolation));
    }
    gw.flush_prelogin();
    gw.flush_audit().await;
    let log = std::fs::read_to_string(fx.audit_path()).unwrap();
    // One address before login: the first in full, the other two summed.
    assert_eq!(log.matches("not a trusted front").count(), 1, "{log}");
    let summary = log
        .lines()
        .find(|l| l.contains("policy_violation_summary"))
        .unwrap_or_else(|| panic!("no summary: {log}"));
    assert!(summary.contains("\"count\":2"), "{summary}");
    assert!(!log.contains("login_success"));
    gw.shutdown().await;
}

/// Agent `id` connects with its own certificate and is refused: the handshake fails, or the
/// gateway closes the connection with `reason`.
async fn assert_agent_refused(
    fx: &Fixture,
    gw: &tsuitate_gateway::GatewayHandle,
    id: &str,
    reason: Reason,
) {
    let (c, k) = fx.agent_identity(id);
    if let Ok(ag) = agent::connect(
        gw.agent_addr,
        &fx.ca(),
        Some((&c, &k)),
        AgentOptions::new(id),
    )
    .await
    {
        let _ = tokio::time::timeout(T, ag.conn.closed()).await;
        assert_eq!(close_reason(&ag.conn), Some(reason));
    }
}

/// `ca revoke` puts a certificate on `[tls] revoked`: that agent's (or front's) next connection
/// is refused with `AuthFailed` and audited, without a restart; others still connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_is_refused_from_its_next_connection() {
    let mut fx = Fixture::new(&["a", "b"], &["yamada"]);
    let pki = fx.config.tls.ca.parent().unwrap().to_path_buf();
    let list = pki.join(tsuitate_gateway::certs::REVOKED);
    std::fs::write(&list, "# nothing revoked yet\n").unwrap();
    fx.config.tls.revoked = Some(list.clone());
    fx.config.trusted_fronts = vec!["web-1".into()];
    let (front_cert, front_key) = fx.pki().issue_front("web-1");
    let gw = fx.start().await;
    let first = fx.connect_agent(&gw, AgentOptions::new("a")).await;
    drop(first);

    let (cert, _) = fx.agent_identity("a");
    let (serial, cn) = tsuitate_gateway::certs::revoke(&pki, &cert).unwrap();
    assert_eq!(cn, "a");
    assert!(std::fs::read_to_string(&list).unwrap().contains(&serial));
    // Revoking twice adds nothing.
    tsuitate_gateway::certs::revoke(&pki, &cert).unwrap();
    assert_eq!(
        std::fs::read_to_string(&list)
            .unwrap()
            .matches(&serial)
            .count(),
        1
    );

    assert_agent_refused(&fx, &gw, "a", Reason::AuthFailed).await;
    let _b = fx.connect_agent(&gw, AgentOptions::new("b")).await;

    // A revoked front cannot connect either.
    tsuitate_gateway::certs::revoke(&pki, &front_cert).unwrap();
    let tuning = tsuitate_transport::Tuning::default();
    // (A raw connection: the gateway may close it before a stream could be opened.)
    let cfg = tsuitate_transport::client_config_from_files(
        &fx.ca(),
        Some((&front_cert, &front_key)),
        &tuning,
    )
    .unwrap();
    let endpoint = tsuitate_transport::client_endpoint(gw.viewer_addr, cfg).unwrap();
    let front = endpoint
        .connect(gw.viewer_addr, "localhost")
        .unwrap()
        .await
        .unwrap();
    let _ = tokio::time::timeout(T, front.closed()).await;
    assert_eq!(close_reason(&front), Some(Reason::AuthFailed));

    // An unreadable list refuses everyone (fail closed).
    std::fs::remove_file(&list).unwrap();
    assert_agent_refused(&fx, &gw, "b", Reason::AuthFailed).await;
    gw.flush_audit().await;
    let log = std::fs::read_to_string(fx.audit_path()).unwrap();
    assert_eq!(log.matches("\"certificate_revoked\"").count(), 2, "{log}");
    gw.shutdown().await;
}

/// Whatever capacity an agent announces, the gateway places at most
/// `agent.max_sessions_per_agent` sessions there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_announcing_a_huge_capacity_gets_the_configured_cap() {
    let mut fx = Fixture::new(&["a"], &["u1", "u2", "u3"]);
    fx.config.agent.max_sessions_per_agent = 2;
    let gw = fx.start().await;
    let greedy = AgentOptions {
        capacity: 4000,
        ..AgentOptions::new("a")
    };
    let _ag = fx.connect_agent(&gw, greedy).await;
    let mut viewers = Vec::new();
    for u in ["u1", "u2"] {
        let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
        assert!(!v.login_ready(u).await);
        viewers.push(v);
    }
    assert_eq!(
        try_login(&fx, gw.viewer_addr, "u3", PASSWORD).await.0,
        LoginStatus::NoCapacity
    );
    gw.flush_audit().await;
    let log = std::fs::read_to_string(fx.audit_path()).unwrap();
    assert!(
        log.contains("\"agent_capacity_capped\"") && log.contains("\"announced\":4000"),
        "{log}"
    );
    gw.shutdown().await;
}

/// Forty clients that guess a password and then never read (a receive window of a few bytes,
/// so the refusal cannot be delivered) must not hold the password-check slots: a real user
/// logs in meanwhile, well within the login timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_do_not_read_their_refusal_do_not_block_real_logins() {
    let mut fx = Fixture::new(&["a"], &["yamada"]);
    fx.config.lockout.max_failures_per_user = 10_000;
    fx.config.lockout.max_failures_per_ip = 10_000;
    fx.config.quic.max_connections_per_ip = 1000;
    // Before the fix the slots were held while each refusal was written (about 0.8 s each
    // here): the real login waited ~8 s behind forty of them and met this deadline.
    fx.config.session.login_timeout = Duration::from_secs(5);
    let gw = fx.start().await;
    let _ag = fx.connect_agent(&gw, AgentOptions::new("a")).await;
    let tiny = tsuitate_transport::Tuning {
        stream_receive_window: 8,
        receive_window: 64,
        ..tsuitate_transport::Tuning::default()
    };
    let mut slow = Vec::new();
    for _ in 0..40 {
        let mut v: TestViewer = TestViewer::connect_as(gw.viewer_addr, &fx.ca(), &tiny, None).await;
        v.send(&ViewerToGateway::Hello {
            version: tsuitate_protocol::PROTOCOL_VERSION,
        })
        .await;
        v.send(&ViewerToGateway::Login {
            user: "yamada".into(),
            password: "guess-guess".into(),
        })
        .await;
        slow.push(v);
    }
    // Let the gateway reach their refusals.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        try_login(&fx, gw.viewer_addr, "yamada", PASSWORD).await.0,
        LoginStatus::Ok,
        "the real user got in while the slow clients were refused"
    );
    drop(slow);
    gw.shutdown().await;
}

/// The memory budget bounds the sessions the gateway holds, whatever the agents offer: a
/// login beyond it is told `NoCapacity` (audited with its cause), and the next one after a
/// session ends gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_budget_bounds_the_sessions_with_no_capacity() {
    let mut fx = Fixture::new(&["a"], &["u1", "u2"]);
    fx.config.limits.max_frame_bytes = 1 << 20;
    // One session's worst case is ~23 MiB here: a 40 MiB budget holds one.
    fx.config.limits.memory_budget_mb = 40;
    assert_eq!(fx.config.max_sessions_by_memory(), 1);
    let gw = fx.start().await;
    let _ag = fx.connect_agent(&gw, AgentOptions::new("a")).await;
    let mut first = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    assert!(!first.login_ready("u1").await);
    assert_eq!(
        try_login(&fx, gw.viewer_addr, "u2", PASSWORD).await.0,
        LoginStatus::NoCapacity
    );
    gw.flush_audit().await;
    let log = std::fs::read_to_string(fx.audit_path()).unwrap();
    assert!(log.contains("\"cause\":\"memory_budget\""), "{log}");
    first.send(&ViewerToGateway::Logout).await;
    let _ = first.until_bye(T).await;
    let mut second = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    let mut ok = false;
    for _ in 0..50 {
        if second.login("u2", PASSWORD).await.0 == LoginStatus::Ok {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        second = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    }
    assert!(ok, "the freed budget takes the next login");
    gw.shutdown().await;
}

/// Two gateways sharing a lockout store: a guesser spreading attempts over both is locked
/// after the configured number in total, not per gateway; when the store goes, each gateway's
/// own lockout still holds and the outage is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_sharing_a_store_lock_out_a_guesser_spread_over_them() {
    let redis = Redis::start();
    let mut fx = Fixture::new(&["a"], &["yamada", "suzuki"]);
    fx.config.lockout.max_failures_per_user = 4;
    fx.config.lockout.shared_store = Some(redis.addr.clone());
    let (one, two) = (fx.start().await, fx.start().await);
    let _agents = (
        fx.connect_agent(&one, AgentOptions::new("a")).await,
        fx.connect_agent(&two, AgentOptions::new("a")).await,
    );
    for gw in [&one, &two, &one] {
        assert_eq!(
            try_login(&fx, gw.viewer_addr, "yamada", "wrong").await.0,
            LoginStatus::Denied
        );
    }
    // Each gateway has seen at most two failures; together they have seen four.
    assert_eq!(
        try_login(&fx, two.viewer_addr, "yamada", "wrong").await.0,
        LoginStatus::Denied
    );
    for gw in [&one, &two] {
        let (status, retry) = try_login(&fx, gw.viewer_addr, "yamada", PASSWORD).await;
        assert_eq!(status, LoginStatus::LockedOut, "locked on both gateways");
        assert!(retry > 0);
    }
    // Another user is not affected.
    assert_eq!(
        try_login(&fx, one.viewer_addr, "suzuki", PASSWORD).await.0,
        LoginStatus::Ok
    );

    // The store goes away: logins go on, each gateway counts alone, and it is audited.
    drop(redis);
    for _ in 0..4 {
        assert_eq!(
            try_login(&fx, two.viewer_addr, "suzuki", "wrong").await.0,
            LoginStatus::Denied
        );
    }
    assert_eq!(
        try_login(&fx, two.viewer_addr, "suzuki", PASSWORD).await.0,
        LoginStatus::LockedOut
    );
    two.flush_audit().await;
    let audit = std::fs::read_to_string(fx.audit_path()).unwrap();
    assert!(audit.contains("\"lockout_store_unavailable\""), "{audit}");
}
