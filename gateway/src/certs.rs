//! The private CA, made easy: `ca init` and `ca issue-agent` (docs/gateway.md §CA).
//!
//! Files in the CA folder:
//! - `ca.pem`, `ca-key.pem`: the CA certificate and key (keep the key offline if you can);
//! - `gateway.pem`, `gateway-key.pem`: the gateway's server certificate (SANs `localhost`,
//!   `127.0.0.1`, `::1` and every `--name`);
//! - `agent-<id>.pem`, `agent-<id>-key.pem`: one client certificate per host agent, CN = id.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use thiserror::Error;
use time::{Duration, OffsetDateTime};

/// CA certificate file name.
pub const CA_CERT: &str = "ca.pem";
/// CA key file name.
pub const CA_KEY: &str = "ca-key.pem";
/// Gateway certificate file name.
pub const GATEWAY_CERT: &str = "gateway.pem";
/// Gateway key file name.
pub const GATEWAY_KEY: &str = "gateway-key.pem";
/// The revocation list in the CA's folder (`[tls] revoked`): serial numbers in hex.
pub const REVOKED: &str = "revoked.txt";

/// Errors of the CA tools.
#[derive(Debug, Error)]
pub enum CertError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file exists and `--force` was not given.
    #[error(
        "{0} がすでに存在します (--force で上書き) / already exists (use --force to overwrite)"
    )]
    Exists(PathBuf),
    /// Key or certificate generation or parsing failed.
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// The agent id is not acceptable.
    #[error("エージェントID {0:?} は使えません (英数字と . _ -、1〜64文字) / invalid agent id (A-Z a-z 0-9 . _ -, 1-64 chars)")]
    BadAgentId(String),
    /// A SAN name is not acceptable.
    #[error("invalid certificate name {0:?}")]
    BadName(String),
}

/// Whether `id` is a valid agent id (also used as the certificate CN).
pub fn agent_id_valid(id: &str) -> bool {
    (1..=tsuitate_protocol::MAX_AGENT_ID_BYTES).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Agent certificate file names for `id`: (certificate, key).
pub fn agent_file_names(id: &str) -> (String, String) {
    (format!("agent-{id}.pem"), format!("agent-{id}-key.pem"))
}

fn validity(params: &mut CertificateParams, years: i64) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(365 * years);
}

