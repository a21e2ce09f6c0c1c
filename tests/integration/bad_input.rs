//! Bad input: each case gets a clear one-line error naming the source, exit 2,
//! and never the value.

use crate::support::{Bb, FAKE_API_TOKEN, Run, assert_no_leak};

fn check_with(bb: Bb) -> (Bb, Run) {
    check_args(bb, &[])
}

fn check_args(bb: Bb, extra: &[&str]) -> (Bb, Run) {
    let bb = bb
        .args([
            "check",
            "--api-url",
            "http://127.0.0.1:9/2.0",
            "--git-url",
            "http://127.0.0.1:9",
            "--retries",
            "0",
        ])
        .args(extra);
    let run = bb.run();
    (bb, run)
}

fn assert_usage_error(run: &Run, must_mention: &str) {
    assert_eq!(run.code(), 2, "{}", run.describe());
    let first = run
        .stderr
        .lines()
        .find(|l| l.starts_with("bbinject: error: ") || l.starts_with("error: "));
    let first = first.unwrap_or_else(|| panic!("no error line:\n{}", run.describe()));
    assert!(
        first.contains(must_mention),
        "error line {first:?} does not mention {must_mention:?}"
    );
    assert!(
        run.stderr.contains("hint: ") || run.stderr.contains("For more information"),
        "{}",
        run.describe()
    );
}

#[test]
fn no_credential_at_all() {
    let (_, run) = check_with(Bb::new());
    assert_usage_error(&run, "no Bitbucket credential found");
    assert!(run.stderr.contains("BITBUCKET_API_TOKEN"));
}

#[test]
fn two_kinds_without_a_config_are_named() {
    let (bb, run) = check_with(
        Bb::new()
            .env("BITBUCKET_API_TOKEN", FAKE_API_TOKEN)
            .env("BITBUCKET_ACCESS_TOKEN", "FAKE-second-token-00000000"),
    );
    assert_usage_error(
        &run,
        "Atlassian API token (env:BITBUCKET_API_TOKEN), access token (env:BITBUCKET_ACCESS_TOKEN)",
    );
    assert_no_leak(&run, bb.dir.path(), FAKE_API_TOKEN, &[], &[]);
}

#[test]
fn name_and_name_file_both_set() {
    let bb = Bb::new();
    let file = bb.file("t", FAKE_API_TOKEN.as_bytes(), 0o600);
    let (bb, run) = check_with(
        bb.env("BITBUCKET_API_TOKEN", FAKE_API_TOKEN)
            .env("BITBUCKET_API_TOKEN_FILE", file.display().to_string()),
    );
    assert_usage_error(
        &run,
        "BITBUCKET_API_TOKEN and BITBUCKET_API_TOKEN_FILE are both set",
    );
    assert_no_leak(&run, bb.dir.path(), FAKE_API_TOKEN, &[], &[file]);
}

