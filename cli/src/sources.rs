//! Reading manifests from what `-f` names: a file, a directory (its `.yaml`, `.yml` and
//! `.json` files in name order, recursing with `-R`) or `-` for standard input.
//!
//! Owns only the reading; parsing is `rafter_proto::parse_manifests`.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// One text to parse and the name errors should give it.
pub struct Source {
    /// The path as the user wrote it, or `-`.
    pub name: String,
    /// The whole text.
    pub text: String,
}

/// Reads every source named by `paths`, in order.
pub fn read_sources(paths: &[String], recursive: bool) -> anyhow::Result<Vec<Source>> {
    if paths.is_empty() {
        bail!("no manifests given: pass -f FILE, -f DIR or -f - for standard input");
    }
    let mut sources = Vec::new();
    for path in paths {
        if path == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading manifests from standard input")?;
            sources.push(Source {
                name: "-".to_owned(),
                text,
            });
            continue;
        }
        let path_buf = PathBuf::from(path);
        if path_buf.is_dir() {
            let mut files = Vec::new();
            collect_dir(&path_buf, recursive, &mut files)?;
            if files.is_empty() {
                bail!("{path}: the directory holds no .yaml, .yml or .json files");
            }
            for file in files {
                sources.push(read_file(&file)?);
            }
        } else {
            sources.push(read_file(&path_buf)?);
        }
    }
    Ok(sources)
}

fn read_file(path: &Path) -> anyhow::Result<Source> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Source {
        name: path.display().to_string(),
        text,
    })
}

fn collect_dir(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("listing {}", dir.display()))?;
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            if recursive {
                collect_dir(&entry, recursive, out)?;
            }
        } else if matches!(
            entry.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(entry);
        }
    }
    Ok(())
}
