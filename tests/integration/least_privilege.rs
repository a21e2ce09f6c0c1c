//! `--allow-repo` and `--audit-log`: the broker answers only for the
//! repositories a build may touch, and records every decision.

use crate::support::git_server::{GitServer, create_repo};
use crate::support::{Bb, FAKE_ACCESS_TOKEN, Run, assert_no_leak};

const TOKEN_USER: &str = "x-token-auth";

struct World {
    _root: tempfile::TempDir,
    server: GitServer,
    bb: Bb,
}

fn world() -> World {
    let root = tempfile::tempdir().expect("tempdir");
    for repo in ["acme/app", "acme/lib", "acme/other", "acme/sub"] {
        create_repo(root.path(), repo, &[("README.md", repo.as_bytes())]);
    }
    let server = GitServer::builder(root.path())
        .user(TOKEN_USER, FAKE_ACCESS_TOKEN)
        .start();
    let bb = Bb::new().env("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN);
    std::fs::write(
        bb.home().join(".gitconfig"),
        "[credential]\n\thelper = store\n[user]\n\tname = CI\n\temail = ci@example.invalid\n[protocol \"file\"]\n\tallow = always\n",
    )
    .expect("gitconfig");
    World {
        _root: root,
        server,
        bb,
    }
}

impl World {
    fn exec(&self, extra: &[&str], script: &str) -> Run {
        let url = self.server.url();
        let mut command = self.bb.command();
        command
            .args(["exec", "--no-preflight", "--git-url", &url])
            .args(extra)
            .args(["--", "sh", "-c", script])
            .stdin(std::process::Stdio::null());
        Run::from(command.output().expect("run"))
    }

    fn audit(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.bb.path("audit.jsonl")).expect("audit log");
        text.lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line:?}"))
            })
            .collect()
    }
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
    let run = w.exec(
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

    let records = w.audit();
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
    let run = w.exec(&["--repo", "acme/app", "--allow-checked"], &script);
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
    let run = w.exec(&["--audit-log", &audit], &script);
    assert!(run.stdout.contains("cloned"), "{}", run.describe());
    let records = w.audit();
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
    let records = w.audit();
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
