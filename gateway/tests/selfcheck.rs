//! `tsuitate-gateway self-check` (自己点検) through the real binary: the sample configuration
//! passes (no fail), and each deliberately bad setting fails its own item with the evidence.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use serde_json::Value;

mod support;

use support::{p, run};

/// The sample configuration (deploy/gateway.toml) with its paths moved into `dir`, and the
/// files it names made by the gateway's own commands.
fn sample_in(dir: &Path) -> String {
    let pki = dir.join("pki");
    assert_eq!(run(&["ca", "init", "--dir", p(&pki)], None).0, 0);
    assert_eq!(
        run(
            &["ca", "issue-agent", "--dir", p(&pki), "--name", "agent-01"],
            None
        )
        .0,
        0
    );
    let users = dir.join("users.toml");
    let audit = dir.join("audit.jsonl");
    for user in ["yamada", "sato"] {
        let (code, _, err) = run(
            &[
                "user",
                "add",
                user,
                "--users",
                p(&users),
                "--audit",
                p(&audit),
            ],
            Some("self-check-pass-1\n"),
        );
        assert_eq!(code, 0, "{err}");
    }
    let tokens = dir.join("admin-tokens.toml");
    assert_eq!(
        run(
            &[
                "admin",
                "token-add",
                "--tokens",
                p(&tokens),
                "--name",
                "suzuki"
            ],
            None
        )
        .0,
        0
    );
    let sample = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/gateway.toml"
    ))
    .unwrap();
    sample
        .replace("/etc/tsuitate/pki/", &format!("{}/", p(&pki)))
        .replace("/etc/tsuitate/admin-tokens.toml", p(&tokens))
        .replace("/var/lib/tsuitate/users.toml", p(&users))
        .replace("/var/log/tsuitate/audit.jsonl", p(&audit))
        // Nothing of another test or a demo answers there.
        .replace("127.0.0.1:9470", "127.0.0.1:1")
}

fn check(dir: &Path, config: &str) -> (i32, Value) {
    let path = dir.join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    let (code, out, err) = run(&["self-check", "--config", p(&path), "--json"], None);
    let report = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    (code, report)
}

fn status<'a>(report: &'a Value, id: &str) -> &'a str {
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .and_then(|i| i["status"].as_str())
        .unwrap_or_else(|| panic!("no item {id} in {report}"))
}

#[test]
fn the_sample_configuration_passes_and_each_bad_setting_fails_its_item() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = sample_in(d);
    let (code, report) = check(d, &good);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["summary"]["fail"], 0, "{report:#}");
    for id in [
        "tls",
        "video.drop_policy",
        "lockout",
        "session.timeouts",
        "audit.chain",
        "cert.ca",
        "cert.gateway",
        "cert.agent-agent-01",
        "key.gateway",
        "tls.revoked",
        "users",
        "admin_api",
    ] {
        assert_eq!(status(&report, id), "pass", "{id}: {report:#}");
    }
    // The text form, in both languages.
    let path = d.join("gateway.toml");
    let (code, text, _) = run(&["self-check", "--config", p(&path)], None);
    assert_eq!(code, 0);
    assert!(
        text.contains(
            "[PASS] 監査ログの改ざん検知（ハッシュチェーン） / Audit log integrity (hash chain)"
        ),
        "{text}"
    );
    assert!(text.contains("0 fail"), "{text}");

    // Each bad setting fails its item, and the exit code says so.
    let bad = |config: String, id: &str| {
        let (code, report) = check(d, &config);
        assert_eq!(code, 1, "{id}: {report:#}");
        assert_eq!(status(&report, id), "fail", "{id}: {report:#}");
    };
    bad(
        good.replace(
            "viewer_listen = \"127.0.0.1:4700\"",
            "viewer_listen = \"0.0.0.0:4700\"",
        ),
        "listen.viewer",
    );
    assert!(
        good.contains("drop_policy = \"close\""),
        "the sample names the policy"
    );
    bad(
        good.replace("drop_policy = \"close\"", "drop_policy = \"drop\""),
        "video.drop_policy",
    );

    // An expired agent certificate in the CA's folder.
    let mut params = rcgen::CertificateParams::new(vec!["old".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "agent-old");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(400);
    params.not_after = now - time::Duration::days(2);
    let key = rcgen::KeyPair::generate().unwrap();
    let expired = params.self_signed(&key).unwrap();
    let old = d.join("pki/agent-old.pem");
    std::fs::write(&old, expired.pem()).unwrap();
    bad(good.clone(), "cert.agent-old");
    std::fs::remove_file(&old).unwrap();

    // A private key others can read.
    let key_path = d.join("pki/gateway-key.pem");
    std::fs::set_permissions(
        &key_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    bad(good.clone(), "key.gateway");
    std::fs::set_permissions(
        &key_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();

    // A tampered audit log (the first of its two records: the second's hash of it no longer
    // matches).
    let audit = d.join("audit.jsonl");
    let text = std::fs::read_to_string(&audit).unwrap();
    std::fs::write(&audit, text.replace("yamada", "tanaka")).unwrap();
    bad(good.clone(), "audit.chain");

    // A configuration that does not load is not a report: exit 2 with the problem.
    let path = d.join("gateway.toml");
    std::fs::write(&path, "viewer_listen = 5\n").unwrap();
    assert_eq!(run(&["self-check", "--config", p(&path)], None).0, 2);
}
