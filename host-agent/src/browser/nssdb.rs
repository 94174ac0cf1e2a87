//! The extra CA bundle (e.g. a prefectural security-cloud proxy that inspects TLS) trusted by
//! Chromium: Chromium on Linux also trusts CAs in the user's NSS database
//! (`$HOME/.pki/nssdb`), so each session's HOME gets a fresh database holding the bundle,
//! made with `certutil` (Debian package libnss3-tools). It dies with the session.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::BrowserError;

/// Where `certutil` is expected.
pub const CERTUTIL: &str = "/usr/bin/certutil";

/// Certificates in a PEM bundle (an error if it has none).
pub fn read_bundle(bundle: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(bundle)
        .map_err(|e| format!("{}: {e}", bundle.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", bundle.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", bundle.display()));
    }
    Ok(certs)
}

fn certutil(args: &[&std::ffi::OsStr]) -> Result<(), BrowserError> {
    let out = Command::new(CERTUTIL)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| BrowserError::Setup(format!("certutil: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BrowserError::Setup(format!(
            "certutil failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Create `home/.pki/nssdb` trusting every CA in `bundle` for TLS servers. Returns the
/// created paths (to hand to the browser user).
pub fn install_extra_ca(home: &Path, bundle: &Path) -> Result<Vec<PathBuf>, BrowserError> {
    let certs = read_bundle(bundle).map_err(BrowserError::Setup)?;
    let pki = home.join(".pki");
    let db = pki.join("nssdb");
    std::fs::create_dir_all(&db).map_err(|e| BrowserError::Setup(format!("nssdb: {e}")))?;
    let dbarg = format!("sql:{}", db.display());
    certutil(&[
        "-N".as_ref(),
        "-d".as_ref(),
        dbarg.as_ref(),
        "--empty-password".as_ref(),
    ])?;
    for (i, cert) in certs.iter().enumerate() {
        let der = db.join(format!("extra-{i}.der"));
        std::fs::write(&der, cert.as_ref())
            .map_err(|e| BrowserError::Setup(format!("nssdb: {e}")))?;
        let name = format!("tsuitate-extra-ca-{i}");
        let res = certutil(&[
            "-A".as_ref(),
            "-d".as_ref(),
            dbarg.as_ref(),
            "-n".as_ref(),
            name.as_ref(),
            "-t".as_ref(),
            "C,,".as_ref(),
            "-i".as_ref(),
            der.as_os_str(),
        ]);
        let _ = std::fs::remove_file(&der);
        res?;
    }
    let mut paths = vec![pki.clone(), db.clone()];
    if let Ok(entries) = std::fs::read_dir(&db) {
        paths.extend(entries.flatten().map(|e| e.path()));
    }
    Ok(paths)
}
