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

/// A fresh repository with `config` appended to its `.git/config`.
fn repo_with(bb: &Bb, name: &str, config: &str) -> PathBuf {
    let repo = bb.path(name);
    std::fs::create_dir_all(&repo).expect("mkdir");
    run_git(&repo, &["init", "--quiet"]);
    let path = repo.join(".git/config");
    let mut text = std::fs::read_to_string(&path).expect("config");
    text.push_str(config);
    std::fs::write(&path, text).expect("write");
    repo
}

#[test]
fn an_unscoped_extra_header_and_a_bare_insteadof_are_reported_not_a_panic() {
    let bb = Bb::new();
    let repo = repo_with(
        &bb,
        "r",
        &format!(
            "[http]\n\textraHeader = Authorization: Bearer {HEADER_TOKEN}\n[url]\n\tinsteadOf = https://u:p@bitbucket.org/\n"
        ),
    );
    let path = repo.display().to_string();
    let check = scrub(&bb, &["--check", &path]);
    assert_eq!(check.code(), 1, "{}", check.describe());
    assert!(
        check
            .stdout
            .contains("http.extraheader: found a credential for every host"),
        "{}",
        check.describe()
    );
    assert!(!check.stderr.contains("panicked"), "{}", check.describe());
    let fix = scrub(&bb, &[&path]);
    assert_eq!(fix.code(), 0, "{}", fix.describe());
    let config = std::fs::read_to_string(repo.join(".git/config")).expect("read");
    assert!(!config.contains(HEADER_TOKEN), "{config}");
    // `url.insteadOf` without a base is no rule git applies: left alone.
    assert!(
        config.contains("insteadOf = https://u:p@bitbucket.org/"),
        "{config}"
    );
    assert_output_clean(&fix);
}

