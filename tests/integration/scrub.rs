//! `bbinject scrub` on fixture repositories with every kind of embedded
//! credential, and lookalikes it must leave alone.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::support::git_server::run_git;
use crate::support::{Bb, Run, secret_forms};

const APP_PASSWORD: &str = "ATBBFAKEapppassword0000000000000";
const PUSH_TOKEN: &str = "ATCTT3xFAKE/pct+token000000";
const SUBMODULE_TOKEN: &str = "ATATT3xFAKEsubmoduletoken000";
const HEADER_TOKEN: &str = "ATCTT3xFAKEheadertoken0000";
const INSTEADOF_TOKEN: &str = "ATCTT3xFAKEinsteadof00000000";
const MODULE_TOKEN: &str = "ATCTT3xFAKEmoduleconfig000000";
const V6_SECRET: &str = "FAKE-ipv6-secret-0000000000";
const LOOKALIKE_SECRET: &str = "FAKE-lookalike-secret-00000";
const GITHUB_SECRET: &str = "FAKE-github-secret-0000000";

const BITBUCKET_SECRETS: [&str; 6] = [
    APP_PASSWORD,
    PUSH_TOKEN,
    SUBMODULE_TOKEN,
    HEADER_TOKEN,
    INSTEADOF_TOKEN,
    MODULE_TOKEN,
];

