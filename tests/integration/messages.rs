//! Every user-facing error and warning, pinned: one file per case under
//! `tests/cmd/` with the command, its environment, and the expected exit
//! code, stdout and stderr (the style of trycmd/snapbox). A message that
//! changes makes this test fail with the difference; `BBINJECT_BLESS=1`
//! rewrites the expectations from what the binary prints now (review the diff).
//!
//! Case file (YAML):
//! - `about`: what the case pins;
//! - `args`: the arguments after `bbinject`;
//! - `env`: variables for the run (the environment is otherwise empty but for
//!   PATH, an isolated HOME and git config, TMPDIR, and `BBINJECT` = the binary);
//! - `setup`: optional `sh` script run first in the sandbox (same environment);
//! - `stdin`: optional input;
//! - `status`, `stdout`, `stderr`: expected. In them `[SANDBOX]` is the case's
//!   directory, `[EXE]` the binary, `[..]` any text within a line, and a line
//!   `...` any number of lines.
//!
//! Every case also checks that no form of any secret in `env` is in the output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::support::secret_forms;

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Case {
    about: String,
    args: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    setup: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stdin: Option<String>,
    status: i32,
    stdout: String,
    stderr: String,
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cmd")
}

/// Does `actual` match `expected` (with `[..]` in lines and `...` lines)?
fn matches(expected: &str, actual: &str) -> bool {
    fn line_matches(pattern: &str, line: &str) -> bool {
        let parts: Vec<&str> = pattern.split("[..]").collect();
        if parts.len() == 1 {
            return pattern == line;
        }
        let (first, last) = (parts[0], parts[parts.len() - 1]);
        if !line.starts_with(first) || line.len() < first.len() + last.len() {
            return false;
        }
        let mut rest = &line[first.len()..];
        for part in &parts[1..parts.len() - 1] {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        rest.ends_with(last)
    }
    fn lines_match(expected: &[&str], actual: &[&str]) -> bool {
        match expected.split_first() {
            None => actual.is_empty(),
            Some((&"...", rest)) => {
                (0..=actual.len()).any(|skip| lines_match(rest, &actual[skip..]))
            }
            Some((pattern, rest)) => {
                !actual.is_empty()
                    && line_matches(pattern, actual[0])
                    && lines_match(rest, &actual[1..])
            }
        }
    }
    let expected: Vec<&str> = expected.lines().collect();
    let actual: Vec<&str> = actual.lines().collect();
    lines_match(&expected, &actual)
}

fn run_case(path: &Path, bless: bool) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut case: Case =
        serde_saphyr::from_str(&text).map_err(|e| format!("bad case file: {e}"))?;
    let sandbox = tempfile::Builder::new()
        .prefix("bbm")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let root = sandbox.path().to_path_buf();
    std::fs::create_dir_all(root.join("home")).map_err(|e| e.to_string())?;
    let exe = assert_cmd::cargo::cargo_bin!("bbinject").to_path_buf();
    let environment = |cmd: &mut std::process::Command| {
        cmd.env_clear()
            .current_dir(&root)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", root.join("home"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", root.join("home/.gitconfig"))
            .env("TMPDIR", &root)
            .env("NO_COLOR", "1")
            .env("BBINJECT", &exe)
            .envs(&case.env);
    };
    if let Some(setup) = &case.setup {
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", setup]);
        environment(&mut cmd);
        let out = cmd.output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "setup failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let mut cmd = std::process::Command::new("timeout");
    cmd.arg("30").arg(&exe).args(&case.args);
    environment(&mut cmd);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write as _;
        let _ = stdin.write_all(case.stdin.as_deref().unwrap_or_default().as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let normalise = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .replace(&exe.display().to_string(), "[EXE]")
            .replace(&root.display().to_string(), "[SANDBOX]")
    };
    let (stdout, stderr) = (normalise(&out.stdout), normalise(&out.stderr));
    let status = out.status.code().unwrap_or(-1);

    let mut leaks = Vec::new();
    for (name, value) in &case.env {
        if ["TOKEN", "PASSWORD", "SECRET"]
            .iter()
            .any(|s| name.ends_with(s))
        {
            for form in secret_forms(
                value,
                &["x-token-auth", "x-bitbucket-api-token-auth", "jdoe"],
            ) {
                if stdout.contains(&form) || stderr.contains(&form) {
                    leaks.push(format!("{name} leaked as {form}"));
                }
            }
        }
    }
    if bless {
        case.status = status;
        case.stdout = stdout;
        case.stderr = stderr;
        let text = serde_saphyr::to_string(&case).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| e.to_string())?;
        return if leaks.is_empty() {
            Ok(())
        } else {
            Err(leaks.join("; "))
        };
    }
    let mut problems = leaks;
    if status != case.status {
        problems.push(format!("exit {status}, expected {}", case.status));
    }
    if !matches(&case.stdout, &stdout) {
        problems.push(format!(
            "stdout differs:\n--- expected\n{}--- actual\n{stdout}",
            case.stdout
        ));
    }
    if !matches(&case.stderr, &stderr) {
        problems.push(format!(
            "stderr differs:\n--- expected\n{}--- actual\n{stderr}",
            case.stderr
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[test]
fn every_user_facing_message_is_pinned() {
    let bless = std::env::var_os("BBINJECT_BLESS").is_some();
    let mut files: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("tests/cmd")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "only {} cases", files.len());
    let failures: Vec<String> = files
        .iter()
        .filter_map(|file| {
            run_case(file, bless).err().map(|e| {
                format!(
                    "{}:\n{e}\n",
                    file.file_name().unwrap_or_default().to_string_lossy()
                )
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn the_matcher_understands_wildcards_and_skipped_lines() {
    assert!(matches("a [..] c\n", "a b c\n"));
    assert!(matches("a\n...\nz\n", "a\nb\nc\nz\n"));
    assert!(matches("a\n...\n", "a\n"));
    assert!(!matches("a [..] c\n", "a b d\n"));
    assert!(!matches("a\n", "a\nb\n"));
    assert!(matches("[..]x[..]\n", "yyxyy\n"));
}
