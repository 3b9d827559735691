//! Keeps docs/life-of-a-request.md true: every source file it names in backquotes exists,
//! and every `Type::function` (or `module::function`, `Enum::Variant`) it names is defined
//! in one of those files.

use std::path::{Path, PathBuf};

const DOC: &str = "docs/life-of-a-request.md";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("rafter-proto lives one level below the workspace root")
        .to_path_buf()
}

/// The inline code spans of `text`, outside fenced code blocks.
fn code_spans(text: &str) -> Vec<&str> {
    let mut spans = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        spans.extend(line.split('`').skip(1).step_by(2));
    }
    spans
}

/// A workspace-relative Rust source path: `crate/src/x.rs`, `crate/tests/it/y.rs`.
fn is_source_path(span: &str) -> bool {
    span.ends_with(".rs")
        && span.contains('/')
        && !span.contains(char::is_whitespace)
        && (span.contains("/src/") || span.contains("/tests/"))
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `Type::function`, `module::function` or `Enum::Variant`: its last segment.
fn qualified_name(span: &str) -> Option<&str> {
    let (_, last) = span.rsplit_once("::")?;
    span.split("::").all(is_ident).then_some(last)
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether `needle` occurs in `haystack` as a whole word, after `prefix`.
fn defines(haystack: &str, prefix: &str, needle: &str) -> bool {
    let pattern = format!("{prefix}{needle}");
    haystack.match_indices(&pattern).any(|(at, _)| {
        let before = haystack[..at].chars().next_back();
        let after = haystack[at + pattern.len()..].chars().next();
        !before.is_some_and(ident_char) && !after.is_some_and(ident_char)
    })
}

#[test]
fn life_of_a_request_names_real_files_and_functions() {
    let root = workspace_root();
    let doc = std::fs::read_to_string(root.join(DOC)).unwrap();
    let spans = code_spans(&doc);

    let paths: Vec<&str> = spans
        .iter()
        .copied()
        .filter(|s| is_source_path(s))
        .collect();
    assert!(
        paths.len() >= 20,
        "{DOC} names only {} source files; is the parsing broken?",
        paths.len()
    );
    let missing: Vec<&str> = paths
        .iter()
        .copied()
        .filter(|p| !root.join(p).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "{DOC} names files that do not exist: {missing:?}"
    );

    let sources: String = paths
        .iter()
        .map(|p| std::fs::read_to_string(root.join(p)).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let mut checked = 0;
    let mut undefined = Vec::new();
    for span in &spans {
        let Some(last) = qualified_name(span) else {
            continue;
        };
        checked += 1;
        let found = if last.starts_with(|c: char| c.is_ascii_lowercase()) {
            defines(&sources, "fn ", last)
        } else {
            defines(&sources, "", last)
        };
        if !found {
            undefined.push(*span);
        }
    }
    assert!(
        checked >= 10,
        "{DOC} names only {checked} functions; is the parsing broken?"
    );
    assert!(
        undefined.is_empty(),
        "{DOC} names what none of the files it cites defines: {undefined:?}"
    );
}