fn fixture(bb: &Bb) -> PathBuf {
    let repo = bb.path("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    run_git(&repo, &["init", "--quiet"]);
    let header =
        base64::engine::general_purpose::STANDARD.encode(format!("x-token-auth:{HEADER_TOKEN}"));
    let config = format!(
        "# a comment the scrub must keep\n\
         [remote \"origin\"]\n\
         \turl = https://jdoe:{APP_PASSWORD}@bitbucket.org/acme/app.git\n\
         \tpushurl = https://x-token-auth:{}@BitBucket.ORG:443/acme/app.git\n\
         \tfetch = +refs/heads/*:refs/remotes/origin/*\n\
         [remote \"lookalike\"]\n\
         \turl = https://jdoe:{LOOKALIKE_SECRET}@bitbucket.org.evil.com/acme/app.git\n\
         [remote \"github\"]\n\
         \turl = https://octo:{GITHUB_SECRET}@github.com/acme/app.git\n\
         [remote \"v6\"]\n\
         \turl = http://jdoe:{V6_SECRET}@[::1]:7990/scm/acme/app.git\n\
         [submodule \"lib\"]\n\
         \turl = https://x-bitbucket-api-token-auth:{SUBMODULE_TOKEN}@bitbucket.org/acme/lib.git\n\
         [http \"https://bitbucket.org/\"]\n\
         \textraHeader = Authorization: Basic {header}\n\
         \textraHeader = X-Trace: keep-me\n\
         [url \"https://x-token-auth:{INSTEADOF_TOKEN}@bitbucket.org/\"]\n\
         \tinsteadOf = https://bitbucket.org/\n\
         ; another comment\n",
        PUSH_TOKEN.replace('/', "%2F").replace('+', "%2B"),
    );
    let mut text = std::fs::read_to_string(repo.join(".git/config")).expect("config");
    text.push_str(&config);
    std::fs::write(repo.join(".git/config"), text).expect("write");
    let module = repo.join(".git/modules/lib");
    std::fs::create_dir_all(&module).expect("mkdir");
    std::fs::write(
        module.join("config"),
        format!("[core]\n\tbare = false\n[remote \"origin\"]\n\turl = https://x-token-auth:{MODULE_TOKEN}@bitbucket.org/acme/lib.git\n"),
    )
    .expect("module config");
    repo
}

fn scrub(bb: &Bb, args: &[&str]) -> Run {
    let output = bb.command().arg("scrub").args(args).output().expect("run");
    Run::from(output)
}

fn assert_output_clean(run: &Run) {
    for secret in BITBUCKET_SECRETS
        .iter()
        .chain([&V6_SECRET, &LOOKALIKE_SECRET, &GITHUB_SECRET])
    {
        for form in secret_forms(
            secret,
            &["jdoe", "x-token-auth", "x-bitbucket-api-token-auth"],
        ) {
            assert!(
                !run.stdout.contains(&form) && !run.stderr.contains(&form),
                "{form} leaked:\n{}",
                run.describe()
            );
        }
    }
}

fn snapshot(repo: &Path) -> (String, String) {
    (
        std::fs::read_to_string(repo.join(".git/config")).expect("config"),
        std::fs::read_to_string(repo.join(".git/modules/lib/config")).expect("module"),
    )
}

#[test]
fn check_and_dry_run_report_every_credential_and_change_nothing() {
    let bb = Bb::new();
    let repo = fixture(&bb);
    let before = snapshot(&repo);
    let run = scrub(&bb, &["--check", &repo.display().to_string()]);
    assert_eq!(run.code(), 1, "{}", run.describe());
    for location in [
        "remote.origin.url",
        "remote.origin.pushurl",
        "submodule.lib.url",
        "http.https://bitbucket.org/.extraheader",
        "url.https://x-token-auth:",
        "modules/lib/config: remote.origin.url",
    ] {
        assert!(
            run.stdout.contains(location)
                || location.starts_with("url.") && run.stdout.contains(".insteadof"),
            "{location} missing:\n{}",
            run.stdout
        );
    }
    assert!(
        run.stdout.contains("ATBB… (32 chars)")
            && run
                .stdout
                .contains("app passwords were removed on 2026-07-28"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("6 credential(s) found"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("evil.com") && !run.stdout.contains("github.com"),
        "lookalikes are not findings:\n{}",
        run.stdout
    );
    assert_output_clean(&run);
    assert_eq!(snapshot(&repo), before, "--check changed a file");

    let run = scrub(&bb, &["--dry-run", &repo.display().to_string()]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(run.stdout.contains("would remove"), "{}", run.stdout);
    assert_output_clean(&run);
    assert_eq!(snapshot(&repo), before, "--dry-run changed a file");
}

#[test]
fn scrub_rewrites_only_the_credentials_and_is_idempotent() {
    let bb = Bb::new();
    let repo = fixture(&bb);
    let run = scrub(&bb, &[&repo.display().to_string()]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(
        run.stdout
            .contains("6 credential(s) removed from 2 file(s)"),
        "{}",
        run.stdout
    );
    assert_output_clean(&run);

    let (config, module) = snapshot(&repo);
    for expected in [
        "# a comment the scrub must keep",
        "; another comment",
        "url = https://jdoe@bitbucket.org/acme/app.git",
        "pushurl = https://BitBucket.ORG:443/acme/app.git",
        "url = https://bitbucket.org/acme/lib.git",
        "extraHeader = X-Trace: keep-me",
        "[url \"https://bitbucket.org/\"]",
        &format!("url = https://jdoe:{LOOKALIKE_SECRET}@bitbucket.org.evil.com/acme/app.git"),
        &format!("url = https://octo:{GITHUB_SECRET}@github.com/acme/app.git"),
        &format!("url = http://jdoe:{V6_SECRET}@[::1]:7990/scm/acme/app.git"),
    ] {
        assert!(
            config.contains(expected),
            "{expected:?} missing from:\n{config}"
        );
    }
    assert!(!config.contains("Authorization"), "{config}");
    assert!(
        module.contains("url = https://bitbucket.org/acme/lib.git"),
        "{module}"
    );
    for secret in BITBUCKET_SECRETS {
        for form in secret_forms(secret, &["x-token-auth"]) {
            assert!(
                !config.contains(&form) && !module.contains(&form),
                "{form} still on disk"
            );
        }
    }
    // git still reads it, and it means what it meant, minus the secrets.
    let listed = run_git(&repo, &["config", "--list"]);
    assert!(
        listed.contains("url.https://bitbucket.org/.insteadof=https://bitbucket.org/"),
        "{listed}"
    );

    let again = scrub(&bb, &[&repo.display().to_string()]);
    assert_eq!(again.code(), 0, "{}", again.describe());
    assert!(
        again.stdout.contains("no Bitbucket credentials found"),
        "{}",
        again.stdout
    );
    assert_eq!(
        snapshot(&repo),
        (config, module),
        "the second run changed something"
    );
}

#[test]
fn extra_hosts_are_scrubbed_too() {
    let bb = Bb::new();
    let repo = fixture(&bb);
    let run = scrub(&bb, &["--host", "[::1]:7990", &repo.display().to_string()]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    let (config, _) = snapshot(&repo);
    assert!(
        config.contains("url = http://jdoe@[::1]:7990/scm/acme/app.git"),
        "{config}"
    );
    assert!(!config.contains(V6_SECRET));
}

#[test]
fn global_config_and_git_credentials_lose_only_bitbucket_entries() {
    let bb = Bb::new();
    let gitconfig = bb.home().join(".gitconfig");
    std::fs::write(&gitconfig, format!("[user]\n\tname = CI\n[url \"https://x-token-auth:{INSTEADOF_TOKEN}@bitbucket.org/\"]\n\tinsteadOf = https://bitbucket.org/\n")).expect("gitconfig");
    let credentials = bb.home().join(".git-credentials");
    std::fs::write(
        &credentials,
        format!("https://jdoe:{APP_PASSWORD}@bitbucket.org\nhttps://octo:{GITHUB_SECRET}@github.com\nhttps://x-token-auth:{MODULE_TOKEN}@BITBUCKET.ORG:443\n"),
    )
    .expect("credentials");
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    let check = scrub(&bb, &["--global", "--check"]);
    assert_eq!(check.code(), 1, "{}", check.describe());
    assert!(
        check.stdout.contains(".git-credentials: line 1")
            && check.stdout.contains(".git-credentials: line 3"),
        "{}",
        check.stdout
    );
    assert_output_clean(&check);

    let run = scrub(&bb, &["--global"]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert_eq!(
        std::fs::read_to_string(&credentials).expect("read"),
        format!("https://octo:{GITHUB_SECRET}@github.com\n")
    );
    assert_eq!(
        std::fs::metadata(&credentials)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777,
        0o600,
        "mode kept"
    );
    let global = std::fs::read_to_string(&gitconfig).expect("read");
    assert!(
        global.contains("[url \"https://bitbucket.org/\"]") && global.contains("name = CI"),
        "{global}"
    );
    assert_output_clean(&run);
}

#[test]
fn a_concurrent_writer_holding_the_lock_is_respected_and_nothing_is_lost() {
    let bb = Bb::new();
    let repo = fixture(&bb);
    let before = snapshot(&repo);
    let lock = repo.join(".git/config.lock");
    std::fs::write(&lock, "another writer").expect("lock");
    let run = scrub(&bb, &[&repo.display().to_string()]);
    assert_eq!(run.code(), 2, "{}", run.describe());
    assert!(
        run.stderr.contains("another process is writing it"),
        "{}",
        run.describe()
    );
    assert!(
        run.stderr.contains("nothing was lost"),
        "{}",
        run.describe()
    );
    assert_eq!(snapshot(&repo).0, before.0, "the locked file was changed");
    assert_eq!(
        std::fs::read_to_string(&lock).expect("lock"),
        "another writer",
        "someone else's lock was touched"
    );
    assert_output_clean(&run);
}

#[test]
#[ignore = "needs root"]
fn a_read_only_file_system_is_a_clear_error_and_nothing_is_lost() {
    crate::support::require_root();
    let bb = Bb::new();
    let repo = fixture(&bb);
    let before = snapshot(&repo);
    let git_dir = repo.join(".git").display().to_string();
    let exe = assert_cmd::cargo::cargo_bin!("bbinject")
        .display()
        .to_string();
    let script = format!(
        "mount --bind '{git_dir}' '{git_dir}' && mount -o remount,bind,ro '{git_dir}' && '{exe}' scrub '{}'",
        repo.display()
    );
    let output = bb
        .program("unshare")
        .args(["--mount", "sh", "-c", &script])
        .output()
        .expect("unshare");
    let run = Run::from(output);
    assert_eq!(run.code(), 2, "{}", run.describe());
    assert!(
        run.stderr.contains("cannot be written") && run.stderr.contains("nothing was changed"),
        "{}",
        run.describe()
    );
    assert!(
        run.stdout.contains("could NOT remove")
            && run.stdout.contains("0 of 6 credential(s) removed"),
        "{}",
        run.stdout
    );
    assert_eq!(
        snapshot(&repo),
        before,
        "a file changed on a read-only mount"
    );
    assert_output_clean(&run);
}

#[test]
fn json_output_names_file_location_host_kind_and_preview() {
    let bb = Bb::new();
    let repo = fixture(&bb);
    let run = scrub(
        &bb,
        &["--check", "--format", "json", &repo.display().to_string()],
    );
    assert_eq!(run.code(), 1, "{}", run.describe());
    let report = run.json();
    assert_eq!(report["ok"], false);
    let findings = report["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 6, "{report:#}");
    let origin = findings
        .iter()
        .find(|f| f["location"] == "remote.origin.url")
        .expect("origin");
    assert_eq!(origin["host"], "bitbucket.org");
    assert_eq!(origin["kind"], "app_password");
    assert_eq!(origin["preview"], "ATBB… (32 chars)");
    assert_output_clean(&run);
}

#[test]
fn worktree_configs_are_found_from_either_side() {
    let bb = Bb::new();
    let repo = bb.path("main-repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    run_git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(repo.join("README"), "x\n").expect("write");
    run_git(&repo, &["add", "README"]);
    run_git(
        &repo,
        &[
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-qm",
            "x",
        ],
    );
    run_git(&repo, &["config", "extensions.worktreeConfig", "true"]);
    let worktree = bb.path("wt");
    run_git(
        &repo,
        &[
            "worktree",
            "add",
            "--quiet",
            worktree.to_str().expect("utf8"),
            "-b",
            "wt",
        ],
    );
    let url = format!("https://x-token-auth:{MODULE_TOKEN}@bitbucket.org/acme/app.git");
    run_git(
        &worktree,
        &["config", "--worktree", "remote.origin.pushurl", &url],
    );
    let worktree_config = repo.join(".git/worktrees/wt/config.worktree");
    assert!(
        std::fs::read_to_string(&worktree_config)
            .expect("config.worktree")
            .contains(MODULE_TOKEN)
    );

    // From the main repository, and from the worktree (where .git is a file).
    let run = scrub(&bb, &["--check", &repo.display().to_string()]);
    assert_eq!(run.code(), 1, "{}", run.describe());
    assert!(
        run.stdout
            .contains("config.worktree: remote.origin.pushurl"),
        "{}",
        run.stdout
    );
    let run = scrub(&bb, &[&worktree.display().to_string()]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    let after = std::fs::read_to_string(&worktree_config).expect("config.worktree");
    assert!(
        after.contains("pushurl = https://bitbucket.org/acme/app.git"),
        "{after}"
    );
    assert!(!after.contains(MODULE_TOKEN));
    assert_output_clean(&run);
}