#[test]
fn a_location_never_shows_a_password_however_short() {
    let bb = Bb::new();
    let repo = repo_with(
        &bb,
        "r",
        "[url \"https://jdoe:p@bitbucket.org/\"]\n\tinsteadOf = bb:\n",
    );
    let run = scrub(
        &bb,
        &["--check", "--format", "json", &repo.display().to_string()],
    );
    assert_eq!(run.code(), 1, "{}", run.describe());
    let location = run.json()["findings"][0]["location"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(location, "url.https://jdoe:****@bitbucket.org/.insteadof");
    assert!(!run.stdout.contains("jdoe:p@"), "{}", run.describe());
}

/// Runs `writer` (a shell loop printing one line per acknowledged write) for
/// as long as `scrubs` scrub runs take, and returns the acknowledged values.
fn beside_a_writer(bb: &Bb, writer: &str, scrub_args: &[&str], scrubs: usize) -> Vec<String> {
    let stop = bb.path("stop");
    let child = bb
        .program("sh")
        .args(["-c", writer])
        .env("STOP", &stop)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("writer");
    let mut failures = Vec::new();
    for _ in 0..scrubs {
        let run = scrub(bb, scrub_args);
        assert!(!run.stderr.contains("panicked"), "{}", run.describe());
        if run.code() != 0 {
            failures.push(run.describe());
        }
        assert_output_clean(&run);
    }
    std::fs::write(&stop, "").expect("stop");
    let output = child.wait_with_output().expect("writer");
    // A scrub may give up on a lock the writer holds; it must say so.
    for failure in &failures {
        assert!(
            failure.contains("another process is writing it"),
            "{failure}"
        );
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_concurrent_git_config_writer_loses_nothing() {
    let bb = Bb::new();
    let repo = repo_with(&bb, "r", "");
    let dir = repo.display().to_string();
    // Each round plants a credential (so scrub has something to write) and
    // adds a value; only writes git acknowledged are counted.
    let writer = format!(
        "i=0; while [ ! -e \"$STOP\" ]; do i=$((i+1)); \
         git -C '{dir}' config --add remote.r$i.url https://x-token-auth:{MODULE_TOKEN}@bitbucket.org/a/b.git 2>/dev/null; \
         git -C '{dir}' config --add test.value v$i 2>/dev/null && echo v$i; done"
    );
    let acknowledged = beside_a_writer(&bb, &writer, &[&dir], 40);
    assert!(
        acknowledged.len() > 20,
        "the writer hardly ran: {}",
        acknowledged.len()
    );
    let final_run = scrub(&bb, &[&dir]);
    assert_eq!(final_run.code(), 0, "{}", final_run.describe());
    let output = run_git(&repo, &["config", "--get-all", "test.value"]);
    let kept: Vec<&str> = output.lines().collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|v| !kept.contains(&v.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost: {lost:?}",
        lost.len(),
        acknowledged.len()
    );
    let config = std::fs::read_to_string(repo.join(".git/config")).expect("read");
    assert!(!config.contains(MODULE_TOKEN), "a credential is left");
}

#[test]
fn a_concurrent_credential_store_loses_nothing() {
    let bb = Bb::new();
    let credentials = bb.home().join(".git-credentials");
    std::fs::write(&credentials, "").expect("credentials");
    let writer = format!(
        "i=0; while [ ! -e \"$STOP\" ]; do i=$((i+1)); \
         printf \"protocol=https\\nhost=bitbucket.org\\nusername=u$i\\npassword={MODULE_TOKEN}\\n\\n\" | git credential-store store 2>/dev/null; \
         printf \"protocol=https\\nhost=github.com\\nusername=u$i\\npassword=gh\\n\\n\" | git credential-store store 2>/dev/null && echo u$i; done"
    );
    let acknowledged = beside_a_writer(&bb, &writer, &["--global"], 40);
    assert!(
        acknowledged.len() > 20,
        "the writer hardly ran: {}",
        acknowledged.len()
    );
    let final_run = scrub(&bb, &["--global"]);
    assert_eq!(final_run.code(), 0, "{}", final_run.describe());
    let text = std::fs::read_to_string(&credentials).expect("read");
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|u| !text.contains(&format!("https://{u}:gh@github.com\n")))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged lines lost: {lost:?}",
        lost.len(),
        acknowledged.len()
    );
    assert!(!text.contains(MODULE_TOKEN), "a credential is left");
}

#[test]
fn a_symlinked_config_is_written_through_the_link() {
    let bb = Bb::new();
    let repo = repo_with(&bb, "r", "");
    let real = bb.path("shared-config");
    let config = repo.join(".git/config");
    let mut text = std::fs::read_to_string(&config).expect("read");
    text.push_str(&format!(
        "[remote \"origin\"]\n\turl = https://jdoe:{APP_PASSWORD}@bitbucket.org/acme/app.git\n"
    ));
    std::fs::write(&real, text).expect("write");
    std::fs::remove_file(&config).expect("rm");
    std::os::unix::fs::symlink(&real, &config).expect("symlink");
    let run = scrub(&bb, &[&repo.display().to_string()]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(
        run.stdout.contains("removed a credential"),
        "{}",
        run.describe()
    );
    assert!(
        std::fs::symlink_metadata(&config)
            .expect("meta")
            .file_type()
            .is_symlink(),
        "the link was replaced by a file"
    );
    let after = std::fs::read_to_string(&real).expect("read");
    assert!(
        !after.contains(APP_PASSWORD),
        "the target keeps the secret:\n{after}"
    );
    assert!(
        after.contains("url = https://jdoe@bitbucket.org/acme/app.git"),
        "{after}"
    );
    assert_output_clean(&run);
}

#[test]
fn a_symlink_loop_under_modules_ends_and_a_gitdir_outside_is_named() {
    let bb = Bb::new();
    let repo = repo_with(&bb, "r", "");
    let modules = repo.join(".git/modules/lib");
    std::fs::create_dir_all(&modules).expect("mkdir");
    std::fs::write(modules.join("config"), format!("[remote \"origin\"]\n\turl = https://x-token-auth:{MODULE_TOKEN}@bitbucket.org/a/lib.git\n")).expect("write");
    std::os::unix::fs::symlink(repo.join(".git/modules"), modules.join("loop")).expect("symlink");
    // A work tree whose .git file points at the repository above.
    let linked = bb.path("linked");
    std::fs::create_dir_all(&linked).expect("mkdir");
    std::fs::write(
        linked.join(".git"),
        format!("gitdir: {}\n", repo.join(".git").display()),
    )
    .expect("write");
    let output = bb
        .program("timeout")
        .args(["20"])
        .arg(assert_cmd::cargo::cargo_bin!("bbinject"))
        .args(["scrub", "--check", &linked.display().to_string()])
        .output()
        .expect("run");
    let run = Run::from(output);
    assert_eq!(run.code(), 1, "{}", run.describe());
    assert_eq!(
        run.stdout.matches("found a credential").count(),
        1,
        "{}",
        run.describe()
    );
    assert!(run.stderr.contains("not followed"), "{}", run.describe());
    assert!(
        run.stderr.contains("outside the path given"),
        "{}",
        run.describe()
    );
    assert_output_clean(&run);
}

#[test]
fn included_files_are_scrubbed_inside_the_repository_and_reported_outside_it() {
    let bb = Bb::new();
    let inside = format!(
        "[remote \"origin\"]\n\turl = https://jdoe:{APP_PASSWORD}@bitbucket.org/acme/app.git\n"
    );
    let outside_file = bb.path("team.gitconfig");
    std::fs::write(
        &outside_file,
        format!("[http]\n\textraHeader = Authorization: Bearer {HEADER_TOKEN}\n"),
    )
    .expect("write");
    let repo = repo_with(
        &bb,
        "r",
        &format!(
            "[include]\n\tpath = extra.config\n\tpath = {}\n",
            outside_file.display()
        ),
    );
    std::fs::write(repo.join(".git/extra.config"), &inside).expect("write");
    let path = repo.display().to_string();

    let check = scrub(&bb, &["--check", &path]);
    assert_eq!(check.code(), 1, "{}", check.describe());
    assert_eq!(
        check.stdout.matches("found a credential").count(),
        2,
        "{}",
        check.describe()
    );

    let fix = scrub(&bb, &[&path]);
    assert_eq!(fix.code(), 2, "{}", fix.describe());
    assert!(
        fix.stderr.contains("outside the paths given"),
        "{}",
        fix.describe()
    );
    assert!(
        fix.stdout.contains("1 of 2 credential(s) removed"),
        "{}",
        fix.describe()
    );
    let extra = std::fs::read_to_string(repo.join(".git/extra.config")).expect("read");
    assert!(!extra.contains(APP_PASSWORD), "{extra}");
    let outside = std::fs::read_to_string(&outside_file).expect("read");
    assert!(
        outside.contains(HEADER_TOKEN),
        "a file outside the repository was edited"
    );
    assert_output_clean(&fix);
}

#[test]
fn a_non_utf8_config_and_a_missing_path_say_what_is_wrong() {
    let bb = Bb::new();
    let repo = repo_with(&bb, "r", "");
    let config = repo.join(".git/config");
    let mut bytes = std::fs::read(&config).expect("read");
    bytes.extend_from_slice(b"[user]\n\tname = Ren\xe9\n");
    std::fs::write(&config, bytes).expect("write");
    let run = scrub(&bb, &[&repo.display().to_string()]);
    assert_eq!(run.code(), 2, "{}", run.describe());
    assert!(
        run.stderr.contains("is not UTF-8 text"),
        "{}",
        run.describe()
    );
    assert!(
        !run.stdout.contains("no Bitbucket credentials found"),
        "{}",
        run.describe()
    );

    let missing = bb.path("no-such-dir").display().to_string();
    let run = scrub(&bb, &[&missing]);
    assert_eq!(run.code(), 2, "{}", run.describe());
    assert!(
        run.stderr
            .contains(&format!("{missing}: no such file or directory")),
        "{}",
        run.describe()
    );
    assert!(
        !run.stderr.contains("not a git repository"),
        "{}",
        run.describe()
    );
    assert!(
        !run.stderr.contains("nothing was lost"),
        "{}",
        run.describe()
    );
    assert!(run.stdout.is_empty(), "{}", run.describe());
}
