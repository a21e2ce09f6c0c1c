//! `bbinject exec` against real git (both versions on the machine) and the
//! git smart-HTTP server: clones, pushes, submodules, refusals, signals, and
//! scans for the secret everywhere afterwards.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::git_server::{GitServer, create_repo, run_git};
use crate::support::{Bb, FAKE_ACCESS_TOKEN, Run, assert_no_leak, files_under, require_root};

const TOKEN_USER: &str = "x-token-auth";

/// The gits to run every scenario with: every distinct `git` on `PATH` (this
/// machine has git 2.47 in /usr/local/bin and Debian's 2.39 in /usr/bin).
fn gits() -> Vec<PathBuf> {
    let gits = crate::support::gits_on_path();
    assert!(
        !gits.is_empty(),
        "no git on PATH: these tests need git ≥ 2.31"
    );
    if gits.len() == 1 {
        eprintln!(
            "note: only one git on PATH ({}): the second-version runs are not done",
            gits[0].display()
        );
    }
    gits
}

struct Scenario {
    root: tempfile::TempDir,
    server: GitServer,
    bb: Bb,
    git: PathBuf,
}

impl Scenario {
    fn new(git: &Path) -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        create_repo(
            root.path(),
            "acme/app",
            &[("README.md", b"app\n"), ("src/main.c", b"int main(){}\n")],
        );
        let server = GitServer::builder(root.path())
            .user(TOKEN_USER, FAKE_ACCESS_TOKEN)
            .git(git)
            .start();
        // Most verbose logging, so the leak scans cover every log line too.
        let bb = Bb::new()
            .env("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN)
            .env("RUST_LOG", "trace");
        // A global credential.helper=store, as many agents have: it must never
        // get the secret.
        std::fs::write(
            bb.home().join(".gitconfig"),
            "[credential]\n\thelper = store\n[user]\n\tname = CI\n\temail = ci@example.invalid\n[init]\n\tdefaultBranch = main\n",
        )
        .expect("gitconfig");
        Self {
            root,
            server,
            bb,
            git: git.to_path_buf(),
        }
    }

    fn url(&self, repo: &str) -> String {
        format!("{}/{repo}.git", self.server.url())
    }

    fn git(&self) -> String {
        self.git.display().to_string()
    }

    /// `bbinject exec --no-preflight --git-url <server> [extra] -- cmd…`
    fn exec(&self, extra: &[&str], cmd: &[&str]) -> Run {
        let mut args = vec!["exec", "--no-preflight", "--git-url"];
        let url = self.server.url();
        args.push(&url);
        args.extend_from_slice(extra);
        args.push("--");
        args.extend_from_slice(cmd);
        let mut command = self.bb.command();
        command.args(&args);
        run_command(command)
    }

    /// The secret is nowhere: output, the clone's .git, $HOME, the temp dir.
    fn assert_clean(&self, run: &Run) {
        assert_no_leak(
            run,
            self.bb.dir.path(),
            FAKE_ACCESS_TOKEN,
            &[TOKEN_USER],
            &[],
        );
        assert!(
            !self.bb.home().join(".git-credentials").exists(),
            "~/.git-credentials was written"
        );
        let leftovers: Vec<_> = std::fs::read_dir(self.bb.dir.path())
            .expect("readdir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("bbi-"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "runtime directory left behind: {leftovers:?}"
        );
    }
}

fn run_command(mut command: std::process::Command) -> Run {
    let output = command.stdin(Stdio::null()).output().expect("run");
    Run::from(output)
}

