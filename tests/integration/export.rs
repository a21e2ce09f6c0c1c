//! `bbinject export`: a detached broker for later commands, evaluated by real
//! shells, then real git clones.

use std::time::Duration;

use crate::support::git_server::{GitServer, create_repo};
use crate::support::{Bb, FAKE_ACCESS_TOKEN, assert_no_leak};

struct Setup {
    _root: tempfile::TempDir,
    server: GitServer,
    bb: Bb,
}

fn setup() -> Setup {
    let root = tempfile::tempdir().expect("tempdir");
    create_repo(root.path(), "acme/app", &[("README.md", b"app\n")]);
    let server = GitServer::builder(root.path())
        .user("x-token-auth", FAKE_ACCESS_TOKEN)
        .start();
    let bb = Bb::new().env("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN);
    std::fs::write(
        bb.home().join(".gitconfig"),
        "[credential]\n\thelper = store\n",
    )
    .expect("gitconfig");
    Setup {
        _root: root,
        server,
        bb,
    }
}

fn bin() -> String {
    assert_cmd::cargo::cargo_bin!("bbinject")
        .display()
        .to_string()
}

impl Setup {
    fn export(&self, extra: &str) -> String {
        format!(
            "'{}' export --no-preflight --git-url {} --ttl 60s {extra}",
            bin(),
            self.server.url()
        )
    }

    fn clone(&self, dir: &str) -> String {
        format!("git clone -q {}/acme/app.git {dir}", self.server.url())
    }

    fn runtime_dirs(&self) -> usize {
        std::fs::read_dir(self.bb.dir.path())
            .expect("readdir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("bbi-"))
            .count()
    }
}

#[test]
fn eval_in_sh_and_bash_then_clone_revoke_and_a_second_clone_fails_cleanly() {
    for shell in ["sh", "bash"] {
        let s = setup();
        let script = format!(
            "eval \"$({export})\" || exit 90\n\
             case \"$BBINJECT_SOCKET\" in \"$TMPDIR\"/bbi-*/s) ;; *) exit 89;; esac\n\
             ls -d \"$TMPDIR\"/bbi-* >/dev/null || exit 88\n\
             {clone_ok} || exit 91\n\
             '{bin}' export --revoke || exit 92\n\
             test ! -e \"$BBINJECT_SOCKET\" || exit 93\n\
             '{bin}' export --revoke || exit 95\n\
             {clone_fail} && exit 94\n\
             echo done",
            export = s.export(""),
            clone_ok = s.clone("first"),
            bin = bin(),
            clone_fail = s.clone("second"),
        );
        let run = s.bb.shell(shell, &script);
        assert_eq!(run.code(), 0, "{shell}: {}", run.describe());
        assert_eq!(run.stdout.trim(), "done");
        assert!(s.bb.path("first/README.md").exists());
        assert!(!s.bb.path("second/README.md").exists());
        assert!(
            run.stderr.contains("the bbinject broker has ended")
                && !run.stderr.contains("os error"),
            "{shell}: {}",
            run.describe()
        );
        // Revoking a broker that already ended is success (an always-run
        // cleanup step), said on stderr.
        assert!(
            run.stderr.contains("already ended; nothing to revoke"),
            "{shell}: {}",
            run.describe()
        );
        assert_eq!(s.runtime_dirs(), 0, "the broker's directory is removed");
        assert!(!s.bb.home().join(".git-credentials").exists());
        assert_no_leak(
            &run,
            s.bb.dir.path(),
            FAKE_ACCESS_TOKEN,
            &["x-token-auth"],
            &[],
        );
    }
}

#[test]
fn the_broker_outlives_the_shell_that_started_it_but_not_its_ttl() {
    let s = setup();
    // One shell writes the assignments and exits; the broker stays.
    let run =
        s.bb.shell("sh", &format!("{} --ttl 3s > env.sh", s.export("")));
    assert_eq!(run.code(), 0, "{}", run.describe());
    let exported = std::fs::read_to_string(s.bb.path("env.sh")).expect("env.sh");
    assert!(exported.contains("export GIT_ASKPASS="), "{exported}");
    // The broker's directory is where the caller's TMPDIR says, so the count
    // below that must reach 0 counts something.
    assert_eq!(s.runtime_dirs(), 1, "{exported}");
    assert!(!exported.contains(FAKE_ACCESS_TOKEN));
    // The detached broker got the secret over a pipe: its command line and
    // environment hold none.
    let brokers = std::process::Command::new("pgrep")
        .args(["-f", "bbinject broker"])
        .output()
        .expect("pgrep");
    let pids = String::from_utf8_lossy(&brokers.stdout).into_owned();
    assert!(!pids.trim().is_empty(), "no detached broker is running");
    for pid in pids.split_whitespace() {
        for file in ["cmdline", "environ"] {
            let bytes = std::fs::read(format!("/proc/{pid}/{file}")).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(FAKE_ACCESS_TOKEN),
                "/proc/{pid}/{file}"
            );
        }
    }
    // A later shell uses it.
    let run =
        s.bb.shell("sh", &format!(". ./env.sh && {}", s.clone("later")));
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(s.bb.path("later/README.md").exists());
    // After its TTL the broker and its directory are gone, and git fails cleanly.
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(s.runtime_dirs(), 0, "the broker outlived its TTL");
    let run =
        s.bb.shell("sh", &format!(". ./env.sh && {}", s.clone("too-late")));
    assert_ne!(run.code(), 0);
    assert!(
        run.stderr.contains("the bbinject broker has ended") && !run.stderr.contains("os error"),
        "{}",
        run.describe()
    );
    assert_no_leak(
        &run,
        s.bb.dir.path(),
        FAKE_ACCESS_TOKEN,
        &["x-token-auth"],
        &[],
    );
}

#[test]
fn the_broker_ends_after_max_uses() {
    let s = setup();
    let script = format!(
        "eval \"$({})\" && echo alive=$(ls -d \"$TMPDIR\"/bbi-* | wc -l) && {} && sleep 0.5 && test ! -e \"$BBINJECT_SOCKET\" && {}; echo \"exit=$?\"",
        s.export("--max-uses 1"),
        s.clone("one"),
        s.clone("two"),
    );
    let run = s.bb.shell("bash", &script);
    assert!(run.stdout.contains("alive=1"), "{}", run.describe());
    assert!(s.bb.path("one/README.md").exists(), "{}", run.describe());
    assert!(!s.bb.path("two/README.md").exists());
    assert!(!run.stdout.contains("exit=0"), "{}", run.describe());
    assert_eq!(s.runtime_dirs(), 0);
}

#[test]
fn awkward_temp_paths_survive_the_quoting() {
    let s = setup();
    let awkward = s.bb.path("it's a [dir]");
    std::fs::create_dir_all(&awkward).expect("mkdir");
    let script = format!(
        "export TMPDIR=\"{}\"; eval \"$({})\" && {} && '{}' export --revoke",
        awkward.display(),
        s.export(""),
        s.clone("quoted"),
        bin()
    );
    let run = s.bb.shell("bash", &script);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(s.bb.path("quoted/README.md").exists());
}

#[test]
fn every_format_prints_the_same_variables_and_no_secret() {
    let s = setup();
    for format in [
        "sh",
        "bash",
        "zsh",
        "fish",
        "powershell",
        "teamcity",
        "github",
        "dotenv",
    ] {
        let run = s.bb.shell(
            "sh",
            &format!("{} --format {format} --ttl 2s", s.export("")),
        );
        assert_eq!(run.code(), 0, "{format}: {}", run.describe());
        for name in [
            "GIT_ASKPASS",
            "BBINJECT_SOCKET",
            "BBINJECT_CAPABILITY",
            "GIT_TERMINAL_PROMPT",
            "GIT_CONFIG_COUNT",
        ] {
            assert!(
                run.stdout.contains(name),
                "{format}: {name} missing:\n{}",
                run.stdout
            );
        }
        assert_no_leak(
            &run,
            s.bb.dir.path(),
            FAKE_ACCESS_TOKEN,
            &["x-token-auth"],
            &[],
        );
    }
    // The caller's own GIT_CONFIG_COUNT is extended, not overwritten.
    let run = s.bb.shell(
        "sh",
        &format!("GIT_CONFIG_COUNT=2 {} --ttl 2s", s.export("")),
    );
    assert!(
        run.stdout.contains("export GIT_CONFIG_KEY_2="),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("GIT_CONFIG_KEY_0"), "{}", run.stdout);
    std::thread::sleep(Duration::from_millis(2500));
}

#[test]
fn revoke_without_a_broker_is_a_clear_error() {
    let s = setup();
    let run = s.bb.shell("sh", &format!("'{}' export --revoke", bin()));
    assert_eq!(run.code(), 2, "{}", run.describe());
    assert!(run.stderr.contains("cannot revoke"), "{}", run.describe());
}

#[test]
fn xdg_runtime_dir_is_where_the_broker_lives() {
    let s = setup();
    let xdg = s.bb.path("xdg");
    std::fs::create_dir_all(&xdg).expect("mkdir");
    let run = s.bb.shell(
        "sh",
        &format!(
            "export XDG_RUNTIME_DIR='{}'; eval \"$({})\" && echo \"$BBINJECT_SOCKET\" && '{}' export --revoke",
            xdg.display(),
            s.export(""),
            bin()
        ),
    );
    assert_eq!(run.code(), 0, "{}", run.describe());
    let socket = run.stdout.lines().next().unwrap_or_default();
    assert!(
        socket.starts_with(&format!("{}/bbi-", xdg.display())),
        "{}",
        run.describe()
    );
    assert_eq!(
        std::fs::read_dir(&xdg).expect("readdir").count(),
        0,
        "left behind"
    );
}

#[test]
fn revoke_inside_exec_is_refused_and_the_exec_broker_keeps_answering() {
    let s = setup();
    let script = format!(
        "'{bin}' export --revoke; echo \"revoke=$?\"; {clone}; echo \"clone=$?\"",
        bin = bin(),
        clone = s.clone("after"),
    );
    let run =
        s.bb.program(bin())
            .args([
                "exec",
                "--no-preflight",
                "--git-url",
                &s.server.url(),
                "--",
                "sh",
                "-c",
                &script,
            ])
            .output()
            .expect("run");
    let run = crate::support::Run::from(run);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(run.stdout.contains("revoke=2"), "{}", run.describe());
    assert!(run.stdout.contains("clone=0"), "{}", run.describe());
    assert!(
        run.stderr.contains("belongs to a running `bbinject exec`"),
        "{}",
        run.describe()
    );
    assert!(
        !run.stderr.contains("the broker was revoked"),
        "{}",
        run.describe()
    );
    assert!(s.bb.path("after/README.md").exists());
}

#[test]
fn a_broker_that_is_not_ready_in_time_is_stopped_and_the_reason_given() {
    let s = setup();
    // A copy of the binary at a path of this test's own, so the broker it
    // starts can be told from other tests' brokers.
    let exe = s.bb.path("bbinject-ready-test");
    std::fs::copy(bin(), &exe).expect("copy");
    let run = s.bb.shell(
        "sh",
        &format!(
            "BBINJECT_BROKER_READY_TIMEOUT_MS=0 '{}' export --no-preflight --git-url {} --ttl 60s",
            exe.display(),
            s.server.url()
        ),
    );
    assert_eq!(run.code(), 2, "{}", run.describe());
    assert!(
        run.stderr
            .contains("the detached broker did not start in time (0 ms); it was stopped"),
        "{}",
        run.describe()
    );
    assert!(run.stdout.is_empty(), "{}", run.describe());
    std::thread::sleep(Duration::from_millis(300));
    let left = std::process::Command::new("pgrep")
        .args(["-f", &exe.display().to_string()])
        .output()
        .expect("pgrep");
    assert!(
        left.stdout.is_empty(),
        "a broker was left running: {}",
        String::from_utf8_lossy(&left.stdout)
    );
    assert_eq!(s.runtime_dirs(), 0, "its directory was left behind");
    assert_no_leak(
        &run,
        s.bb.dir.path(),
        FAKE_ACCESS_TOKEN,
        &["x-token-auth"],
        &[exe],
    );
}

#[test]
fn assignments_that_cannot_be_written_stop_the_broker() {
    let s = setup();
    // `>> "$GITHUB_ENV"` on a full disk.
    let run = s.bb.shell(
        "sh",
        &format!(
            "export TMPDIR='{}'; {} >/dev/full",
            s.bb.dir.path().display(),
            s.export("")
        ),
    );
    assert_eq!(run.code(), 2, "{}", run.describe());
    assert!(
        run.stderr.contains("cannot write the assignments")
            && run.stderr.contains("the broker was stopped"),
        "{}",
        run.describe()
    );
    assert_eq!(s.runtime_dirs(), 0, "no broker is left holding the secret");
}

#[test]
fn a_revoke_with_another_capability_says_so() {
    let s = setup();
    let script = format!(
        "eval \"$({export})\" || exit 90\n\
         BBINJECT_CAPABILITY=00ff '{bin}' export --revoke; echo \"wrong=$?\"\n\
         '{bin}' export --revoke; echo \"right=$?\"",
        export = s.export(""),
        bin = bin(),
    );
    let run = s.bb.shell("sh", &script);
    assert!(run.stdout.contains("wrong=2"), "{}", run.describe());
    assert!(run.stdout.contains("right=0"), "{}", run.describe());
    assert!(
        run.stderr
            .contains("BBINJECT_CAPABILITY is not this broker's"),
        "{}",
        run.describe()
    );
    assert_eq!(s.runtime_dirs(), 0);
}

#[test]
fn a_line_break_in_the_runtime_directory_is_named() {
    let s = setup();
    let odd = s.bb.path("a\nb");
    std::fs::create_dir(&odd).expect("mkdir");
    let output =
        s.bb.command()
            .env("TMPDIR", &odd)
            .args(["export", "--no-preflight", "--git-url", &s.server.url()])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run");
    let run = crate::support::Run::from(output);
    assert_eq!(run.code(), 2, "{}", run.describe());
    assert!(
        run.stderr
            .contains("the value of `runtime_dir` has a line break or NUL"),
        "{}",
        run.describe()
    );
}
