//! The admin CLI as the team's scripts use it: the real binary, real files.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

mod support;

use support::{p, run, BIN};

#[test]
fn ca_users_config_and_audit_commands() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let (code, out, _) = run(
        &["ca", "init", "--dir", p(&pki), "--name", "gw.example.lg.jp"],
        None,
    );
    assert_eq!(code, 0);
    for f in ["ca.pem", "ca-key.pem", "gateway.pem", "gateway-key.pem"] {
        assert!(out.contains(f) && pki.join(f).is_file(), "{f}");
    }
    assert_ne!(
        run(&["ca", "init", "--dir", p(&pki)], None).0,
        0,
        "no silent overwrite"
    );
    let (code, _, _) = run(
        &["ca", "issue-agent", "--dir", p(&pki), "--name", "agent-1"],
        None,
    );
    assert_eq!(code, 0);
    assert!(pki.join("agent-agent-1.pem").is_file() && pki.join("agent-agent-1-key.pem").is_file());

    let users = dir.path().join("users.toml");
    let audit = dir.path().join("audit.jsonl");
    let (code, _, err) = run(
        &[
            "user",
            "add",
            "yamada",
            "--users",
            p(&users),
            "--audit",
            p(&audit),
        ],
        Some("correct horse battery\n"),
    );
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&users).unwrap();
    assert!(text.contains("[users.yamada]") && text.contains("$argon2id$"));
    assert!(!text.contains("correct horse"));
    assert_eq!(
        run(
            &[
                "user",
                "disable",
                "yamada",
                "--users",
                p(&users),
                "--audit",
                p(&audit)
            ],
            None
        )
        .0,
        0
    );
    assert!(std::fs::read_to_string(&users)
        .unwrap()
        .contains("disabled = true"));
    assert_ne!(
        run(&["user", "remove", "nobody", "--users", p(&users)], None).0,
        0
    );

    let (code, out, _) = run(&["audit", "verify", p(&audit)], None);
    assert_eq!(code, 0);
    assert!(out.contains("2"));
    let tampered = std::fs::read_to_string(&audit)
        .unwrap()
        .replace("yamada", "tanaka");
    std::fs::write(&audit, tampered).unwrap();
    assert_eq!(run(&["audit", "verify", p(&audit)], None).0, 3);

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "users_file = \"missing.toml\"\naudit_log = \"a.jsonl\"\n[tls]\nca = \"pki/ca.pem\"\ncert = \"pki/gateway.pem\"\nkey = \"nokey.pem\"\n[limits]\nmax_fps = 0\n",
    )
    .unwrap();
    for args in [
        vec!["run", "--config", p(&bad)],
        vec!["run", "--config", p(&bad), "--check-config"],
        vec!["check-config", "--config", p(&bad)],
    ] {
        let (code, _, err) = run(&args, None);
        assert_eq!(code, 2, "{args:?}");
        for e in ["max_fps", "tls.key", "users_file"] {
            assert!(err.contains(e), "{args:?}: {e} not reported: {err}");
        }
    }
    // A valid file: --check-config says so and exits without serving.
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "users_file = \"users.toml\"\naudit_log = \"a.jsonl\"\n[tls]\nca = \"pki/ca.pem\"\ncert = \"pki/gateway.pem\"\nkey = \"pki/gateway-key.pem\"\n",
    )
    .unwrap();
    let (code, out, err) = run(&["run", "--config", p(&good), "--check-config"], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("configuration OK"), "{out}");
    assert!(
        !audit.with_file_name("a.jsonl").exists(),
        "nothing was started"
    );
}