#[test]
fn clone_fetch_and_a_large_push_work_and_leave_no_secret_anywhere() {
    for git in gits() {
        let s = Scenario::new(&git);
        let run1 = s.exec(&[], &[&s.git(), "clone", &s.url("acme/app"), "clone"]);
        assert_eq!(run1.code(), 0, "{}: {}", git.display(), run1.describe());
        assert!(s.bb.path("clone/src/main.c").exists());

        let run2 = s.exec(&[], &[&s.git(), "-C", "clone", "fetch", "origin"]);
        assert_eq!(run2.code(), 0, "{}", run2.describe());

        // A push over 1 MiB (git sends it chunked): random, so it does not compress.
        let mut blob = vec![0u8; 1536 * 1024];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for b in blob.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        std::fs::write(s.bb.path("clone/big.bin"), &blob).expect("write");
        let git_s = s.git();
        let home = s.bb.home();
        let commit = std::process::Command::new(&git_s)
            .args(["-C", "clone", "add", "big.bin"])
            .current_dir(s.bb.dir.path())
            .env("HOME", &home)
            .status()
            .expect("add");
        assert!(commit.success());
        let commit = std::process::Command::new(&git_s)
            .args(["-C", "clone", "commit", "-qm", "big"])
            .current_dir(s.bb.dir.path())
            .env("HOME", &home)
            .env("GIT_CONFIG_GLOBAL", home.join(".gitconfig"))
            .status()
            .expect("commit");
        assert!(commit.success());
        let run3 = s.exec(&[], &[&s.git(), "-C", "clone", "push", "origin", "main"]);
        assert_eq!(run3.code(), 0, "{}", run3.describe());
        let pushed = run_git(
            &s.root.path().join("acme/app.git"),
            &["log", "--format=%s", "-1", "main"],
        );
        assert_eq!(pushed.trim(), "big", "the push reached the server");

        for run in [&run1, &run2, &run3] {
            s.assert_clean(run);
        }
        // Every request git made carried the credential the broker gave it.
        let seen = s.server.authorizations();
        assert!(!seen.is_empty());
        assert!(
            seen.iter()
                .all(|a| a == &format!("{TOKEN_USER}:{FAKE_ACCESS_TOKEN}")),
            "{seen:?}"
        );
    }
}

#[test]
fn the_childs_environment_and_command_line_hold_no_secret() {
    let s = Scenario::new(&gits()[0]);
    let env = s.exec(&[], &["env"]);
    assert_eq!(env.code(), 0, "{}", env.describe());
    assert!(env.stdout.contains("GIT_ASKPASS="), "{}", env.stdout);
    assert!(env.stdout.contains("BBINJECT_SOCKET="));
    assert!(env.stdout.contains("GIT_TERMINAL_PROMPT=0"));
    assert!(
        !env.stdout.contains("BITBUCKET_ACCESS_TOKEN"),
        "the variable must be removed"
    );
    s.assert_clean(&env);

    let cmdline = s.exec(
        &[],
        &[
            "sh",
            "-c",
            "tr '\\0' ' ' < /proc/$$/cmdline; echo; tr '\\0' ' ' < /proc/$PPID/cmdline",
        ],
    );
    assert_eq!(cmdline.code(), 0, "{}", cmdline.describe());
    assert!(
        cmdline.stdout.contains("bbinject exec"),
        "{}",
        cmdline.stdout
    );
    s.assert_clean(&cmdline);

    // --keep-env leaves the variable (for tools that read it themselves); its
    // value is still masked in the output.
    let kept = s.exec(&["--keep-env"], &["env"]);
    assert!(
        kept.stdout.contains("BITBUCKET_ACCESS_TOKEN=****"),
        "{}",
        kept.stdout
    );
    let unmasked = s.exec(&["--keep-env", "--no-redact"], &["env"]);
    assert!(
        unmasked
            .stdout
            .contains(&format!("BITBUCKET_ACCESS_TOKEN={FAKE_ACCESS_TOKEN}"))
    );
}

