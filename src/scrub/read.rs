//! Reading git config the way git reads it: git's own parser
//! (`git config --null --list`), fed the exact bytes we hold on stdin, so
//! what we detect is what we later edit. Secrets pass only through pipes,
//! never through git's argv. It must never follow an include while reading
//! content (includes are found separately, by file).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use zeroize::Zeroizing;

pub use crate::gitconfig::{Entry, entries};
use crate::gitconfig::{first_error_line, git};

/// The files `file` includes (`include.path`, `includeIf`), directly or not,
/// as git resolves them; `file` itself is not in the list.
pub fn included_files(file: &Path) -> Result<Vec<PathBuf>, String> {
    let output = git()
        .args([
            "config",
            "--includes",
            "--show-origin",
            "--null",
            "--list",
            "--file",
        ])
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    // The values are not needed; drop them at once.
    let stdout = Zeroizing::new(output.stdout);
    if !output.status.success() {
        return Err(first_error_line(&output.stderr));
    }
    let own = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let mut files: Vec<PathBuf> = Vec::new();
    // Records alternate: `file:<origin>` NUL `key\nvalue` NUL.
    for origin in stdout.split(|b| *b == 0).step_by(2) {
        let Some(path) = origin.strip_prefix(b"file:") else {
            continue;
        };
        let path = PathBuf::from(String::from_utf8_lossy(path).into_owned());
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        if path != own && !files.contains(&path) {
            files.push(path);
        }
    }
    Ok(files)
}

// These run git: the Windows unit tests run under wine, which has no git.
#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn entries_come_from_stdin_with_values_kept_apart_from_keys() {
        let list = entries("[remote \"o\"]\n\turl = https://u:p@bitbucket.org/x\n[core]\n\tbare\n")
            .expect("parse");
        let got: Vec<(&str, &str)> = list.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("remote.o.url", "https://u:p@bitbucket.org/x"),
                ("core.bare", "")
            ]
        );
    }

    #[test]
    fn a_broken_config_is_an_error_that_quotes_no_value() {
        let err = entries("[remote \"o\"]\n\turl = \"ATBBFAKEsecret\n").expect_err("bad");
        assert!(!err.contains("ATBBFAKE"), "{err}");
        assert!(err.contains("line"), "{err}");
    }

    #[test]
    fn includes_are_listed_and_loops_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let main = dir.path().join("main");
        std::fs::write(&main, "[include]\n\tpath = a\n").expect("write");
        std::fs::write(dir.path().join("a"), "[include]\n\tpath = b\n").expect("write");
        std::fs::write(dir.path().join("b"), "[x]\n\ty = 1\n").expect("write");
        let files = included_files(&main).expect("includes");
        assert_eq!(files.len(), 2, "{files:?}");
        std::fs::write(dir.path().join("b"), "[include]\n\tpath = a\n").expect("write");
        let err = included_files(&main).expect_err("a loop is an error");
        assert!(err.contains("include"), "{err}");
    }
}