#[test]
fn run_serves_health_and_the_admin_api_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    assert_eq!(run(&["ca", "init", "--dir", p(&pki)], None).0, 0);
    std::fs::write(dir.path().join("users.toml"), "").unwrap();
    let tokens = dir.path().join("admin-tokens.toml");
    let (code, token, _) = run(
        &[
            "admin",
            "token-add",
            "--tokens",
            p(&tokens),
            "--name",
            "suzuki",
        ],
        None,
    );
    assert_eq!(code, 0);
    let token_file = dir.path().join("suzuki.token");
    std::fs::write(&token_file, &token).unwrap();
    // Every listener on port 0: --ready-file says which ports the gateway got.
    let cfg = dir.path().join("gateway.toml");
    std::fs::write(
        &cfg,
        "agent_listen = \"127.0.0.1:0\"\nviewer_listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nusers_file = \"users.toml\"\naudit_log = \"audit.jsonl\"\nadmin_tokens_file = \"admin-tokens.toml\"\n[tls]\nca = \"pki/ca.pem\"\ncert = \"pki/gateway.pem\"\nkey = \"pki/gateway-key.pem\"\n",
    )
    .unwrap();
    let ready = dir.path().join("ready.json");
    let mut child = Command::new(BIN)
        .args(["--log-format", "json", "run", "--config", p(&cfg)])
        .args(["--ready-file", p(&ready)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut admin_addr = None;
    for _ in 0..200 {
        let addrs: Option<serde_json::Value> = std::fs::read_to_string(&ready)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        if let Some(a) = addrs {
            let port_of = |k: &str| {
                a[k].as_str()
                    .and_then(|s| s.parse::<std::net::SocketAddr>().ok())
                    .map(|s| s.port())
            };
            assert!(port_of("viewer_listen").is_some_and(|p| p != 0), "{a}");
            assert!(port_of("agent_listen").is_some_and(|p| p != 0), "{a}");
            admin_addr = a["admin_listen"].as_str().and_then(|s| s.parse().ok());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let admin_addr: std::net::SocketAddr =
        admin_addr.expect("the ready file names the admin address");
    let mut healthy = false;
    for _ in 0..200 {
        if let Ok(mut s) = std::net::TcpStream::connect(admin_addr) {
            s.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").unwrap();
            let mut body = String::new();
            let _ = s.read_to_string(&mut body);
            healthy = body.starts_with("HTTP/1.1 200");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The admin CLI against the running gateway.
    let addr = admin_addr.to_string();
    let admin = |args: &[&str], token: &Path| {
        let mut all = vec!["admin", "--addr", &addr, "--token-file", p(token)];
        all.extend_from_slice(args);
        run(&all, None)
    };
    let (code, out, _) = admin(&["status"], &token_file);
    assert_eq!(code, 0);
    assert!(out.contains("normal operation"), "{out}");
    let (code, out, _) = admin(&["emergency-stop"], &token_file);
    assert_eq!(code, 0);
    assert!(
        out.contains("emergency stop (all): 0 sessions ended"),
        "{out}"
    );
    let (_, out, _) = admin(&["status"], &token_file);
    assert!(out.contains("EMERGENCY STOP by suzuki"), "{out}");
    let wrong = dir.path().join("wrong.token");
    std::fs::write(&wrong, "0".repeat(64)).unwrap();
    let (code, _, err) = admin(&["resume"], &wrong);
    assert_eq!(code, 1);
    assert!(
        err.contains("有効な管理トークン") && err.contains("HTTP 401"),
        "{err}"
    );
    let (code, out, _) = admin(&["resume"], &token_file);
    assert_eq!(code, 0, "{out}");
    let (_, out, _) = admin(&["sessions"], &token_file);
    assert!(out.contains("0 sessions"), "{out}");
    let (code, _, err) = run(
        &[
            "admin",
            "--addr",
            "127.0.0.1:1",
            "--token-file",
            p(&token_file),
            "status",
        ],
        None,
    );
    assert_eq!(code, 3, "unreachable: {err}");
    assert!(err.contains("接続できません"), "{err}");
    let (code, _, err) = admin(&["end", "x1"], &token_file);
    assert_eq!(code, 1, "{err}");
    let (code, out, _) = admin(&["drain", "agent-9"], &token_file);
    assert_eq!(code, 0);
    assert!(out.contains("draining agent-9"), "{out}");
    let (code, out, _) = admin(&["agents"], &token_file);
    assert_eq!(code, 0);
    assert!(out.contains("0 agents"), "{out}");
    assert_eq!(admin(&["undrain", "agent-9"], &token_file).0, 0);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut code = None;
    for _ in 0..200 {
        if let Some(s) = child.try_wait().unwrap() {
            code = s.code();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if code.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(healthy);
    assert_eq!(code, Some(0), "graceful exit on SIGTERM");
    let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(log.contains("gateway_start") && log.contains("gateway_stop"));
    assert!(log.contains("\"emergency_stop\"") && log.contains("\"emergency_resume\""));
    assert!(log.contains("\"admin_denied\""));
    assert!(!log.contains(token.trim()), "the token is never logged");
}

/// As root (how admins run it), `user add` keeps the users file the service user's, and
/// `check-config --service-user` warns about every file that user could not open.
#[test]
fn user_add_as_root_keeps_the_owner_and_check_config_warns_about_unreadable_files() {
    use std::os::unix::fs::MetadataExt;
    if !tsuitate_testkit::stack::running_as_root() {
        eprintln!("not root: skipped (ownership needs root)");
        return;
    }
    let nobody = tsuitate_cli::unix_user::lookup("nobody").expect("the nobody account");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let users = dir.path().join("users.toml");
    let add = |name: &str| {
        run(
            &["user", "add", name, "--users", p(&users)],
            Some("correct horse battery\n"),
        )
    };
    assert_eq!(add("yamada").0, 0);
    std::os::unix::fs::chown(&users, Some(nobody.uid), Some(nobody.gid)).unwrap();
    assert_eq!(add("suzuki").0, 0);
    let m = std::fs::metadata(&users).unwrap();
    assert_eq!(
        (m.uid(), m.gid()),
        (nobody.uid, nobody.gid),
        "the service user still owns its users file"
    );
    assert_eq!(m.mode() & 0o777, 0o600);

    // A configuration whose files only root can read: each one is named.
    let pki = dir.path().join("pki");
    assert_eq!(run(&["ca", "init", "--dir", p(&pki)], None).0, 0);
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        "users_file = \"users.toml\"\naudit_log = \"audit.jsonl\"\n[tls]\nca = \"pki/ca.pem\"\ncert = \"pki/gateway.pem\"\nkey = \"pki/gateway-key.pem\"\n",
    )
    .unwrap();
    let (code, _, err) = run(
        &[
            "check-config",
            "--config",
            p(&config),
            "--service-user",
            "nobody",
        ],
        None,
    );
    assert_eq!(code, 0, "warnings only: {err}");
    assert!(
        err.contains("nobody cannot read") && err.contains("gateway-key.pem"),
        "{err}"
    );
    assert!(
        !err.contains("users.toml"),
        "nobody owns the users file: {err}"
    );
    assert!(
        err.contains("cannot create files in"),
        "the audit folder: {err}"
    );
}

#[test]
fn a_keyed_audit_log_takes_the_key_to_append_and_to_verify() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("audit.key");
    std::fs::write(&key, [0x5au8; 32]).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let other = dir.path().join("other.key");
    std::fs::write(&other, [0x5bu8; 32]).unwrap();
    let users = dir.path().join("users.toml");
    let audit = dir.path().join("audit.jsonl");
    let user = |action: &str, key: Option<&Path>| {
        let mut args = vec![
            "user",
            action,
            "yamada",
            "--users",
            p(&users),
            "--audit",
            p(&audit),
        ];
        if let Some(k) = key {
            args.extend(["--audit-key", p(k)]);
        }
        run(&args, Some("correct horse battery\n"))
    };
    let (code, _, err) = user("add", Some(&key));
    assert_eq!(code, 0, "{err}");
    let line = std::fs::read_to_string(&audit).unwrap();
    assert!(
        line.trim_end().ends_with("\"}") && line.contains(",\"mac\":\""),
        "{line}"
    );
    // Without the key the keyed log takes no new line, and says why.
    let (code, _, err) = user("disable", None);
    assert_eq!(code, 1);
    assert!(err.contains("keyed") && err.contains("鍵"), "{err}");
    assert_eq!(std::fs::read_to_string(&audit).unwrap().lines().count(), 1);
    assert_eq!(user("disable", Some(&key)).0, 0);

    let (code, out, err) = run(&["audit", "verify", p(&audit), "--key", p(&key)], None);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("every MAC matches") && out.contains("2"),
        "{out}"
    );
    let (code, _, err) = run(&["audit", "verify", p(&audit), "--key", p(&other)], None);
    assert_eq!(code, 3);
    assert!(err.contains("MAC does not match"), "{err}");

    // The gateway's configuration: a key others can read, or a short one, is refused.
    let (code, _, _) = run(
        &[
            "ca",
            "init",
            "--dir",
            p(&dir.path().join("pki")),
            "--name",
            "gw.example.lg.jp",
        ],
        None,
    );
    assert_eq!(code, 0);
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        "users_file = \"users.toml\"\naudit_log = \"audit.jsonl\"\naudit_hmac_key_file = \"audit.key\"\n[tls]\nca = \"pki/ca.pem\"\ncert = \"pki/gateway.pem\"\nkey = \"pki/gateway-key.pem\"\n",
    )
    .unwrap();
    let (code, out, err) = run(&["run", "--config", p(&config), "--check-config"], None);
    assert_eq!(code, 0, "{out}{err}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = run(&["check-config", "--config", p(&config)], None);
    assert_eq!(code, 2);
    assert!(
        err.contains("audit_hmac_key_file") && err.contains("chmod 600"),
        "{err}"
    );
    std::fs::write(&key, "too short\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, _, err) = run(&["check-config", "--config", p(&config)], None);
    assert_eq!(code, 2);
    assert!(err.contains("32"), "{err}");

    // The session owners' key is held to the same rules.
    std::fs::write(
        &config,
        "users_file = \"users.toml\"\naudit_log = \"audit.jsonl\"\n[session]\nowner_key_file = \"audit.key\"\n[tls]\nca = \"pki/ca.pem\"\ncert = \"pki/gateway.pem\"\nkey = \"pki/gateway-key.pem\"\n",
    )
    .unwrap();
    let (code, _, err) = run(&["check-config", "--config", p(&config)], None);
    assert_eq!(code, 2);
    assert!(
        err.contains("session.owner_key_file") && err.contains("32"),
        "{err}"
    );
    std::fs::write(&key, [7u8; 32]).unwrap();
    let (code, out, err) = run(&["check-config", "--config", p(&config)], None);
    assert_eq!(code, 0, "{out}{err}");
}