#[test]
fn the_askpass_shim_alone_and_the_helper_alone_each_work() {
    for git in gits() {
        let s = Scenario::new(&git);
        // Blank our helper entry (VALUE_1), keeping the scoped clear before it:
        // only GIT_ASKPASS is left, and the global credential.helper=store
        // stays cleared for this origin.
        let script = format!(
            "GIT_CONFIG_VALUE_1= '{}' clone {} via-askpass",
            s.git(),
            s.url("acme/app")
        );
        let askpass = s.exec(&["-v"], &["sh", "-c", &script]);
        assert_eq!(
            askpass.code(),
            0,
            "{}: {}",
            git.display(),
            askpass.describe()
        );
        assert!(s.bb.path("via-askpass/README.md").exists());
        // The Username prompt is only ever answered through askpass.
        assert!(
            askpass.stderr.contains("answered username request"),
            "{}",
            askpass.describe()
        );
        s.assert_clean(&askpass);

        // The helper alone, as `git credential fill` (git-lfs) uses it.
        let exe = assert_cmd::cargo::cargo_bin!("bbinject")
            .display()
            .to_string();
        let script = format!(
            "unset GIT_ASKPASS; printf 'protocol=http\\nhost=127.0.0.1:{}\\npath=acme/app.git\\n\\n' | GIT_CONFIG_COUNT=0 '{}' -c credential.helper= -c \"credential.helper=!'{exe}' credential\" credential fill",
            s.server.port(),
            s.git()
        );
        // --no-redact: this test must see the password git got.
        let helper = s.exec(&["--no-redact"], &["sh", "-c", &script]);
        assert_eq!(helper.code(), 0, "{}", helper.describe());
        // This is the one place the secret is meant to appear: git's own fill output.
        assert!(
            helper.stdout.contains(&format!("username={TOKEN_USER}")),
            "{}",
            helper.stdout
        );
        assert!(
            helper
                .stdout
                .contains(&format!("password={FAKE_ACCESS_TOKEN}")),
            "{}",
            helper.stdout
        );
        assert!(!s.bb.home().join(".git-credentials").exists());
    }
}

fn superproject(s: &Scenario, other: &GitServer) {
    let mut gitmodules = String::new();
    let work = tempfile::tempdir().expect("tempdir");
    run_git(work.path(), &["init", "--quiet", "--initial-branch=main"]);
    let mut subs: Vec<(String, String)> = (1..=4)
        .map(|i| {
            (
                format!("sub{i}"),
                format!("{}/acme/sub{i}.git", s.server.url()),
            )
        })
        .collect();
    subs.push(("foreign".into(), format!("{}/other/lib.git", other.url())));
    for (name, url) in &subs {
        let bare = if name == "foreign" {
            s.root.path().join("other-server/other/lib.git")
        } else {
            create_repo(
                s.root.path(),
                &format!("acme/{name}"),
                &[("README.md", name.as_bytes())],
            )
        };
        let sha = run_git(&bare, &["rev-parse", "main"]);
        run_git(
            work.path(),
            &[
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("160000,{},{name}", sha.trim()),
            ],
        );
        gitmodules.push_str(&format!(
            "[submodule \"{name}\"]\n\tpath = {name}\n\turl = {url}\n"
        ));
    }
    std::fs::write(work.path().join(".gitmodules"), gitmodules).expect("gitmodules");
    run_git(work.path(), &["add", ".gitmodules"]);
    run_git(work.path(), &["commit", "--quiet", "-m", "super"]);
    let bare = s.root.path().join("acme/super.git");
    run_git(
        s.root.path(),
        &[
            "init",
            "--quiet",
            "--bare",
            "--initial-branch=main",
            bare.to_str().expect("utf8"),
        ],
    );
    run_git(
        work.path(),
        &["push", "--quiet", bare.to_str().expect("utf8"), "main"],
    );
}

