//! git's own parser for git config text: `git config --null --list --file -`,
//! fed the exact bytes we hold on stdin (never a path it could follow, never
//! an include), with the caller's config environment removed. Used by scrub
//! (what we detect is what we later edit) and by check (`.gitmodules`).
//! Secrets pass only through pipes, never through git's argv; this module
//! never logs or keeps a value.

use std::io::Write as _;
use std::process::{Command, Stdio};

use zeroize::Zeroizing;

/// One `key, value` pair of a config, as git lists it (lower-case section and name).
pub type Entry = (String, Zeroizing<String>);

pub(crate) fn git() -> Command {
    let mut command = Command::new("git");
    command
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("GIT_CONFIG_COUNT")
        .env_remove("GIT_CONFIG_PARAMETERS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// git's first error line, which names a line number, never a value.
pub(crate) fn first_error_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .next()
        .map(|l| {
            l.trim_start_matches("fatal: ")
                .replace("standard input", "the file")
        })
        .unwrap_or_else(|| "git config failed".into())
}

/// The entries of a config `text`, parsed by git (`--file -`, no includes).
pub fn entries(text: &str) -> Result<Vec<Entry>, String> {
    let mut child = git()
        .args(["config", "--no-includes", "--null", "--list", "--file", "-"])
        .spawn()
        .map_err(|e| format!("cannot run git: {e}"))?;
    let input = Zeroizing::new(text.as_bytes().to_vec());
    let writer = child.stdin.take().map(|mut stdin| {
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        })
    });
    let output = child
        .wait_with_output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let stdout = Zeroizing::new(output.stdout);
    if !output.status.success() {
        return Err(first_error_line(&output.stderr));
    }
    Ok(stdout
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let text = Zeroizing::new(String::from_utf8_lossy(entry).into_owned());
            let (key, value) = text.split_once('\n').unwrap_or((&text, ""));
            (key.to_owned(), Zeroizing::new(value.to_owned()))
        })
        .collect())
}
