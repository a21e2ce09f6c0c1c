//! Test harness: a builder that runs the real `bbinject` binary the way a CI
//! job would (fresh temp dir, isolated `HOME` and git config, inherited
//! `BITBUCKET_*`/`GIT_*`/`RUST_BACKTRACE` cleared), the git smart-HTTP server,
//! Bitbucket API mocks answering with the real bodies from tests/fixtures,
//! and the leak scanner every secret-handling test ends with.

#![allow(dead_code)]

pub mod background;
pub mod bitbucket_mock;
pub mod exec_world;
pub mod git_server;
pub mod tls_front;

use std::path::{Path, PathBuf};

use base64::Engine as _;

/// The fake secrets used across tests: obviously not real, long enough to mask.
pub const FAKE_API_TOKEN: &str = "ATATT3xFAKE-api-token-0000000000000000";
pub const FAKE_ACCESS_TOKEN: &str = "ATCTT3xFAKE-access-token-000000000000";
pub const FAKE_APP_PASSWORD: &str = "ATBBFAKEapppassword000000000000";
/// A fake access token of the real length (192 characters, the alphabet of
/// real ones): some leaks show only at this length (base64 wraps, headers fold).
pub const LONG_ACCESS_TOKEN: &str = "ATCTT3xFAKElKCn2wtQYi4Bc6DNK_1C3tHaEvWbuvkoK8W95UXWpZOKM2EjjqNvkn6bhTNP_eqSMxV5EH1yCUcBcH4LsCw-YEJh7Z6lbLNVegM1VB4r1V0Iel20mGkNDRq3fVKrOe85iArwDSzaDW52K1j9WmhLcH_wC60lo0smjrUxF19gjLxb=FAKE0192";

pub struct Run {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Run {
    fn from(output: std::process::Output) -> Self {
        Run {
            status: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn code(&self) -> i32 {
        self.status.unwrap_or(-1)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// The problem with `code` in a JSON report; panics with the report if absent.
    pub fn problem(&self, code: &str) -> serde_json::Value {
        let report = self.json();
        report["problems"]
            .as_array()
            .and_then(|problems| problems.iter().find(|p| p["code"] == code))
            .cloned()
            .unwrap_or_else(|| panic!("no problem {code} in:\n{report:#}"))
    }

    /// Problem codes in a JSON report.
    pub fn problem_codes(&self) -> Vec<String> {
        self.json()["problems"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p["code"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn describe(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Every distinct `git` executable on `PATH`, in `PATH` order (duplicates by
/// canonical path removed).
pub fn gits_on_path() -> Vec<PathBuf> {
    let mut seen = Vec::new();
    let mut gits = Vec::new();
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("git");
        let Ok(real) = std::fs::canonicalize(&candidate) else {
            continue;
        };
        if real.is_file() && !seen.contains(&real) {
            seen.push(real);
            gits.push(candidate);
        }
    }
    gits
}

/// Tests that need root are `#[ignore = "needs root"]`, so a normal run
/// lists them as skipped; `.ci/run` (root) runs them with `--ignored`. Run
/// without root they fail loudly instead of passing.
pub fn require_root() {
    let uid = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    assert_eq!(
        uid, "0",
        "this test needs root (it is #[ignore]d for that reason)"
    );
}

/// Builds one run of the binary in its own temp dir.
pub struct Bb {
    pub dir: tempfile::TempDir,
    envs: Vec<(String, String)>,
    args: Vec<String>,
    stdin: Option<Vec<u8>>,
}

impl Bb {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("bbt")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir_all(dir.path().join("home")).expect("home");
        Self {
            dir,
            envs: vec![],
            args: vec![],
            stdin: None,
        }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn env(mut self, key: &str, value: impl AsRef<str>) -> Self {
        self.envs.push((key.into(), value.as_ref().into()));
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Writes `content` to a file in the temp dir with `mode`, returning its path.
    pub fn file(&self, name: &str, content: &[u8], mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = self.path(name);
        std::fs::write(&path, content).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    pub fn command(&self) -> std::process::Command {
        self.program(assert_cmd::cargo::cargo_bin!("bbinject"))
    }

    /// Any program (a shell, git) with the same isolated environment.
    pub fn program(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        let mut cmd = self.isolated(program);
        cmd.args(&self.args);
        cmd
    }

    /// The binary under `timeout SECS`, so a hang fails a test instead of the suite.
    pub fn bounded(&self, secs: u32) -> std::process::Command {
        let mut cmd = self.isolated("timeout");
        cmd.arg(secs.to_string())
            .arg(assert_cmd::cargo::cargo_bin!("bbinject"))
            .args(&self.args)
            .stdin(std::process::Stdio::null());
        cmd
    }

    fn isolated(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        let mut cmd = std::process::Command::new(program);
        cmd.env_clear()
            .current_dir(self.dir.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("XDG_CONFIG_HOME", self.home().join(".config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", self.home().join(".gitconfig"))
            .env("TMPDIR", self.dir.path())
            .env("NO_COLOR", "1");
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `script` with `shell -c` in the isolated environment.
    pub fn shell(&self, shell: &str, script: &str) -> Run {
        let output = self
            .program(shell)
            .args(["-c", script])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run shell");
        Run::from(output)
    }

    pub fn run(&self) -> Run {
        use std::io::Write as _;
        let mut cmd = self.command();
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("spawn bbinject");
        if let Some(mut stdin) = child.stdin.take()
            && let Some(input) = &self.stdin
        {
            let _ = stdin.write_all(input);
        }
        let output = child.wait_with_output().expect("wait");
        Run::from(output)
    }
}

/// The forms in which a leaked secret would show up.
pub fn secret_forms(secret: &str, usernames: &[&str]) -> Vec<String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut forms = vec![
        secret.to_owned(),
        url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
        b64(secret),
    ];
    for user in usernames {
        forms.push(b64(&format!("{user}:{secret}")));
    }
    // Line-wrapped base64 (`base64` wraps at 76, `openssl base64` at 64): each
    // line of it on its own.
    let mut plain = vec![secret.to_owned()];
    plain.extend(usernames.iter().map(|u| format!("{u}:{secret}")));
    for data in plain {
        let encoded = b64(&data);
        for width in [76, 64] {
            if encoded.len() > width {
                forms.extend(
                    encoded
                        .as_bytes()
                        .chunks(width)
                        .filter(|line| line.len() >= 16)
                        .map(|line| String::from_utf8_lossy(line).into_owned()),
                );
            }
        }
    }
    forms
}

/// Panics if any form of `secret` is in the run's output or in any file
/// under `dir` (except the files the test itself wrote the secret into).
pub fn assert_no_leak(
    run: &Run,
    dir: &Path,
    secret: &str,
    usernames: &[&str],
    allowed_files: &[PathBuf],
) {
    for form in secret_forms(secret, usernames) {
        assert!(
            !run.stdout.contains(&form),
            "secret form {form:?} in stdout:\n{}",
            run.describe()
        );
        assert!(
            !run.stderr.contains(&form),
            "secret form {form:?} in stderr:\n{}",
            run.describe()
        );
    }
    for path in files_under(dir) {
        if allowed_files.contains(&path) {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        for form in secret_forms(secret, usernames) {
            assert!(
                !contains(&bytes, form.as_bytes()),
                "secret form {form:?} found in {}",
                path.display()
            );
        }
    }
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
