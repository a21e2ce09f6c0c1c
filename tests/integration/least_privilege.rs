//! `--allow-repo` and `--audit-log`: the broker answers only for the
//! repositories a build may touch, and records every decision.

use crate::support::exec_world::{TOKEN_USER, World};
use crate::support::{FAKE_ACCESS_TOKEN, Run, assert_no_leak};

fn world() -> World {
    World::new(&[
        ("acme/app", &[("README.md", b"acme/app")]),
        ("acme/lib", &[("README.md", b"acme/lib")]),
        ("acme/other", &[("README.md", b"acme/other")]),
        ("acme/sub", &[("README.md", b"acme/sub")]),
    ])
}

/// `bbinject exec` in the test's directory, as the scenarios below run it.
fn exec(w: &World, extra: &[&str], script: &str) -> Run {
    w.exec(extra, w.bb.dir.path(), &[], script)
}

/// The audit log's records, each line parsed as one JSON object.
fn audit_records(w: &World) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(w.bb.path("audit.jsonl")).expect("audit log");
    text.lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line:?}"))
        })
        .collect()
}

#[test]
fn only_allowed_repositories_get_the_credential_and_every_decision_is_recorded() {
    let w = world();
    let url = w.server.url();
    let script = format!(
        "git clone -q {url}/acme/app.git a && git clone -q {url}/acme/lib.git b && \
         (git clone -q {url}/acme/other.git c 2>&1; echo third=$?)"
    );
    let audit = w.bb.path("audit.jsonl").display().to_string();
    let run = exec(
        &w,
        &[
            "--allow-repo",
            "acme/app",
            "--allow-repo",
            "acme/lib",
            "--audit-log",
            &audit,
            "-v",
        ],
        &script,
    );
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(w.bb.path("a/README.md").exists() && w.bb.path("b/README.md").exists());
    assert!(!run.stdout.contains("third=0"), "{}", run.describe());
    assert!(
        run.stdout.contains("acme/other is not in --allow-repo"),
        "{}",
        run.describe()
    );
    // The git server never received the credential for the third repository.
    assert!(w.server.authorizations_for("acme/other").is_empty());
    assert!(!w.server.authorizations_for("acme/app").is_empty());

    let records = audit_records(&w);
    let granted: Vec<&str> = records
        .iter()
        .filter(|r| r["decision"] == "granted")
        .filter_map(|r| r["repository"].as_str())
        .collect();
    let refused: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r["decision"] == "refused")
        .filter_map(|r| Some((r["repository"].as_str()?, r["reason"].as_str()?)))
        .collect();
    assert!(
        granted.contains(&"acme/app") && granted.contains(&"acme/lib"),
        "{records:#?}"
    );
    assert_eq!(
        refused,
        [("acme/other", "repository-not-allowed")],
        "{records:#?}"
    );
    for record in &records {
        assert_eq!(record["front"], "helper", "{record}");
        if record["decision"] == "granted" {
            assert_eq!(record["credential"], "env", "{record}");
            assert!(
                record["fingerprint"]
                    .as_str()
                    .is_some_and(|f| f.starts_with("sha256:")),
                "{record}"
            );
        }
        // The git that asked, behind the front door.
        assert!(
            record["parent_exe"]
                .as_str()
                .is_some_and(|e| e.contains("git")),
            "{record}"
        );
        assert!(
            record["pid"].as_i64().is_some() && record["exe"].as_str().is_some(),
            "{record}"
        );
        assert!(
            record["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{record}"
        );
    }
    // Created 0600.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(w.bb.path("audit.jsonl"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // The summary line at the end of the run.
    assert!(
        run.stderr.contains("credential answered")
            && run.stderr.contains("acme/app, acme/lib")
            && run
                .stderr
                .contains("refused 1× (acme/other: repository-not-allowed)"),
        "{}",
        run.describe()
    );
    // No form of the secret in the output or in any file, the audit log included.
    assert_no_leak(&run, w.bb.dir.path(), FAKE_ACCESS_TOKEN, &[TOKEN_USER], &[]);
}

#[test]
fn allow_checked_uses_the_preflight_list_and_askpass_without_a_path_is_refused() {
    let w = world();
    let url = w.server.url();
    // With useHttpPath off, git asks without a path: the safe answer is no.
    let script = format!(
        "git clone -q {url}/acme/app.git a && \
         (git -c credential.useHttpPath=false -c credential.helper= clone -q {url}/acme/app.git b 2>&1; echo nopath=$?)"
    );
    let run = exec(&w, &["--repo", "acme/app", "--allow-checked"], &script);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(w.bb.path("a/README.md").exists(), "{}", run.describe());
    assert!(!run.stdout.contains("nopath=0"), "{}", run.describe());
    assert!(
        run.stdout.contains("git did not say which repository"),
        "{}",
        run.describe()
    );
    assert_no_leak(&run, w.bb.dir.path(), FAKE_ACCESS_TOKEN, &[TOKEN_USER], &[]);
}

#[test]
fn the_audit_log_holds_whole_lines_under_concurrent_submodule_fetches() {
    let w = world();
    let url = w.server.url();
    // A superproject with three submodules, fetched with --jobs 4.
    let script = format!(
        "set -e; mkdir super && cd super && git init -q && \
         for r in lib other sub; do git -c protocol.file.allow=always submodule -q add {url}/acme/$r.git $r; done && \
         git commit -qm subs && cd .. && \
         git clone -q --recurse-submodules --jobs 4 ./super copy && echo cloned"
    );
    let audit = w.bb.path("audit.jsonl").display().to_string();
    let run = exec(&w, &["--audit-log", &audit], &script);
    assert!(run.stdout.contains("cloned"), "{}", run.describe());
    let records = audit_records(&w);
    assert!(records.len() >= 6, "{} records", records.len());
    assert!(records.iter().all(|r| r["decision"] == "granted"));
    assert_no_leak(&run, w.bb.dir.path(), FAKE_ACCESS_TOKEN, &[TOKEN_USER], &[]);
}

#[test]
fn export_carries_the_allow_list_and_the_audit_log_to_the_detached_broker() {
    let w = world();
    let url = w.server.url();
    let audit = w.bb.path("audit.jsonl").display().to_string();
    let bin = assert_cmd::cargo::cargo_bin!("bbinject")
        .display()
        .to_string();
    let script = format!(
        "eval \"$('{bin}' export --no-preflight --git-url {url} --ttl 60s --allow-repo acme/app --audit-log '{audit}')\" && \
         git clone -q {url}/acme/app.git a && (git clone -q {url}/acme/lib.git b 2>&1; echo second=$?); \
         '{bin}' export --revoke"
    );
    let run = w.bb.shell("sh", &script);
    assert!(w.bb.path("a/README.md").exists(), "{}", run.describe());
    assert!(!run.stdout.contains("second=0"), "{}", run.describe());
    let records = audit_records(&w);
    assert!(
        records
            .iter()
            .any(|r| r["decision"] == "granted" && r["repository"] == "acme/app")
    );
    assert!(
        records
            .iter()
            .any(|r| r["reason"] == "repository-not-allowed" && r["repository"] == "acme/lib")
    );
    assert_no_leak(&run, w.bb.dir.path(), FAKE_ACCESS_TOKEN, &[TOKEN_USER], &[]);
}