#[test]
fn submodules_from_the_same_host_authenticate_in_parallel_and_a_foreign_host_gets_nothing() {
    for git in gits() {
        let s = Scenario::new(&git);
        let other_root = s.root.path().join("other-server");
        create_repo(&other_root, "other/lib", &[("README.md", b"foreign\n")]);
        let other = GitServer::builder(&other_root)
            .user(TOKEN_USER, FAKE_ACCESS_TOKEN)
            .git(&git)
            .start();
        superproject(&s, &other);

        let clone = s.exec(
            &[],
            &[&s.git(), "clone", "--quiet", &s.url("acme/super"), "super"],
        );
        assert_eq!(clone.code(), 0, "{}", clone.describe());
        let update = s.exec(
            &["-v"],
            &[
                &s.git(),
                "-C",
                "super",
                "submodule",
                "update",
                "--init",
                "--jobs",
                "4",
                "sub1",
                "sub2",
                "sub3",
                "sub4",
            ],
        );
        assert_eq!(update.code(), 0, "{}: {}", git.display(), update.describe());
        for i in 1..=4 {
            assert!(
                s.bb.path(&format!("super/sub{i}/README.md")).exists(),
                "{}: sub{i}\n{}",
                git.display(),
                update.describe()
            );
        }
        // One answer per submodule clone, logged without the secret.
        assert!(
            update.stderr.matches("answered credential request").count() >= 4,
            "{}",
            update.stderr
        );

        let foreign = s.exec(
            &[],
            &[
                &s.git(),
                "-C",
                "super",
                "submodule",
                "update",
                "--init",
                "foreign",
            ],
        );
        assert_ne!(
            foreign.code(),
            0,
            "the foreign submodule must fail\n{}",
            foreign.describe()
        );
        assert!(!s.bb.path("super/foreign/README.md").exists());
        assert!(
            foreign.stderr.contains("is not on the allow-list"),
            "{}",
            foreign.describe()
        );
        assert!(
            other.authorizations().is_empty(),
            "foreign server saw {:?}",
            other.authorizations()
        );
        for run in [&clone, &update, &foreign] {
            s.assert_clean(run);
        }
    }
}

#[test]
fn usernames_and_passwords_in_urls() {
    for git in gits() {
        let s = Scenario::new(&git);
        let with_user = s.url("acme/app").replace("http://", "http://alice@");
        let run = s.exec(&[], &[&s.git(), "clone", &with_user, "with-user"]);
        assert_eq!(run.code(), 0, "{}: {}", git.display(), run.describe());
        assert!(
            run.stderr.contains("the URL names user alice"),
            "{}",
            run.describe()
        );
        s.assert_clean(&run);

        let with_password = s
            .url("acme/app")
            .replace("http://", "http://x-token-auth:FAKE-in-url@");
        let run = s.exec(&[], &[&s.git(), "clone", &with_password, "with-password"]);
        assert_ne!(run.code(), 0, "{}", run.describe());
        assert!(
            run.stderr.contains("credentialsInUrl")
                || run.stderr.contains("credentials in URL")
                || run.stderr.contains("plaintext credentials"),
            "{}: {}",
            git.display(),
            run.describe()
        );
        assert!(
            s.server
                .authorizations()
                .iter()
                .all(|a| !a.contains("FAKE-in-url"))
        );
    }
}

#[test]
fn max_uses_is_enforced() {
    let s = Scenario::new(&gits()[0]);
    let script = format!(
        "'{g}' clone -q {u} one && '{g}' clone -q {u} two",
        g = s.git(),
        u = s.url("acme/app")
    );
    let run = s.exec(&["--max-uses", "1"], &["sh", "-c", &script]);
    assert_ne!(run.code(), 0, "{}", run.describe());
    assert!(s.bb.path("one/README.md").exists());
    assert!(!s.bb.path("two/README.md").exists());
    assert!(
        run.stderr.contains("--max-uses 1 reached"),
        "{}",
        run.describe()
    );
    s.assert_clean(&run);
}

