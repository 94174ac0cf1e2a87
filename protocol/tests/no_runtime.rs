//! The protocol crate is sans-IO: it depends on no async runtime or socket crate.

use std::process::Command;

#[test]
fn depends_on_no_runtime_or_socket_crate() {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "tsuitate-protocol",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        tree.contains("tsuitate-protocol"),
        "unexpected cargo tree output: {tree}"
    );
    for forbidden in [
        "tokio",
        "async-std",
        "smol",
        "quinn",
        "mio",
        "socket2",
        "futures",
        "rustls",
    ] {
        assert!(
            !tree
                .lines()
                .any(|l| l.split_whitespace().next() == Some(forbidden)),
            "tsuitate-protocol must not depend on {forbidden}:\n{tree}"
        );
    }
}
