//! Builds longer than a token's life, and builds that cross a secret
//! rotation: OAuth tokens re-minted before they expire (one exchange however
//! many ask), git's `erase` after a 401 leading to a new token, secret files
//! re-read when they are replaced by an atomic rename, `password_expiry_utc`
//! told to the gits that understand it — and no token, old or new, anywhere.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::git_server::{GitServer, Users, create_repo};
use crate::support::{Bb, Run, assert_no_leak};

const TOKEN_USER: &str = "x-token-auth";
const CLIENT_SECRET: &str = "FAKE-oauth-client-secret-0000";

/// A token endpoint shaped like Bitbucket's (`POST …/access_token`, no
/// refresh token) that issues a new token on each exchange, which the git
/// server then accepts. `revoke_after` revokes each token that long after it
/// was issued, as its expiry would.
struct TokenEndpoint {
    server: wiremock::MockServer,
    exchanges: Arc<AtomicU32>,
    issued: Arc<Mutex<Vec<String>>>,
}

impl TokenEndpoint {
    async fn start(expires_in: u64, users: Users, revoke_after: Option<Duration>) -> Self {
        let server = wiremock::MockServer::start().await;
        let exchanges = Arc::new(AtomicU32::new(0));
        let issued = Arc::new(Mutex::new(Vec::new()));
        let (counted, recorded) = (exchanges.clone(), issued.clone());
        let run = std::process::id();
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .and(wiremock::matchers::path("/site/oauth2/access_token"))
            .respond_with(move |_: &wiremock::Request| {
                let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
                let token = format!("FAKE-minted-{run}-{n}-abcdefghijklmnop");
                users.accept(TOKEN_USER, &token);
                recorded.lock().expect("lock").push(token.clone());
                if let Some(after) = revoke_after {
                    let (users, token) = (users.clone(), token.clone());
                    std::thread::spawn(move || {
                        std::thread::sleep(after);
                        users.revoke(TOKEN_USER, &token);
                    });
                }
                wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({
                    "access_token": token,
                    "expires_in": expires_in,
                    "token_type": "bearer",
                    "scopes": "repository",
                }))
            })
            .mount(&server)
            .await;
        Self {
            server,
            exchanges,
            issued,
        }
    }

    fn url(&self) -> String {
        format!("{}/site/oauth2/access_token", self.server.uri())
    }

    fn exchanges(&self) -> u32 {
        self.exchanges.load(Ordering::SeqCst)
    }

    fn issued(&self) -> Vec<String> {
        self.issued.lock().expect("lock").clone()
    }
}

fn gits() -> Vec<PathBuf> {
    crate::support::gits_on_path()
}