#[test]
fn a_capability_replayed_after_exec_ended_reaches_no_one() {
    let s = Scenario::new(&gits()[0]);
    let run = s.exec(&[], &["sh", "-c", "env > saved-env"]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    let saved = std::fs::read_to_string(s.bb.path("saved-env")).expect("env");
    let value = |k: &str| {
        saved
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .expect(k)
            .to_owned()
    };
    let socket = PathBuf::from(value("BBINJECT_SOCKET"));
    assert!(!socket.exists(), "socket left behind");
    assert!(
        !socket.parent().expect("dir").exists(),
        "runtime dir left behind"
    );
    let mut helper = s.bb.command();
    helper
        .args(["credential", "get"])
        .env("BBINJECT_SOCKET", &socket)
        .env("BBINJECT_CAPABILITY", value("BBINJECT_CAPABILITY"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = helper.spawn().expect("spawn");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"protocol=https\nhost=bitbucket.org\n\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("password="), "{stdout}");
    assert!(stdout.contains("quit=1"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("the bbinject broker has ended"));
}

#[test]
#[ignore = "needs root"]
fn a_connection_from_another_uid_is_refused() {
    require_root();
    let s = Scenario::new(&gits()[0]);
    let exe = assert_cmd::cargo::cargo_bin!("bbinject")
        .display()
        .to_string();
    // The child drops to nobody and asks the broker directly: first the 0700
    // directory stops it; then, with the directory and socket opened up by
    // root, the broker's SO_PEERCRED check does.
    let ask = format!(
        "printf 'protocol=http\\nhost=127.0.0.1:{port}\\npath=acme/app.git\\n\\n' | setpriv --reuid=65534 --regid=65534 --clear-groups '{exe}' credential get",
        port = s.server.port()
    );
    let script = format!(
        "{ask}; echo ---; chmod 755 \"$(dirname \"$BBINJECT_SOCKET\")\"; chmod 666 \"$BBINJECT_SOCKET\"; {ask}"
    );
    let run = s.exec(&[], &["sh", "-c", &script]);
    assert!(!run.stdout.contains("password="), "{}", run.describe());
    assert_eq!(
        run.stdout.matches("quit=1").count(),
        2,
        "{}",
        run.describe()
    );
    assert!(
        run.stderr
            .contains("refused a connection from another user"),
        "{}",
        run.describe()
    );
    s.assert_clean(&run);
}

#[test]
#[ignore = "needs root"]
fn the_broker_cannot_be_read_through_proc_by_its_own_child() {
    require_root();
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::Builder::new()
        .prefix("bbd")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let exe = assert_cmd::cargo::cargo_bin!("bbinject");
    let script = "cat /proc/$$/environ > /dev/null && echo own-readable; \
                  cat /proc/$PPID/environ > /dev/null 2>&1 && echo broker-READABLE || echo broker-denied;";
    let output = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(exe)
        .args(["exec", "--no-preflight", "--", "sh", "-c", script])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("TMPDIR", dir.path())
        .env("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("own-readable"),
        "control: a process can read its own environ\n{stdout}"
    );
    // An ordinary same-uid process's environ is readable (see the control
    // above); the broker's is not, because it is not dumpable.
    assert!(stdout.contains("broker-denied"), "{stdout}");
}

#[test]
fn exit_codes_pass_through_and_a_missing_command_is_127() {
    let s = Scenario::new(&gits()[0]);
    assert_eq!(s.exec(&[], &["sh", "-c", "exit 42"]).code(), 42);
    assert_eq!(s.exec(&[], &["true"]).code(), 0);
    let killed = s.exec(&[], &["sh", "-c", "kill -KILL $$"]);
    assert_eq!(killed.code(), 137, "{}", killed.describe());
    let missing = s.exec(&[], &["no-such-command-bbinject"]);
    assert_eq!(missing.code(), 127, "{}", missing.describe());
    assert!(
        missing
            .stderr
            .contains("cannot run `no-such-command-bbinject`: command not found"),
        "{}",
        missing.describe()
    );
    s.assert_clean(&missing);
}

#[test]
fn sigterm_reaches_the_child_and_nothing_is_left_behind() {
    let s = Scenario::new(&gits()[0]);
    let mut command = s.bb.command();
    command
        .args([
            "exec",
            "--no-preflight",
            "--",
            "sh",
            "-c",
            "trap 'echo got-term; exit 143' TERM; echo ready; while :; do sleep 0.1; done",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn");
    let started = Instant::now();
    let mut stdout = child.stdout.take().expect("stdout");
    let mut buf = [0u8; 6];
    use std::io::Read as _;
    stdout.read_exact(&mut buf).expect("ready");
    assert_eq!(&buf, b"ready\n");
    let runtime_dirs = || {
        std::fs::read_dir(s.bb.dir.path())
            .expect("readdir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("bbi-"))
            .count()
    };
    assert_eq!(
        runtime_dirs(),
        1,
        "the broker's directory exists while the child runs"
    );
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let status = child.wait().expect("wait");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("read");
    assert_eq!(status.code(), Some(143), "{rest}");
    assert!(
        rest.contains("got-term"),
        "the child saw the signal: {rest}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(runtime_dirs(), 0, "runtime directory left behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_preflight_stops_exec_before_the_child_starts() {
    use crate::support::bitbucket_mock::{self as bb, json};
    let s = Scenario::new(&gits()[0]);
    let api = bb::start().await;
    bb::on_get(
        &api,
        "repositories/acme/app",
        None,
        json(401, "error-401-token-invalid.json"),
    )
    .await;
    let mut command = s.bb.command();
    command.args([
        "exec",
        "--repo",
        "acme/app",
        "--retries",
        "0",
        "--api-url",
        &bb::api_url(&api),
        "--git-url",
        &s.server.url(),
        "--",
        "touch",
        "child-ran",
    ]);
    let run = run_command(command);
    assert_eq!(run.code(), 3, "{}", run.describe());
    assert!(!s.bb.path("child-ran").exists(), "the child must not start");
    assert!(
        run.stderr
            .contains("preflight failed (exit 3); not starting touch"),
        "{}",
        run.describe()
    );
    s.assert_clean(&run);

    // With a passing preflight the child runs.
    let api = bb::start().await;
    bb::on_get(
        &api,
        "repositories/acme/app",
        None,
        bb::authenticated(bb::private_repository(), "repo_access_token"),
    )
    .await;
    let mut command = s.bb.command();
    command.args([
        "exec",
        "--repo",
        "acme/app",
        "--api-url",
        &bb::api_url(&api),
        "--git-url",
        &s.server.url(),
        "--",
        "touch",
        "child-ran",
    ]);
    let run2 = run_command(command);
    assert_eq!(run2.code(), 0, "{}", run2.describe());
    assert!(s.bb.path("child-ran").exists());
    let _ = files_under(s.bb.dir.path());
}

#[test]
fn plain_http_hosts_and_lookalikes_cannot_be_allowed() {
    let s = Scenario::new(&gits()[0]);
    let mut command = s.bb.command();
    command.args([
        "exec",
        "--no-preflight",
        "--host",
        "http://bitbucket.org",
        "--",
        "true",
    ]);
    let refused = run_command(command);
    assert_eq!(refused.code(), 2, "{}", refused.describe());
    assert!(
        refused
            .stderr
            .contains("--host `http://bitbucket.org` uses plain http://"),
        "{}",
        refused.describe()
    );

    // The same server under another name is another origin: refused when git asks.
    let other = s.server.url().replace("127.0.0.1", "localhost");
    let run = s.exec(
        &[],
        &[
            &s.git(),
            "clone",
            &format!("{other}/acme/app.git"),
            "lookalike",
        ],
    );
    assert_ne!(run.code(), 0);
    assert!(run.stderr.contains("host localhost:"), "{}", run.describe());
    assert!(
        run.stderr.contains("is not on the allow-list"),
        "{}",
        run.describe()
    );
    assert!(
        s.server.authorizations().is_empty(),
        "{:?}",
        s.server.authorizations()
    );
}

#[test]
fn a_config_routes_each_repository_to_its_own_credential() {
    const OTHER_TOKEN: &str = "ATCTT3xFAKE-second-token-0000000000";
    let git = gits()[0].clone();
    let root = tempfile::tempdir().expect("tempdir");
    create_repo(root.path(), "acme/app", &[("README.md", b"app\n")]);
    create_repo(root.path(), "partner/lib", &[("README.md", b"lib\n")]);
    let server = GitServer::builder(root.path())
        .user(TOKEN_USER, FAKE_ACCESS_TOKEN)
        .user("x-bitbucket-api-token-auth", OTHER_TOKEN)
        .git(&git)
        .start();
    let bb = Bb::new();
    let config = "credentials:\n  - name: acme\n    kind: access_token\n    match: [acme]\n    secret_env: ACME_TOKEN\n  - name: partner\n    kind: api_token\n    match: [partner/lib]\n    secret_env: PARTNER_TOKEN\n";
    let config_path = bb.file("bbinject.yaml", config.as_bytes(), 0o600);
    let mut command = bb.command();
    command
        .env("ACME_TOKEN", FAKE_ACCESS_TOKEN)
        .env("PARTNER_TOKEN", OTHER_TOKEN)
        .args(["exec", "--config", &config_path.display().to_string(), "--no-preflight"])
        .args(["--git-url", &server.url(), "--"])
        .args(["sh", "-c"])
        .arg(format!(
            "env | grep -c _TOKEN= ; '{g}' clone -q {u}/acme/app.git app && '{g}' clone -q {u}/partner/lib.git lib",
            g = git.display(),
            u = server.url()
        ));
    let run = run_command(command);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert_eq!(
        run.stdout.trim(),
        "0",
        "the config's secret_env variables are removed from the child"
    );
    let acme = server.authorizations_for("acme/app");
    let partner = server.authorizations_for("partner/lib");
    assert!(
        !acme.is_empty()
            && acme
                .iter()
                .all(|a| a == &format!("{TOKEN_USER}:{FAKE_ACCESS_TOKEN}")),
        "{acme:?}"
    );
    assert!(
        !partner.is_empty()
            && partner
                .iter()
                .all(|a| a == &format!("x-bitbucket-api-token-auth:{OTHER_TOKEN}")),
        "{partner:?}"
    );
    assert_no_leak(&run, bb.dir.path(), FAKE_ACCESS_TOKEN, &[TOKEN_USER], &[]);
    assert_no_leak(
        &run,
        bb.dir.path(),
        OTHER_TOKEN,
        &["x-bitbucket-api-token-auth"],
        &[],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oauth_consumer_clones_with_the_token_it_was_exchanged_for() {
    use crate::support::bitbucket_mock::{self as bb, json};
    use wiremock::matchers::{method, path};
    const EXCHANGED: &str = "REDACTED-ACCESS-TOKEN";
    let git = gits()[0].clone();
    let root = tempfile::tempdir().expect("tempdir");
    create_repo(root.path(), "acme/app", &[("README.md", b"app\n")]);
    let server = GitServer::builder(root.path())
        .user(TOKEN_USER, EXCHANGED)
        .git(&git)
        .start();
    let api = bb::start().await;
    wiremock::Mock::given(method("POST"))
        .and(path("/site/oauth2/access_token"))
        .respond_with(json(200, "oauth-client-credentials-token.json"))
        // The preflight's token is handed to the broker: one exchange per run.
        .expect(1)
        .mount(&api)
        .await;
    let bearer = format!("Bearer {EXCHANGED}");
    let user = bb::authenticated(bb::fixture("user.json"), "oauth2");
    bb::on_get(&api, "user", Some(&bearer), user).await;
    let repo = bb::authenticated(bb::private_repository(), "oauth2");
    bb::on_get(&api, "repositories/acme/app", Some(&bearer), repo).await;
    let bb = Bb::new()
        .env("BITBUCKET_OAUTH_CLIENT_ID", "consumer-key")
        .env("BITBUCKET_OAUTH_CLIENT_SECRET", "FAKE-oauth-secret-0000");
    let mut command = bb.command();
    command.args([
        "exec",
        "--repo",
        "acme/app",
        "--api-url",
        &bb::api_url(&api),
        "--git-url",
        &server.url(),
        "--token-url",
        &format!("{}/site/oauth2/access_token", api.uri()),
        "--",
        &git.display().to_string(),
        "clone",
        "-q",
        &format!("{}/acme/app.git", server.url()),
        "app",
    ]);
    let run = run_command(command);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(bb.path("app/README.md").exists());
    assert!(
        server
            .authorizations()
            .iter()
            .all(|a| a == &format!("{TOKEN_USER}:{EXCHANGED}"))
    );
    assert_no_leak(&run, bb.dir.path(), EXCHANGED, &[TOKEN_USER], &[]);
    assert_no_leak(
        &run,
        bb.dir.path(),
        "FAKE-oauth-secret-0000",
        &["consumer-key"],
        &[],
    );
    api.verify().await;
}

#[test]
#[ignore = "needs root"]
fn as_pid_1_it_reaps_orphans() {
    require_root();
    let s = Scenario::new(&gits()[0]);
    // The subshell exits at once, so `sleep` is re-parented to PID 1 (bbinject);
    // if PID 1 did not reap it, it would be a zombie when the check runs.
    let script = "(sleep 0.2 &); sleep 0.8; n=0; \
                  for f in /proc/[0-9]*/stat; do read -r l < \"$f\" 2>/dev/null; \
                  case \"$l\" in *') Z '*) n=$((n+1));; esac; done; echo \"pid1=$PPID zombies=$n\"";
    let exe = assert_cmd::cargo::cargo_bin!("bbinject")
        .display()
        .to_string();
    let mut command = std::process::Command::new("unshare");
    command
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            &exe,
            "exec",
            "--no-preflight",
            "--",
            "sh",
            "-c",
            script,
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", s.bb.home())
        .env("TMPDIR", s.bb.dir.path())
        .env("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN);
    let run = run_command(command);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert_eq!(run.stdout.trim(), "pid1=1 zombies=0", "{}", run.describe());
    s.assert_clean(&run);
}

#[test]
fn without_a_repo_exec_says_once_at_info_level_what_would_prove_the_credential() {
    let base = || {
        Bb::new()
            .env("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN)
            .args([
                "exec",
                "--api-url",
                "http://127.0.0.1:9/2.0",
                "--retries",
                "0",
            ])
    };
    let quiet = base().args(["--", "true"]).run();
    assert_eq!(quiet.code(), 0, "{}", quiet.describe());
    assert!(quiet.stderr.is_empty(), "{}", quiet.describe());
    let verbose = base().args(["-v", "--", "true"]).run();
    assert_eq!(verbose.code(), 0, "{}", verbose.describe());
    let lines: Vec<&str> = verbose
        .stderr
        .lines()
        .filter(|l| l.contains("--repo"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", verbose.describe());
    assert!(lines[0].contains("INFO") && lines[0].contains("pass --repo WORKSPACE/SLUG"));
    assert!(
        !verbose.stderr.contains("warning"),
        "{}",
        verbose.describe()
    );
}

#[test]
#[ignore = "needs root"]
fn no_writable_runtime_directory_is_a_clear_error_before_the_command_starts() {
    require_root();
    // A private mount namespace where /tmp (the last fallback) is read-only
    // (bound onto itself, so the binary, which may live under /tmp, stays).
    let bb = Bb::new().env("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN);
    let exe = assert_cmd::cargo::cargo_bin!("bbinject")
        .display()
        .to_string();
    let script = format!(
        "mount --bind /tmp /tmp && mount -o remount,bind,ro /tmp && TMPDIR=/tmp '{exe}' exec --no-preflight -- echo started"
    );
    let run = Run::from(
        bb.program("unshare")
            .args(["--mount", "sh", "-c", &script])
            .output()
            .expect("unshare"),
    );
    assert_eq!(run.code(), 2, "{}", run.describe());
    assert!(!run.stdout.contains("started"), "{}", run.describe());
    assert!(
        run.stderr
            .contains("bbinject: error: cannot set up the broker: Read-only file system")
            && run
                .stderr
                .contains("hint: bbinject needs a private directory")
            && !run.stderr.contains("os error"),
        "{}",
        run.describe()
    );
}
