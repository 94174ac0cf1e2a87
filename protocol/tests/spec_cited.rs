//! The spec is quoted where it is enforced (as h3 does): every numbered section of
//! docs/protocol.md is cited in the code as `docs/protocol.md §N`, and every citation names a
//! section that exists.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Section numbers of the spec's `##`/`###` headings ("3", "3.3", …).
fn sections(spec: &str) -> BTreeSet<String> {
    spec.lines()
        .filter_map(|l| l.strip_prefix("## ").or_else(|| l.strip_prefix("### ")))
        .filter_map(|h| h.split_whitespace().next())
        .map(|n| n.trim_end_matches('.'))
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .map(str::to_owned)
        .collect()
}

/// Every `docs/protocol.md §N` in `text`.
fn citations(text: &str) -> Vec<String> {
    const MARK: &str = "docs/protocol.md §";
    text.match_indices(MARK)
        .map(|(i, _)| {
            let rest = &text[i + MARK.len()..];
            let n: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            n.trim_end_matches('.').to_owned()
        })
        // `docs/protocol.md §N` in prose about citations is not one.
        .filter(|n| !n.is_empty())
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        if p.is_dir() {
            if name != "target" && !name.to_string_lossy().starts_with('.') {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_section_of_the_protocol_spec_is_cited_and_every_citation_exists() {
    let root = workspace();
    let spec = std::fs::read_to_string(root.join("docs/protocol.md")).expect("docs/protocol.md");
    let sections = sections(&spec);
    assert!(
        sections.contains("3.3") && sections.contains("9"),
        "{sections:?}"
    );
    let mut files = Vec::new();
    for crate_dir in std::fs::read_dir(&root).expect("workspace").flatten() {
        if crate_dir.path().join("Cargo.toml").exists() {
            rust_files(&crate_dir.path(), &mut files);
        }
    }
    let mut cited = BTreeSet::new();
    let mut dangling = Vec::new();
    // This file's own examples of citations are not citations.
    let me = Path::new(file!()).file_name();
    for f in files.iter().filter(|f| f.file_name() != me) {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for n in citations(&text) {
            if !sections.contains(&n) {
                dangling.push(format!("{}: §{n}", f.display()));
            }
            cited.insert(n);
        }
    }
    let uncited: Vec<_> = sections.difference(&cited).collect();
    assert!(
        uncited.is_empty(),
        "sections of docs/protocol.md that no code cites: {uncited:?}"
    );
    assert!(
        dangling.is_empty(),
        "citations of sections that do not exist: {dangling:?}"
    );
}

#[test]
fn the_citation_parser_reads_section_numbers() {
    assert_eq!(
        citations("a docs/protocol.md §3.3: b, docs/protocol.md §2."),
        vec!["3.3".to_owned(), "2".to_owned()]
    );
    let s = sections("# t\n## 1. Transport\n### 3.3 Sanitizer (x)\n## 概要\n");
    assert_eq!(s.into_iter().collect::<Vec<_>>(), vec!["1", "3.3"]);
}