fn write_file(path: &Path, data: &str, secret: bool, force: bool) -> Result<(), CertError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| CertError::Io {
        path: path.to_owned(),
        source,
    };
    if path.exists() && !force {
        return Err(CertError::Exists(path.to_owned()));
    }
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    if secret {
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(data.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

fn read_file(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(|source| CertError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Create the CA and the gateway certificate in `dir`. `names` are extra DNS names or IP
/// addresses for the gateway certificate. Returns the paths written.
pub fn ca_init(dir: &Path, names: &[String], force: bool) -> Result<Vec<PathBuf>, CertError> {
    std::fs::create_dir_all(dir).map_err(|source| CertError::Io {
        path: dir.to_owned(),
        source,
    })?;
    for f in [CA_CERT, CA_KEY, GATEWAY_CERT, GATEWAY_KEY] {
        let p = dir.join(f);
        if p.exists() && !force {
            return Err(CertError::Exists(p));
        }
    }
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "tsuitate private CA");
    ca.distinguished_name
        .push(DnType::OrganizationName, "tsuitate");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut ca, 20);
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, &ca_key);

    let mut sans = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    for n in names {
        if n.is_empty() || n.len() > 253 {
            return Err(CertError::BadName(n.clone()));
        }
        if !sans.contains(n) {
            sans.push(n.clone());
        }
    }
    let mut gw = CertificateParams::new(sans).map_err(|_| CertError::BadName(names.join(",")))?;
    gw.distinguished_name = rcgen::DistinguishedName::new();
    gw.distinguished_name
        .push(DnType::CommonName, "tsuitate-gateway");
    gw.is_ca = IsCa::ExplicitNoCa;
    gw.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    gw.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    gw.use_authority_key_identifier_extension = true;
    validity(&mut gw, 5);
    let gw_key = KeyPair::generate()?;
    let gw_cert = gw.signed_by(&gw_key, &issuer)?;

    let out = [
        (CA_KEY, ca_key.serialize_pem(), true),
        (CA_CERT, ca_cert.pem(), false),
        (GATEWAY_KEY, gw_key.serialize_pem(), true),
        (GATEWAY_CERT, gw_cert.pem(), false),
    ];
    let mut written = Vec::new();
    for (name, pem, secret) in out {
        let p = dir.join(name);
        write_file(&p, &pem, secret, true)?;
        written.push(p);
    }
    // An empty revocation list (kept when it exists: revocations outlive a new CA only if
    // the operator keeps them).
    let revoked = dir.join(REVOKED);
    if !revoked.exists() {
        write_file(&revoked, REVOKED_HEADER, false, true)?;
        written.push(revoked);
    }
    Ok(written)
}

const REVOKED_HEADER: &str =
    "# tsuitate: revoked client certificates, one serial number (hex) per line\n\
# (`tsuitate-gateway ca revoke --dir DIR --cert FILE`). Read by the gateway at every connection.\n\
# 失効したクライアント証明書のシリアル番号（16 進）。ゲートウェイは接続のたびに読みます。\n";

/// Add the certificate in `cert` to the revocation list in `dir`. Returns its serial and
/// common name. Revoking a certificate twice changes nothing.
pub fn revoke(dir: &Path, cert: &Path) -> Result<(String, String), CertError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| CertError::Io { path, source }
    };
    let der = tsuitate_transport::tls::load_certs(cert)
        .ok()
        .and_then(|c| c.into_iter().next())
        .ok_or_else(|| CertError::BadName(format!("{}: no certificate", cert.display())))?;
    let serial = tsuitate_transport::tls::cert_serial(&der)
        .ok_or_else(|| CertError::BadName(format!("{}: unreadable certificate", cert.display())))?;
    let cn = tsuitate_transport::tls::cert_common_name(&der).unwrap_or_default();
    let list = dir.join(REVOKED);
    let text = match std::fs::read_to_string(&list) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => REVOKED_HEADER.to_owned(),
        Err(e) => return Err(io(&list)(e)),
    };
    if revoked_serials(&text).any(|s| s == normal_serial(&serial)) {
        return Ok((serial, cn));
    }
    let when = tsuitate_cli::time::rfc3339(std::time::SystemTime::now());
    let text = format!("{text}{serial}  # {cn} revoked {when}\n");
    write_file(&list, &text, false, true)?;
    Ok((serial, cn))
}

/// A serial number in one spelling: lower-case hex, no `:`, no leading zeros.
fn normal_serial(s: &str) -> String {
    let hex: String = s
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    match hex.trim_start_matches('0') {
        "" => "0".to_owned(),
        t => t.to_owned(),
    }
}

/// The serial numbers in a revocation list's text, in [`normal_serial`] spelling.
fn revoked_serials(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines().filter_map(|l| {
        let s = l.split('#').next().unwrap_or("").trim();
        (!s.is_empty()).then(|| normal_serial(s))
    })
}

/// Whether `serial` (as `tsuitate_transport::tls::cert_serial` writes it) is in the list at
/// `path`. An unreadable list is an error: the caller refuses the connection (fail closed).
pub fn is_revoked(path: &Path, serial: &str) -> std::io::Result<bool> {
    let text = std::fs::read_to_string(path)?;
    let serial = normal_serial(serial);
    let found = revoked_serials(&text).any(|s| s == serial);
    Ok(found)
}

