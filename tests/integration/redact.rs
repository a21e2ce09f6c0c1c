//! Redaction of the child's output in `bbinject exec`, end to end.

use std::io::Read as _;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::support::{Bb, Run};

/// A fake secret with characters that every encoding changes.
const SECRET: &str = "ATCTT3xFAKE/acc+ess=tok\"en:0000";
const CONFIG_SECRET: &str = "ATATT3xFAKE-config-secret-111111";
const PROXY_PASSWORD: &str = "FAKE-proxy-pass-2222";

fn percent(s: &str, lower: bool) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else if lower {
                format!("%{b:02x}")
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Every form of `secret` the issue lists, one per line, computed here
/// independently of bbinject's own code.
fn forms(secret: &str, user: &str) -> Vec<String> {
    let mut lines = vec![
        secret.to_owned(),
        percent(secret, false),
        percent(secret, true),
        serde_json::to_string(secret).expect("json"),
        STANDARD.encode(secret),
        STANDARD.encode(format!("{user}:{secret}")),
    ];
    // user:secret inside longer base64, at each byte alignment.
    for prefix in ["", "a", "ab"] {
        lines.push(STANDARD.encode(format!("{prefix}Authorization: Basic {user}:{secret}\r\n")));
    }
    lines
}

fn exec(bb: &Bb, extra: &[&str], script: &str) -> Run {
    let mut command = bb.command();
    command
        .args(["exec", "--no-preflight"])
        .args(extra)
        .args(["--", "sh", "-c", script]);
    let output = command.stdin(Stdio::null()).output().expect("run");
    Run::from(output)
}

#[test]
fn every_form_of_every_secret_is_masked_on_both_streams_however_it_is_split() {
    let bb = Bb::new();
    let mut lines = forms(SECRET, "x-token-auth");
    lines.extend(forms(CONFIG_SECRET, "x-bitbucket-api-token-auth"));
    lines.push(format!("http://proxyuser:{PROXY_PASSWORD}@127.0.0.1:9"));
    let text = lines.join("\n") + "\n";
    let file = bb.file("forms.txt", text.as_bytes(), 0o600);
    let config = "credentials:\n  - name: app\n    kind: access_token\n    match: [acme/app]\n    secret_env: APP_TOKEN\n  - name: rest\n    kind: api_token\n    secret_env: REST_TOKEN\n";
    let config_path = bb.file("bbinject.yaml", config.as_bytes(), 0o600);
    let bb = bb
        .env("APP_TOKEN", SECRET)
        .env("REST_TOKEN", CONFIG_SECRET)
        .env(
            "HTTPS_PROXY",
            format!("http://proxyuser:{PROXY_PASSWORD}@127.0.0.1:9"),
        )
        .env("RUST_LOG", "trace");
    // 7-byte writes on stdout, 5-byte writes with pauses on stderr.
    let script = "dd if=forms.txt bs=7 status=none; \
                  while IFS= read -r line; do printf '%s' \"${line%?????}\"; sleep 0.01; printf '%s\\n' \"${line#\"${line%?????}\"}\"; done < forms.txt >&2";
    let config_arg = config_path.display().to_string();
    let mut command = bb.command();
    command
        .args([
            "exec",
            "--config",
            &config_arg,
            "--no-preflight",
            "--",
            "sh",
            "-c",
        ])
        .arg(format!("cd '{}' && {script}", bb.dir.path().display()));
    let output = command.stdin(Stdio::null()).output().expect("run");
    let run = Run::from(output);
    assert_eq!(run.code(), 0, "{}", run.describe());
    for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        for (i, line) in lines.iter().enumerate() {
            assert!(
                !text.contains(line.as_str()),
                "{stream}: form {i} {line:?} leaked:\n{text}"
            );
        }
        for secret in [SECRET, CONFIG_SECRET, PROXY_PASSWORD] {
            for form in crate::support::secret_forms(
                secret,
                &["x-token-auth", "x-bitbucket-api-token-auth", "proxyuser"],
            ) {
                assert!(!text.contains(&form), "{stream}: {form:?} leaked:\n{text}");
            }
        }
        let masked = text.lines().filter(|l| l.contains("****")).count();
        assert!(
            masked >= lines.len(),
            "{stream}: only {masked} of {} lines masked:\n{text}",
            lines.len()
        );
    }
    assert!(
        run.stdout.contains("http://proxyuser:****@127.0.0.1:9"),
        "{}",
        run.stdout
    );
    // Nothing was written anywhere else either (the test's own input files aside).
    crate::support::assert_no_leak(
        &run,
        bb.dir.path(),
        SECRET,
        &["x-token-auth"],
        &[file.clone(), config_path.clone()],
    );
    crate::support::assert_no_leak(
        &run,
        bb.dir.path(),
        CONFIG_SECRET,
        &["x-bitbucket-api-token-auth"],
        &[file, config_path],
    );
}