#[test]
fn secret_files_that_cannot_be_used() {
    let bb = Bb::new();
    let big = vec![b'A'; 64 * 1024 + 1];
    let cases: Vec<(String, &str)> = vec![
        (
            bb.path("absent").display().to_string(),
            "file does not exist",
        ),
        (bb.dir.path().display().to_string(), "is a directory"),
        (
            bb.file("empty", b"", 0o600).display().to_string(),
            "is empty",
        ),
        (
            bb.file("big", &big, 0o600).display().to_string(),
            "is larger than 65536 bytes",
        ),
        (
            bb.file("latin1", b"FAKE\xe9\xfftoken", 0o600)
                .display()
                .to_string(),
            "is not valid UTF-8",
        ),
        (
            bb.file("inner", b"ATATT3xFAKE inner space", 0o600)
                .display()
                .to_string(),
            "contains whitespace",
        ),
        (
            bb.file("ctrl", b"ATATT3xFAKE\x07bell", 0o600)
                .display()
                .to_string(),
            "contains a control character",
        ),
        // Reading /proc/self/mem fails even for root: a portable "unreadable".
        ("/proc/self/mem".into(), "cannot be read"),
    ];
    for (path, expected) in cases {
        let (_, run) = check_with(Bb::new().env("BITBUCKET_API_TOKEN_FILE", &path));
        assert_usage_error(&run, &format!("BITBUCKET_API_TOKEN_FILE={path}: "));
        assert!(
            run.stderr.contains(expected),
            "{path}: expected {expected:?}\n{}",
            run.describe()
        );
        assert!(
            !run.stderr.contains("ATATT3xFAKE") && !run.stderr.contains("FAKE\u{fffd}"),
            "{}",
            run.describe()
        );
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

/// A file its reader may not read. Root reads anything, so as root the run
/// drops to uid 65534 (in a directory it may enter): the case runs either way.
#[test]
fn a_secret_file_the_user_may_not_read_is_named_with_permission_denied() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::Builder::new()
        .prefix("bbp")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let file = dir.path().join("noperm");
    std::fs::write(&file, FAKE_API_TOKEN).expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let exe = assert_cmd::cargo::cargo_bin!("bbinject");
    let mut command = if is_root() {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(exe);
        c
    } else {
        std::process::Command::new(exe)
    };
    let output = command
        .args([
            "check",
            "--api-url",
            "http://127.0.0.1:9/2.0",
            "--retries",
            "0",
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("BITBUCKET_API_TOKEN_FILE", &file)
        .output()
        .expect("run");
    let run = Run::from(output);
    assert_usage_error(
        &run,
        &format!(
            "BITBUCKET_API_TOKEN_FILE={}: cannot be read (permission denied)",
            file.display()
        ),
    );
    assert!(!run.stderr.contains("ATATT3xFAKE"), "{}", run.describe());
}

#[test]
fn values_with_inner_whitespace_or_control_characters() {
    for (value, expected) in [
        ("ATATT3xFAKE token", "whitespace"),
        ("ATATT3xFAKE\u{1b}[0m", "control character"),
    ] {
        let (_, run) = check_with(Bb::new().env("BITBUCKET_API_TOKEN", value));
        assert_usage_error(&run, "BITBUCKET_API_TOKEN: contains");
        assert!(run.stderr.contains(expected), "{}", run.describe());
        assert!(!run.stderr.contains("ATATT3xFAKE"), "{}", run.describe());
    }
}

#[test]
fn trailing_newlines_are_accepted_and_stripped() {
    for content in [
        format!("{FAKE_API_TOKEN}\n"),
        format!("{FAKE_API_TOKEN}\r\n"),
    ] {
        let bb = Bb::new();
        let file = bb.file("token", content.as_bytes(), 0o600);
        let bb = bb
            .env("BITBUCKET_API_TOKEN_FILE", file.display().to_string())
            .args(["check", "--format", "json"]);
        let run = bb.run();
        assert_eq!(run.code(), 0, "{}", run.describe());
        let report = run.json();
        assert_eq!(
            report["credentials"][0]["source"],
            "env:BITBUCKET_API_TOKEN_FILE"
        );
        // The fingerprint is that of the value without the line ending.
        let plain = bbinject::secret::Secret::new(FAKE_API_TOKEN.to_owned()).fingerprint();
        assert_eq!(report["credentials"][0]["fingerprint"], plain.as_str());
        assert_no_leak(&run, bb.dir.path(), FAKE_API_TOKEN, &[], &[file]);
    }
}

#[test]
fn a_secret_file_readable_by_others_gets_a_warning() {
    let bb = Bb::new();
    let file = bb.file("token", FAKE_API_TOKEN.as_bytes(), 0o644);
    let bb = bb
        .env("BITBUCKET_API_TOKEN_FILE", file.display().to_string())
        .args(["check"]);
    let run = bb.run();
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(
        run.stdout.contains("warning[secret-file-permissions]"),
        "{}",
        run.describe()
    );
    assert!(run.stdout.contains("mode 644"), "{}", run.describe());
}

#[test]
fn malformed_config_never_prints_the_secret_next_to_the_error() {
    let cases = [
        (
            "unknown key",
            format!(
                "credentials:\n  - kind: api_token\n    tokn: x\n    secret: {FAKE_API_TOKEN}\n"
            ),
            "unknown field `tokn`",
        ),
        (
            "wrong type",
            format!(
                "credentials:\n  - kind: api_token\n    secret: {FAKE_API_TOKEN}\n    match: 42\n"
            ),
            "line 4",
        ),
        (
            "not a boolean",
            format!(
                "credentials:\n  - kind: api_token\n    secret: {FAKE_API_TOKEN}\n    email: [yes\n"
            ),
            "line",
        ),
        (
            "malformed",
            format!(
                "credentials:\n  - kind: api_token\n    secret: {FAKE_API_TOKEN}\n   oops: : :\n"
            ),
            "line",
        ),
        (
            "secret as a kind",
            format!("credentials:\n  - kind: {FAKE_API_TOKEN}\n"),
            "unknown variant (value hidden)",
        ),
    ];
    for (name, yaml, expected) in cases {
        let bb = Bb::new();
        let path = bb.file("bbinject.yaml", yaml.as_bytes(), 0o600);
        for format in ["text", "json"] {
            let config = path.display().to_string();
            let (_, run) = check_args(Bb::new(), &["--config", &config, "--format", format]);
            assert_usage_error(&run, "config ");
            assert!(
                run.stderr.contains(expected),
                "{name}: expected {expected:?}\n{}",
                run.describe()
            );
            assert_no_leak(
                &run,
                bb.dir.path(),
                FAKE_API_TOKEN,
                &[],
                std::slice::from_ref(&path),
            );
            if format == "json" {
                assert_eq!(run.json()["problems"][0]["code"], "configuration");
            }
        }
    }
}

#[test]
fn repo_not_of_the_form_workspace_slash_slug() {
    for bad in [
        "acme",
        "https://bitbucket.org/acme/app",
        "acme/app/x",
        "acme/my app",
    ] {
        let (_, run) = check_args(
            Bb::new().env("BITBUCKET_API_TOKEN", FAKE_API_TOKEN),
            &["--repo", bad],
        );
        assert_usage_error(&run, "WORKSPACE/SLUG");
    }
    let (_, run) = check_with(
        Bb::new()
            .env("BITBUCKET_API_TOKEN", FAKE_API_TOKEN)
            .env("BITBUCKET_REPO_FULL_NAME", "nope"),
    );
    assert_usage_error(&run, "BITBUCKET_REPO_FULL_NAME");
}

#[test]
fn urls_that_are_not_urls_or_plain_http_to_a_remote_host() {
    for (flag, value, expected) in [
        ("--api-url", "not a url", "is not a URL"),
        ("--git-url", "bitbucket.org", "is not a URL"),
        (
            "--api-url",
            "http://api.bitbucket.org/2.0",
            "plain http:// for a host that is not loopback",
        ),
        (
            "--git-url",
            "http://bitbucket.org",
            "plain http:// for a host that is not loopback",
        ),
        ("--git-url", "http://localhost.evil.example", "not loopback"),
        (
            "--token-url",
            "ftp://bitbucket.org/x",
            "only https:// is allowed",
        ),
    ] {
        let bb = Bb::new()
            .env("BITBUCKET_API_TOKEN", FAKE_API_TOKEN)
            .args(["check", flag, value]);
        let run = bb.run();
        assert_usage_error(&run, flag);
        assert!(
            run.stderr.contains(expected),
            "{flag} {value}: {}",
            run.describe()
        );
    }
}

/// Runs `bb` under `timeout 20`, so a hang fails the test instead of the suite.
fn run_bounded(bb: &Bb) -> Run {
    Run::from(bb.bounded(20).output().expect("run"))
}

fn mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo");
    assert!(status.success());
}

#[test]
fn a_fifo_or_device_anywhere_a_secret_or_config_is_read_is_refused_at_once() {
    let bb = Bb::new();
    let fifo = bb.path("pipe");
    mkfifo(&fifo);
    let dir = bb.path("secrets");
    std::fs::create_dir(&dir).expect("mkdir");
    mkfifo(&dir.join("bitbucket_api_token"));
    let fifo_s = fifo.display().to_string();
    let cases: Vec<(Bb, &str)> = vec![
        (
            Bb::new()
                .env("BITBUCKET_API_TOKEN_FILE", &fifo_s)
                .args(["check"]),
            "BITBUCKET_API_TOKEN_FILE=",
        ),
        (
            Bb::new().args(["check", "--secrets-dir", &dir.display().to_string()]),
            "bitbucket_api_token: is a named pipe (FIFO)",
        ),
        (
            Bb::new().args(["check", "--config", &fifo_s]),
            "it is a named pipe (FIFO), not a regular file",
        ),
        (
            Bb::new().args(["check", "--config", "/dev/zero"]),
            "it is a device, not a regular file",
        ),
        (
            Bb::new()
                .env("BBINJECT_CONFIG", "/dev/zero")
                .args(["exec", "--", "true"]),
            "config /dev/zero",
        ),
    ];
    for (case, expected) in cases {
        let run = run_bounded(&case);
        assert_ne!(run.code(), 124, "timed out: {expected}");
        assert_usage_error(&run, expected);
    }
}

#[test]
fn a_bom_is_stripped_so_the_real_token_is_masked_and_invisible_characters_are_refused() {
    let with_bom = format!("\u{FEFF}{FAKE_API_TOKEN}");
    let bb = Bb::new().env("BITBUCKET_ACCESS_TOKEN", &with_bom).args([
        "exec",
        "--no-preflight",
        "--",
        "sh",
        "-c",
        &format!("echo {FAKE_API_TOKEN}"),
    ]);
    let run = run_bounded(&bb);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert_eq!(run.stdout.trim(), "****", "{}", run.describe());

    for (value, offset) in [
        (format!("{FAKE_API_TOKEN}\u{200B}"), FAKE_API_TOKEN.len()),
        ("ATATT3\u{200D}xFAKE-rest-of-token-000000000".to_owned(), 6),
    ] {
        let (bb, run) = check_with(Bb::new().env("BITBUCKET_API_TOKEN", &value));
        assert_usage_error(
            &run,
            "BITBUCKET_API_TOKEN: contains an invisible character (U+",
        );
        assert!(
            run.stderr.contains(&format!("at byte {offset}")),
            "{}",
            run.describe()
        );
        assert_no_leak(&run, bb.dir.path(), FAKE_API_TOKEN, &[], &[]);
    }
}

#[test]
fn exec_without_preflight_still_warns_about_a_readable_secret_file() {
    let bb = Bb::new();
    let file = bb.file("token", FAKE_API_TOKEN.as_bytes(), 0o644);
    let bb = bb
        .env("BITBUCKET_ACCESS_TOKEN_FILE", file.display().to_string())
        .args(["exec", "--no-preflight", "--", "true"]);
    let run = run_bounded(&bb);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(
        run.stderr.contains("warning[secret-file-permissions]")
            && run.stderr.contains("readable by other users (mode 644)"),
        "{}",
        run.describe()
    );
}

#[test]
fn a_missing_secrets_dir_and_a_username_with_a_colon_are_named() {
    let (_, run) = check_args(Bb::new(), &["--secrets-dir", "/nonexistent/run/secrets"]);
    assert_usage_error(
        &run,
        "--secrets-dir /nonexistent/run/secrets: does not exist",
    );
    let (bb, run) = check_with(
        Bb::new()
            .env("BITBUCKET_API_TOKEN", FAKE_API_TOKEN)
            .env("BITBUCKET_USERNAME", "jdoe:hunter2hunter2"),
    );
    assert_usage_error(&run, "BITBUCKET_USERNAME: contains `:`");
    assert!(!run.stderr.contains("hunter2"), "{}", run.describe());
    assert_no_leak(&run, bb.dir.path(), FAKE_API_TOKEN, &[], &[]);
}

#[test]
fn config_errors_never_quote_a_value_on_stderr_or_in_json() {
    let lower = "sekritlowercasevalue";
    let yamls = [
        format!("credentials:\n  - kind: api_token\n    secret_env: {FAKE_API_TOKEN}\n"),
        format!("credentials:\n  - kind: api_token\n    secret_file: {FAKE_API_TOKEN}\n"),
        format!(
            "credentials:\n  - kind: api_token\n    match: [\"{FAKE_API_TOKEN}+=\"]\n    secret: {FAKE_API_TOKEN}\n"
        ),
        format!("credentials:\n  - kind: {lower}\n    secret: x\n"),
        format!(
            "defaults:\n  need: {lower}\ncredentials:\n  - kind: api_token\n    secret: {FAKE_API_TOKEN}\n"
        ),
    ];
    for yaml in yamls {
        let bb = Bb::new();
        let config = bb.file("c.yaml", yaml.as_bytes(), 0o600);
        for format in ["text", "json"] {
            let (_, run) = check_args(
                Bb::new().env("BBINJECT_CONFIG", config.display().to_string()),
                &["--format", format],
            );
            assert_eq!(run.code(), 2, "{}", run.describe());
            for text in [&run.stdout, &run.stderr] {
                assert!(!text.contains(lower), "{yaml}\n{}", run.describe());
            }
            assert_no_leak(
                &run,
                bb.dir.path(),
                FAKE_API_TOKEN,
                &[],
                std::slice::from_ref(&config),
            );
        }
    }
}