/// Whether the client certificate `conn` presented is revoked under `list` (`None`: no list
/// configured). `Err` when the list cannot be read or the certificate has no readable serial.
pub fn peer_revoked(list: Option<&Path>, conn: &quinn::Connection) -> Result<bool, String> {
    let Some(list) = list else {
        return Ok(false);
    };
    let serial = tsuitate_transport::tls::peer_serial(conn)
        .ok_or_else(|| "the client certificate has no readable serial number".to_owned())?;
    is_revoked(list, &serial).map_err(|e| format!("{}: {e}", list.display()))
}

/// The certificate CN a trusted front (web viewer) called `name` presents. The `:` keeps it
/// apart from every agent id (agent ids cannot contain one).
pub fn front_common_name(name: &str) -> String {
    format!("front:{name}")
}

/// Issue a client certificate for the trusted front `name` (CN = `front:NAME`), written as
/// front-NAME.pem and front-NAME-key.pem, signed by the CA in `dir`.
pub fn issue_front(dir: &Path, name: &str, force: bool) -> Result<Vec<PathBuf>, CertError> {
    if !agent_id_valid(name) {
        return Err(CertError::BadAgentId(name.to_owned()));
    }
    let files = (format!("front-{name}.pem"), format!("front-{name}-key.pem"));
    issue_client(dir, &front_common_name(name), None, files, force)
}

/// Issue a client certificate for agent `id` (CN = id), signed by the CA in `dir`.
pub fn issue_agent(dir: &Path, id: &str, force: bool) -> Result<Vec<PathBuf>, CertError> {
    if !agent_id_valid(id) {
        return Err(CertError::BadAgentId(id.to_owned()));
    }
    issue_client(dir, id, Some(id), agent_file_names(id), force)
}

fn issue_client(
    dir: &Path,
    cn: &str,
    dns: Option<&str>,
    (cert_name, key_name): (String, String),
    force: bool,
) -> Result<Vec<PathBuf>, CertError> {
    let ca_key = KeyPair::from_pem(&read_file(&dir.join(CA_KEY))?)?;
    let issuer = Issuer::from_ca_cert_pem(&read_file(&dir.join(CA_CERT))?, &ca_key)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.subject_alt_names = match dns.map(|d| d.to_owned().try_into()) {
        Some(Ok(dns)) => vec![SanType::DnsName(dns)],
        _ => Vec::new(),
    };
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, 5);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    let (cert_path, key_path) = (dir.join(cert_name), dir.join(key_name));
    for p in [&cert_path, &key_path] {
        if p.exists() && !force {
            return Err(CertError::Exists(p.clone()));
        }
    }
    write_file(&key_path, &key.serialize_pem(), true, true)?;
    write_file(&cert_path, &cert.pem(), false, true)?;
    Ok(vec![cert_path, key_path])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_ids() {
        assert!(agent_id_valid("agent-1.example_a"));
        assert!(!agent_id_valid(""));
        assert!(!agent_id_valid("a b"));
        assert!(!agent_id_valid("../x"));
        assert!(!agent_id_valid(&"a".repeat(65)));
    }

    #[test]
    fn init_and_issue() {
        let dir = tempfile::tempdir().unwrap();
        let files = ca_init(dir.path(), &["gw.example.lg.jp".into()], false).unwrap();
        assert_eq!(
            files.len(),
            5,
            "four PEM files and the empty revocation list"
        );
        assert!(is_revoked(&dir.path().join(REVOKED), "1").is_ok_and(|r| !r));
        assert!(matches!(
            ca_init(dir.path(), &[], false),
            Err(CertError::Exists(_))
        ));
        let files = issue_agent(dir.path(), "agent-1", false).unwrap();
        assert!(files[0].ends_with("agent-agent-1.pem"));
        assert!(files[1].ends_with("agent-agent-1-key.pem"));
        let cn = tsuitate_transport::tls::cert_common_name(
            &tsuitate_transport::tls::load_certs(&files[0]).unwrap()[0],
        );
        assert_eq!(cn.as_deref(), Some("agent-1"));
        assert!(issue_agent(dir.path(), "bad id", false).is_err());
    }
}