/// Collects the output of a running `bbinject exec` with arrival times.
fn watch(bb: &Bb, script: &str) -> (std::process::Child, mpsc::Receiver<(Duration, Vec<u8>)>) {
    let mut command = bb.command();
    command
        .args(["exec", "--no-preflight", "--", "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send((started.elapsed(), buf[..n].to_vec())).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

#[test]
fn a_secret_written_slowly_in_pieces_is_still_masked() {
    let bb = Bb::new().env("BITBUCKET_ACCESS_TOKEN", SECRET);
    let (first, rest) = SECRET.split_at(12);
    let script = format!("printf 'token: {first}'; sleep 1.5; printf '{rest} end\\n'");
    let (mut child, rx) = watch(&bb, &script);
    let mut seen = Vec::new();
    // During the pause only the text before the secret may appear.
    while let Ok((at, bytes)) = rx.recv_timeout(Duration::from_secs(10)) {
        if at < Duration::from_millis(1200) {
            assert!(
                !String::from_utf8_lossy(&bytes).contains(&first[..4]),
                "a held prefix was released early"
            );
        }
        seen.extend(bytes);
    }
    assert!(child.wait().expect("wait").success());
    assert_eq!(String::from_utf8_lossy(&seen), "token: **** end\n");
}

#[test]
fn a_prompt_without_a_newline_appears_before_the_child_writes_again() {
    let bb = Bb::new().env("BITBUCKET_ACCESS_TOKEN", SECRET);
    let (mut child, rx) = watch(&bb, "printf 'Continue? [y/N] '; sleep 3; echo done");
    let (at, bytes) = rx.recv_timeout(Duration::from_secs(10)).expect("prompt");
    assert_eq!(bytes, b"Continue? [y/N] ");
    // The child writes again only after 3 s; the prompt must not wait for it.
    assert!(
        at < Duration::from_millis(2500),
        "the prompt arrived after {at:?}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn no_redact_passes_the_output_through_untouched_and_binary_is_safe() {
    let bb = Bb::new().env("BITBUCKET_ACCESS_TOKEN", SECRET);
    let script = format!("printf 'a\\377\\376b %s\\n' '{SECRET}'");
    let masked = exec(&bb, &[], &script);
    assert_eq!(masked.code(), 0, "{}", masked.describe());
    let raw = exec(&bb, &["--no-redact"], &script);
    assert!(raw.stdout.contains(SECRET), "{}", raw.describe());
    // Invalid UTF-8 passes through as it is (lossy-decoded here only for the comparison).
    assert_eq!(masked.stdout, "a\u{fffd}\u{fffd}b ****\n");
}

#[test]
fn a_secret_shorter_than_6_bytes_is_not_masked_and_the_user_is_warned() {
    // A Bitbucket credential that short is refused outright; a proxy password
    // can be that short, and is only warned about.
    let bb = Bb::new()
        .env("BITBUCKET_ACCESS_TOKEN", SECRET)
        .env("HTTPS_PROXY", "http://proxyuser:abc12@127.0.0.1:9");
    let run = exec(&bb, &[], "echo value=abc12");
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert_eq!(run.stdout, "value=abc12\n");
    assert!(
        run.stderr.contains(
            "the secret from the password in HTTPS_PROXY is shorter than 6 bytes and is not masked"
        ),
        "{}",
        run.describe()
    );
    let refused = exec(
        &Bb::new().env("BITBUCKET_ACCESS_TOKEN", "abc12"),
        &[],
        "true",
    );
    assert_eq!(refused.code(), 2, "{}", refused.describe());
    assert!(
        refused
            .stderr
            .contains("BITBUCKET_ACCESS_TOKEN: the value is only 5 characters long"),
        "{}",
        refused.describe()
    );
}