/// `git version 2.47.3` → (2, 47).
fn git_version(git: &Path) -> (u32, u32) {
    let out = std::process::Command::new(git)
        .arg("--version")
        .output()
        .expect("git --version");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .split('.')
        .map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

struct World {
    server: GitServer,
    git: PathBuf,
}

impl World {
    fn new(git: &Path) -> Self {
        let root = tempfile::tempdir().expect("tempdir").keep();
        create_repo(&root, "acme/app", &[("README.md", b"app\n")]);
        let server = GitServer::builder(&root).git(git).start();
        Self {
            server,
            git: git.to_path_buf(),
        }
    }

    fn url(&self) -> String {
        format!("{}/acme/app.git", self.server.url())
    }

    /// `bbinject exec` of `script` (sh), with `git` first on PATH.
    fn exec(&self, bb: &Bb, extra: &[&str], script: &str) -> std::process::Command {
        let mut command = bb.command();
        command.arg("exec").args(extra).args([
            "--git-url",
            &self.server.url(),
            "--",
            "sh",
            "-c",
            script,
        ]);
        let git_dir = self.git.parent().expect("dir").display().to_string();
        let path = std::env::var("PATH").unwrap_or_default();
        command.env("PATH", format!("{git_dir}:{path}"));
        command.stdin(Stdio::null());
        command
    }

    fn oauth(&self) -> Bb {
        Bb::new()
            .env("BITBUCKET_OAUTH_CLIENT_ID", "consumer-key")
            .env("BITBUCKET_OAUTH_CLIENT_SECRET", CLIENT_SECRET)
    }
}

fn run(mut command: std::process::Command) -> Run {
    Run::from(command.output().expect("run"))
}

/// `exec --no-preflight --token-url …` of `script` with an OAuth consumer;
/// it must succeed.
fn oauth_exec(w: &World, bb: &Bb, endpoint: &TokenEndpoint, script: &str) -> Run {
    let result = run(w.exec(
        bb,
        &["--no-preflight", "--token-url", &endpoint.url()],
        script,
    ));
    assert_eq!(result.code(), 0, "{}", result.describe());
    result
}

/// Waits until `path` exists (the child reached a point), or fails the test.
fn wait_for(path: &Path, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the child ended ({status}) before {}", path.display());
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every token, the client secret, and (for files) the secret values: not
/// in any output or file.
fn assert_clean(run: &Run, dir: &Path, secrets: &[String]) {
    for secret in secrets {
        assert_no_leak(run, dir, secret, &[TOKEN_USER], &[]);
    }
    assert_no_leak(run, dir, CLIENT_SECRET, &["consumer-key"], &[]);
}

/// A build longer than its OAuth token's life: the token endpoint gives
/// 4-second tokens, the git server stops accepting each 5 s after it was
/// issued; a clone, 7 s of work, another clone. Before this, the second clone
/// failed with 401 (the broker kept serving the first token).
#[tokio::test(flavor = "multi_thread")]
async fn an_oauth_token_is_minted_again_before_it_expires() {
    let git = gits()[0].clone();
    let w = World::new(&git);
    let endpoint = TokenEndpoint::start(4, w.server.users(), Some(Duration::from_secs(5))).await;
    let bb = w.oauth();
    let url = w.url();
    let started = Instant::now();
    let result = oauth_exec(
        &w,
        &bb,
        &endpoint,
        &format!(
            "set -e; git clone -q {url} one; sleep 7; git clone -q {url} two; echo cloned twice"
        ),
    );
    eprintln!(
        "two clones 7 s apart with 4 s tokens: {:?}",
        started.elapsed()
    );
    assert!(
        result.stdout.contains("cloned twice"),
        "{}",
        result.describe()
    );
    assert_eq!(endpoint.exchanges(), 2, "{}", result.describe());
    let issued = endpoint.issued();
    let used: Vec<String> = w.server.authorizations();
    assert!(
        used.contains(&format!("{TOKEN_USER}:{}", issued[0])),
        "{used:?}"
    );
    assert!(
        used.contains(&format!("{TOKEN_USER}:{}", issued[1])),
        "{used:?}"
    );
    assert_clean(&result, bb.dir.path(), &issued);
}

/// 20 `git credential fill` at the moment of expiry: one exchange serves them
/// all (the others wait for it); each gets the new token.
#[tokio::test(flavor = "multi_thread")]
async fn twenty_requests_at_expiry_cause_exactly_one_exchange() {
    let git = gits()[0].clone();
    let w = World::new(&git);
    let endpoint = TokenEndpoint::start(2, w.server.users(), None).await;
    let bb = w.oauth();
    let host = w.server.url().trim_start_matches("http://").to_owned();
    let script = format!(
        "sleep 2.2; for i in $(seq 20); do \
           (printf 'protocol=http\\nhost={host}\\npath=acme/app.git\\n\\n' | git credential fill \
             | grep -c '^password=' >> counts) & \
         done; wait; echo \"answers=$(grep -c '^1$' counts)\""
    );
    let result = oauth_exec(&w, &bb, &endpoint, &script);
    assert!(
        result.stdout.contains("answers=20"),
        "{}",
        result.describe()
    );
    assert_eq!(endpoint.exchanges(), 2, "one at start, one for the 20");
    assert_clean(&result, bb.dir.path(), &endpoint.issued());
}

/// git ≥ 2.41 is told when an OAuth token expires (`password_expiry_utc`);
/// older gits ignore the attribute and still get the password.
#[tokio::test(flavor = "multi_thread")]
async fn the_expiry_is_told_to_the_gits_that_understand_it() {
    for git in gits() {
        let w = World::new(&git);
        let endpoint = TokenEndpoint::start(7200, w.server.users(), None).await;
        let bb = w.oauth();
        let host = w.server.url().trim_start_matches("http://").to_owned();
        let script = format!(
            "printf 'protocol=http\\nhost={host}\\npath=acme/app.git\\n\\n' | git credential fill \
             | sed 's/^password=.*/password=(given)/'"
        );
        let result = oauth_exec(&w, &bb, &endpoint, &script);
        assert!(
            result.stdout.contains("password=(given)"),
            "{}",
            result.describe()
        );
        let version = git_version(&git);
        let told = result
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("password_expiry_utc="));
        if version >= (2, 41) {
            let expiry: u64 = told
                .unwrap_or_else(|| panic!("git {version:?}: no expiry\n{}", result.describe()))
                .parse()
                .expect("a number");
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("now")
                .as_secs();
            assert!(
                (now + 7000..=now + 7200).contains(&expiry),
                "{expiry} vs {now}"
            );
        } else {
            assert!(
                told.is_none(),
                "git {version:?} printed an attribute it does not know"
            );
        }
        assert_clean(&result, bb.dir.path(), &endpoint.issued());
    }
}

/// git's `erase` after a 401 marks the OAuth token stale: the clone that got
/// the 401 fails (git does not retry), the next request mints a new token.
/// Before this, every later clone failed until the token's expiry.
#[tokio::test(flavor = "multi_thread")]
async fn an_erase_after_a_401_leads_to_a_new_token() {
    let git = gits()[0].clone();
    let w = World::new(&git);
    let endpoint = TokenEndpoint::start(7200, w.server.users(), None).await;
    let bb = w.oauth();
    let url = w.url();
    let (m1, m2) = (bb.path("m1"), bb.path("m2"));
    let script = format!(
        "git clone -q {url} one && touch {m1} && while [ ! -e {m2} ]; do sleep 0.05; done; \
         git clone -q {url} two || echo 'second clone refused'; \
         git clone -q {url} three && echo 'third clone ok'",
        m1 = m1.display(),
        m2 = m2.display()
    );
    let mut command = w.exec(
        &bb,
        &["--no-preflight", "--token-url", &endpoint.url()],
        &script,
    );
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for(&m1, &mut child);
    // Bitbucket revokes the token (an admin, a rotated consumer secret).
    let first = endpoint.issued()[0].clone();
    w.server.users().revoke(TOKEN_USER, &first);
    std::fs::write(&m2, "").expect("m2");
    let result = Run::from(child.wait_with_output().expect("wait"));
    assert_eq!(result.code(), 0, "{}", result.describe());
    assert!(
        result.stdout.contains("second clone refused"),
        "{}",
        result.describe()
    );
    assert!(
        result.stdout.contains("third clone ok"),
        "{}",
        result.describe()
    );
    assert_eq!(endpoint.exchanges(), 2, "{}", result.describe());
    assert_clean(&result, bb.dir.path(), &endpoint.issued());
}

/// A secret file replaced by an atomic rename between two clones (the git
/// server accepts only the new token after the swap): the second clone works,
/// the child printing the new token shows it masked. Then an invalid
/// replacement (an empty file) keeps the last good value, with one warning
/// however many requests follow.
#[test]
fn a_rotated_secret_file_is_read_again_and_masked() {
    for git in gits() {
        let w = World::new(&git);
        let old = format!("ATCTT3xFAKE-rotation-old-{}-0000000000", std::process::id());
        let new = format!("ATCTT3xFAKE-rotation-new-{}-1111111111", std::process::id());
        let users = w.server.users();
        users.accept(TOKEN_USER, &old);
        let bb = Bb::new();
        let token = bb.file("token", format!("{old}\n").as_bytes(), 0o600);
        let bb = bb.env("BITBUCKET_ACCESS_TOKEN_FILE", token.display().to_string());
        let url = w.url();
        let [m1, m2, m3, m4] = ["m1", "m2", "m3", "m4"].map(|m| bb.path(m).display().to_string());
        let script = format!(
            "set -e; git clone -q {url} one; touch {m1}; while [ ! -e {m2} ]; do sleep 0.05; done; \
             git clone -q {url} two; echo \"now=$(cat {token})\"; touch {m3}; \
             while [ ! -e {m4} ]; do sleep 0.05; done; \
             git clone -q {url} three; git clone -q {url} four; echo done",
            token = token.display()
        );
        let mut command = w.exec(&bb, &["--no-preflight"], &script);
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let replace = |content: &str| {
            let next = bb.path("token.next");
            std::fs::write(&next, content).expect("write");
            std::fs::rename(&next, &token).expect("rename");
        };
        wait_for(Path::new(&m1), &mut child);
        replace(&format!("{new}\n"));
        users.revoke(TOKEN_USER, &old);
        users.accept(TOKEN_USER, &new);
        std::fs::write(&m2, "").expect("m2");
        wait_for(Path::new(&m3), &mut child);
        replace("");
        std::fs::write(&m4, "").expect("m4");
        let result = Run::from(child.wait_with_output().expect("wait"));
        let shown = git.display();
        assert_eq!(result.code(), 0, "{shown}: {}", result.describe());
        assert!(
            result.stdout.contains("now=****"),
            "{shown}: {}",
            result.describe()
        );
        assert!(
            result.stdout.contains("done"),
            "{shown}: {}",
            result.describe()
        );
        let warnings = result.stderr.matches("changed, but").count();
        assert_eq!(warnings, 1, "{shown}: {}", result.describe());
        assert!(
            result.stderr.contains("BITBUCKET_ACCESS_TOKEN_FILE="),
            "the warning names the source: {}",
            result.describe()
        );
        let auths = w.server.authorizations();
        assert!(
            auths.contains(&format!("{TOKEN_USER}:{new}")),
            "{shown}: {auths:?}"
        );
        // The file is the test's own: scan the rest of the directory.
        std::fs::remove_file(&token).expect("rm token");
        assert_no_leak(&result, bb.dir.path(), &old, &[TOKEN_USER], &[]);
        assert_no_leak(&result, bb.dir.path(), &new, &[TOKEN_USER], &[]);
    }
}

/// A detached `export` broker renews OAuth tokens too: two clones 7 s apart
/// through the exported environment, with 4-second tokens.
#[tokio::test(flavor = "multi_thread")]
async fn an_exported_broker_mints_again_as_well() {
    let git = gits()[0].clone();
    let w = World::new(&git);
    let endpoint = TokenEndpoint::start(4, w.server.users(), Some(Duration::from_secs(5))).await;
    let bb = w.oauth();
    let exe = assert_cmd::cargo::cargo_bin!("bbinject")
        .display()
        .to_string();
    let url = w.url();
    let git_dir = git.parent().expect("dir").display().to_string();
    let script = format!(
        "export PATH=\"{git_dir}:$PATH\"; \
         eval \"$('{exe}' export --no-preflight --token-url {token} --git-url {git_url} --ttl 1m)\" || exit 90; \
         git clone -q {url} one && sleep 7 && git clone -q {url} two && echo cloned twice; \
         '{exe}' export --revoke",
        token = endpoint.url(),
        git_url = w.server.url(),
    );
    let result = bb.shell("sh", &script);
    assert_eq!(result.code(), 0, "{}", result.describe());
    assert!(
        result.stdout.contains("cloned twice"),
        "{}",
        result.describe()
    );
    assert_eq!(endpoint.exchanges(), 2, "{}", result.describe());
    assert_clean(&result, bb.dir.path(), &endpoint.issued());
}

/// The token expired and the consumer was revoked meanwhile: git's clone
/// fails with one line that says why, naming the token endpoint's answer.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_renewal_is_one_clear_refusal() {
    let git = gits()[0].clone();
    let w = World::new(&git);
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(
            wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "access_token": "FAKE-short-lived-token-0123456789",
                "expires_in": 1,
                "token_type": "bearer",
            })),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(
            wiremock::ResponseTemplate::new(401).set_body_json(serde_json::json!({
                "error": "invalid_client",
                "error_description": "FAKE-short-lived-token-0123456789 is not a valid consumer",
            })),
        )
        .mount(&server)
        .await;
    w.server
        .users()
        .accept(TOKEN_USER, "FAKE-short-lived-token-0123456789");
    let bb = w.oauth();
    let url = w.url();
    let result = run(w.exec(
        &bb,
        &["--no-preflight", "--token-url", &server.uri()],
        &format!("sleep 1.5; git clone -q {url} one || echo clone refused"),
    ));
    assert_eq!(result.code(), 0, "{}", result.describe());
    assert!(
        result.stdout.contains("clone refused"),
        "{}",
        result.describe()
    );
    let line = result
        .stderr
        .lines()
        .find(|l| l.starts_with("bbinject: refused credential for"))
        .unwrap_or_else(|| panic!("no refusal line: {}", result.describe()));
    assert!(
        line.ends_with(
            "the OAuth token expired and a new one could not be minted: the token endpoint \
             127.0.0.1 rejected the OAuth client (HTTP 401)"
        ),
        "{line}"
    );
    assert_clean(
        &result,
        bb.dir.path(),
        &["FAKE-short-lived-token-0123456789".to_owned()],
    );
}
