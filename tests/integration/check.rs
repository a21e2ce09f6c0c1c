//! `bbinject check` against wiremock servers answering like api.bitbucket.org
//! and a real git smart-HTTP server.

use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::support::bitbucket_mock::{self as bb, api_url, authenticated, basic, json};
use crate::support::git_server::{GitServer, GitServerBuilder, create_repo};
use crate::support::{
    Bb, FAKE_ACCESS_TOKEN, FAKE_API_TOKEN, FAKE_APP_PASSWORD, Run, assert_no_leak,
};

const EMAIL: &str = "jdoe@example.com";
const GIT_USER: &str = "x-bitbucket-api-token-auth";

struct World {
    _root: tempfile::TempDir,
    git: GitServer,
    api: wiremock::MockServer,
}

async fn world(configure: impl FnOnce(GitServerBuilder) -> GitServerBuilder) -> World {
    let root = tempfile::tempdir().expect("tempdir");
    create_repo(root.path(), "acme/app", &[("README.md", b"hello\n")]);
    create_repo(root.path(), "acme/public", &[("README.md", b"public\n")]);
    let git = configure(GitServer::builder(root.path()).public("acme/public")).start();
    World {
        _root: root,
        git,
        api: bb::start().await,
    }
}

fn check(world: &World, envs: &[(&str, &str)], args: &[&str]) -> (Bb, Run) {
    let mut bb = Bb::new()
        .args(["check", "--format", "json", "--retries", "1"])
        .args([
            "--api-url",
            &api_url(&world.api),
            "--git-url",
            &world.git.url(),
            "--token-url",
            &format!("{}/site/oauth2/access_token", world.api.uri()),
        ]);
    for (k, v) in envs {
        bb = bb.env(k, v);
    }
    // Every check runs at the most verbose log level, and every secret it was
    // given is then looked for in its output and its files.
    let bb = bb.env("RUST_LOG", "trace").args(args);
    let run = bb.run();
    let usernames = [EMAIL, GIT_USER, "x-token-auth", "jdoe", "consumer-key"];
    for (name, value) in envs {
        if ["TOKEN", "PASSWORD", "SECRET"]
            .iter()
            .any(|s| name.ends_with(s))
        {
            assert_no_leak(&run, bb.dir.path(), value, &usernames, &[]);
        }
    }
    (bb, run)
}

fn api_token_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("BITBUCKET_API_TOKEN", FAKE_API_TOKEN),
        ("BITBUCKET_EMAIL", EMAIL),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn api_token_that_works_passes_both_probes_and_leaks_nothing() {
    let w = world(|g| g.user(GIT_USER, FAKE_API_TOKEN)).await;
    let auth = basic(EMAIL, FAKE_API_TOKEN);
    bb::on_get(
        &w.api,
        "user",
        Some(&auth),
        authenticated(bb::fixture("user.json"), "api_token"),
    )
    .await;
    bb::on_get(
        &w.api,
        "repositories/acme/app",
        Some(&auth),
        authenticated(bb::private_repository(), "api_token"),
    )
    .await;

    for log in ["warn", "trace"] {
        let mut env = api_token_env();
        env.push(("RUST_LOG", log));
        let (bb, run) = check(&w, &env, &["--repo", "acme/app"]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        let report = run.json();
        assert_eq!(report["ok"], true);
        let cred = &report["credentials"][0];
        assert_eq!(cred["kind"], "api_token");
        assert_eq!(cred["source"], "env:BITBUCKET_API_TOKEN");
        assert_eq!(cred["git_username"], GIT_USER);
        assert_eq!(cred["credential_type"], "api_token");
        assert!(
            cred["fingerprint"]
                .as_str()
                .is_some_and(|f| f.starts_with("sha256:"))
        );
        assert!(cred["identity"]["display_name"].is_string(), "{report}");
        let repo = &report["repositories"][0];
        assert_eq!(
            (repo["repository"].as_str(), repo["api"].as_str()),
            (Some("acme/app"), Some("ok"))
        );
        assert_eq!(
            (repo["read"].as_str(), repo["write"].as_str()),
            (Some("ok"), Some("not_checked"))
        );
        assert_eq!(repo["private"], true);
        assert_no_leak(&run, bb.dir.path(), FAKE_API_TOKEN, &[EMAIL, GIT_USER], &[]);
    }
    // The git server really saw the credential git will use.
    assert!(
        w.git
            .authorizations()
            .contains(&format!("{GIT_USER}:{FAKE_API_TOKEN}"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn text_output_names_the_credential_and_the_verdicts() {
    let w = world(|g| g.user(GIT_USER, FAKE_API_TOKEN)).await;
    bb::on_get(
        &w.api,
        "user",
        None,
        authenticated(bb::fixture("user.json"), "api_token"),
    )
    .await;
    bb::on_get(
        &w.api,
        "repositories/acme/app",
        None,
        authenticated(bb::private_repository(), "api_token"),
    )
    .await;
    let bb = Bb::new()
        .env("BITBUCKET_API_TOKEN", FAKE_API_TOKEN)
        .env("BITBUCKET_EMAIL", EMAIL)
        .args([
            "check",
            "--repo",
            "acme/app",
            "--api-url",
            &api_url(&w.api),
            "--git-url",
            &w.git.url(),
        ]);
    let run = bb.run();
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(
        run.stdout
            .contains("credential env: Atlassian API token from env:BITBUCKET_API_TOKEN"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("repository acme/app: read ok, write not checked (api ok, private)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("result: ok"));
    assert_no_leak(&run, bb.dir.path(), FAKE_API_TOKEN, &[EMAIL, GIT_USER], &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn write_needed_but_only_read_granted() {
    let w = world(|g| g.read_only_user(GIT_USER, FAKE_API_TOKEN)).await;
    bb::on_get(
        &w.api,
        "user",
        None,
        authenticated(bb::fixture("user.json"), "api_token"),
    )
    .await;
    bb::on_get(
        &w.api,
        "repositories/acme/app",
        None,
        authenticated(bb::private_repository(), "api_token"),
    )
    .await;
    let (_, run) = check(
        &w,
        &api_token_env(),
        &["--repo", "acme/app", "--need", "write"],
    );
    assert_eq!(run.code(), 4, "{}", run.describe());
    let report = run.json();
    assert_eq!(report["repositories"][0]["read"], "ok");
    assert_eq!(report["repositories"][0]["write"], "denied");
    let problem = run.problem("write-not-allowed");
    assert!(
        problem["hint"]
            .as_str()
            .is_some_and(|h| h.contains("write:repository:bitbucket")),
        "{problem}"
    );

    // And with write access, write is proven.
    let w = world(|g| g.user(GIT_USER, FAKE_API_TOKEN)).await;
    bb::on_get(
        &w.api,
        "user",
        None,
        authenticated(bb::fixture("user.json"), "api_token"),
    )
    .await;
    bb::on_get(
        &w.api,
        "repositories/acme/app",
        None,
        authenticated(bb::private_repository(), "api_token"),
    )
    .await;
    let (_, run) = check(
        &w,
        &api_token_env(),
        &["--repo", "acme/app", "--need", "write"],
    );
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert_eq!(run.json()["repositories"][0]["write"], "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_is_retried_then_reported() {
    let w = world(|g| g.user("x-token-auth", FAKE_ACCESS_TOKEN)).await;
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/app"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("content-type", "text/plain")
                .set_body_string(bb::fixture("error-429-body.txt")),
        )
        .expect(2)
        .mount(&w.api)
        .await;
    let (_, run) = check(
        &w,
        &[("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN)],
        &["--repo", "acme/app"],
    );
    assert_eq!(run.code(), 5, "{}", run.describe());
    assert!(run.problem_codes().contains(&"rate-limited".to_owned()));
    assert!(run.stdout.contains("after 2 attempts"), "{}", run.stdout);
    w.api.verify().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_error_then_success_is_retried_transparently() {
    let w = world(|g| g.user("x-token-auth", FAKE_ACCESS_TOKEN)).await;
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/app"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&w.api)
        .await;
    bb::on_get(
        &w.api,
        "repositories/acme/app",
        None,
        authenticated(bb::private_repository(), "repo_access_token"),
    )
    .await;
    let (bb, run) = check(
        &w,
        &[("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN)],
        &["--repo", "acme/app"],
    );
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert_eq!(
        run.json()["credentials"][0]["credential_type"],
        "repo_access_token"
    );
    assert_no_leak(
        &run,
        bb.dir.path(),
        FAKE_ACCESS_TOKEN,
        &["x-token-auth"],
        &[],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn never_retries_a_401() {
    let w = world(|g| g).await;
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/app"))
        .respond_with(json(401, "error-401-token-invalid.json"))
        .expect(1)
        .mount(&w.api)
        .await;
    let (_, run) = check(
        &w,
        &[("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN)],
        &["--repo", "acme/app", "--retries", "3"],
    );
    assert_eq!(run.code(), 3, "{}", run.describe());
    w.api.verify().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_api_times_out_with_exit_5() {
    let w = world(|g| g.user("x-token-auth", FAKE_ACCESS_TOKEN)).await;
    bb::on_get(
        &w.api,
        "repositories/acme/app",
        None,
        authenticated(bb::private_repository(), "repo_access_token")
            .set_delay(std::time::Duration::from_secs(3)),
    )
    .await;
    let (_, run) = check(
        &w,
        &[("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN)],
        &["--repo", "acme/app", "--timeout", "500ms", "--retries", "0"],
    );
    assert_eq!(run.code(), 5, "{}", run.describe());
    assert!(
        run.problem_codes().contains(&"timeout".to_owned()),
        "{}",
        run.describe()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_bitbucket_exits_5() {
    let w = world(|g| g).await;
    let bb = check_once(
        Bb::new().env("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN),
        "http://127.0.0.1:9/2.0",
        "http://127.0.0.1:9",
    );
    let run = bb.run();
    drop(w);
    assert_eq!(run.code(), 5, "{}", run.describe());
    assert!(
        run.problem_codes().contains(&"unreachable".to_owned()),
        "{}",
        run.describe()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oauth_consumer_is_exchanged_for_a_bearer_token_git_uses() {
    const EXCHANGED: &str = "REDACTED-ACCESS-TOKEN";
    let w = world(|g| g.user("x-token-auth", EXCHANGED)).await;
    Mock::given(method("POST"))
        .and(path("/site/oauth2/access_token"))
        .and(header(
            "authorization",
            basic("consumer-key", "FAKE-oauth-secret-0000").as_str(),
        ))
        .respond_with(json(200, "oauth-client-credentials-token.json"))
        .expect(1)
        .mount(&w.api)
        .await;
    let bearer = format!("Bearer {EXCHANGED}");
    bb::on_get(
        &w.api,
        "user",
        Some(&bearer),
        authenticated(bb::fixture("user.json"), "oauth2"),
    )
    .await;
    bb::on_get(
        &w.api,
        "repositories/acme/app",
        Some(&bearer),
        authenticated(bb::private_repository(), "oauth2"),
    )
    .await;
    let env = [
        ("BITBUCKET_OAUTH_CLIENT_ID", "consumer-key"),
        ("BITBUCKET_OAUTH_CLIENT_SECRET", "FAKE-oauth-secret-0000"),
    ];
    let (bb, run) = check(&w, &env, &["--repo", "acme/app"]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert_eq!(
        run.json()["credentials"][0]["kind"],
        "oauth_client_credentials"
    );
    // The token's lifetime (`expires_in`), which the broker renews within.
    assert_eq!(run.json()["credentials"][0]["token_lifetime_secs"], 7200);
    assert_no_leak(
        &run,
        bb.dir.path(),
        "FAKE-oauth-secret-0000",
        &["consumer-key"],
        &[],
    );
    assert_no_leak(&run, bb.dir.path(), EXCHANGED, &["x-token-auth"], &[]);
    w.api.verify().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oauth_consumer_refused_a_token_exits_3() {
    let w = world(|g| g).await;
    Mock::given(method("POST"))
        .and(path("/site/oauth2/access_token"))
        .respond_with(json(400, "oauth-token-error-invalid-grant.json"))
        .mount(&w.api)
        .await;
    let env = [
        ("BITBUCKET_OAUTH_CLIENT_ID", "consumer-key"),
        ("BITBUCKET_OAUTH_CLIENT_SECRET", "FAKE-oauth-secret-0000"),
    ];
    let (_, run) = check(&w, &env, &["--repo", "acme/app"]);
    assert_eq!(run.code(), 3, "{}", run.describe());
    assert!(
        run.problem_codes()
            .contains(&"oauth-exchange-failed".to_owned())
    );
    assert!(run.stdout.contains("invalid_grant"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn access_token_uses_bearer_for_rest_and_never_asks_for_identity() {
    let w = world(|g| g.user("x-token-auth", FAKE_ACCESS_TOKEN)).await;
    let bearer = format!("Bearer {FAKE_ACCESS_TOKEN}");
    bb::on_get(
        &w.api,
        "repositories/acme/app",
        Some(&bearer),
        authenticated(bb::private_repository(), "repo_access_token"),
    )
    .await;
    Mock::given(path("/2.0/user"))
        .respond_with(json(403, "error-403-auth-mechanism.json"))
        .expect(0)
        .mount(&w.api)
        .await;
    let (bb, run) = check(
        &w,
        &[("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN)],
        &["--repo", "acme/app"],
    );
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert_eq!(run.json()["credentials"][0]["git_username"], "x-token-auth");
    assert_no_leak(
        &run,
        bb.dir.path(),
        FAKE_ACCESS_TOKEN,
        &["x-token-auth"],
        &[],
    );
    w.api.verify().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_repo_it_checks_identity_or_says_what_it_could_not() {
    let w = world(|g| g).await;
    bb::on_get(
        &w.api,
        "user",
        None,
        authenticated(bb::fixture("user.json"), "api_token"),
    )
    .await;
    let (_, run) = check(&w, &api_token_env(), &[]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(run.json()["credentials"][0]["identity"].is_object());
    assert!(!run.problem_codes().contains(&"not-verified".to_owned()));

    let (_, run) = check(&w, &[("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN)], &[]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(run.problem_codes().contains(&"not-verified".to_owned()));

    // A rejected credential with no repository is still an error.
    let w = world(|g| g).await;
    bb::on_get(
        &w.api,
        "user",
        None,
        json(401, "error-401-token-invalid.json"),
    )
    .await;
    let (_, run) = check(&w, &api_token_env(), &[]);
    assert_eq!(run.code(), 3, "{}", run.describe());
    assert!(
        run.problem_codes()
            .contains(&"credential-rejected".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn inside_pipelines_the_repository_defaults_to_the_build_repository() {
    let w = app_world().await;
    let env = [
        ("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN),
        ("BITBUCKET_REPO_FULL_NAME", "acme/app"),
    ];
    let (_, run) = check(&w, &env, &[]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert_eq!(run.json()["repositories"][0]["repository"], "acme/app");
}

#[tokio::test(flavor = "multi_thread")]
async fn email_given_as_git_username_is_fixed_and_flagged() {
    let w = world(|g| g.user(GIT_USER, FAKE_API_TOKEN)).await;
    bb::on_get(
        &w.api,
        "user",
        Some(&basic(EMAIL, FAKE_API_TOKEN)),
        authenticated(bb::fixture("user.json"), "api_token"),
    )
    .await;
    bb::on_get(
        &w.api,
        "repositories/acme/app",
        None,
        authenticated(bb::private_repository(), "api_token"),
    )
    .await;
    let env = [
        ("BITBUCKET_API_TOKEN", FAKE_API_TOKEN),
        ("BITBUCKET_USERNAME", EMAIL),
    ];
    let (_, run) = check(&w, &env, &["--repo", "acme/app"]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(
        run.problem_codes()
            .contains(&"git-username-is-email".to_owned())
    );
    assert_eq!(run.json()["credentials"][0]["git_username"], GIT_USER);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_routes_each_repository_to_its_credential() {
    let w = world(|g| {
        g.user("x-token-auth", FAKE_ACCESS_TOKEN)
            .user(GIT_USER, FAKE_API_TOKEN)
    })
    .await;
    bb::on_get(
        &w.api,
        "user",
        None,
        authenticated(bb::fixture("user.json"), "api_token"),
    )
    .await;
    bb::on_get(
        &w.api,
        "repositories/acme/app",
        Some(&format!("Bearer {FAKE_ACCESS_TOKEN}")),
        authenticated(bb::private_repository(), "repo_access_token"),
    )
    .await;
    bb::on_get(
        &w.api,
        "repositories/acme/public",
        Some(&basic(EMAIL, FAKE_API_TOKEN)),
        authenticated(bb::fixture("repository.json"), "api_token"),
    )
    .await;
    let bb = Bb::new();
    let token_file = bb.file(
        "app_token",
        format!("{FAKE_ACCESS_TOKEN}\n").as_bytes(),
        0o600,
    );
    let config = format!(
        "credentials:\n  - name: app-only\n    kind: access_token\n    match: [acme/app]\n    secret_file: {}\n  - name: acme\n    kind: api_token\n    match: [acme]\n    secret_env: ACME_TOKEN\n    email: {EMAIL}\n",
        token_file.display()
    );
    let config_path = bb.file("bbinject.yaml", config.as_bytes(), 0o600);
    let bb = bb
        .env("BBINJECT_CONFIG", config_path.display().to_string())
        .env("ACME_TOKEN", FAKE_API_TOKEN)
        .args([
            "check",
            "--format",
            "json",
            "--repo",
            "acme/app",
            "--repo",
            "acme/public",
            "--api-url",
            &api_url(&w.api),
            "--git-url",
            &w.git.url(),
        ]);
    let run = bb.run();
    assert_eq!(run.code(), 0, "{}", run.describe());
    let report = run.json();
    assert_eq!(report["repositories"][0]["credential"], "app-only");
    assert_eq!(report["repositories"][1]["credential"], "acme");
    assert_no_leak(
        &run,
        bb.dir.path(),
        FAKE_ACCESS_TOKEN,
        &["x-token-auth"],
        &[token_file],
    );
    assert_no_leak(&run, bb.dir.path(), FAKE_API_TOKEN, &[GIT_USER, EMAIL], &[]);
}

/// A world whose API knows `acme/app` (for an access token).
async fn app_world() -> World {
    app_world_with(|g| g).await
}

/// [`app_world`] with its git server as `configure` makes it.
async fn app_world_with(configure: fn(GitServerBuilder) -> GitServerBuilder) -> World {
    let w = world(move |g| configure(g.user("x-token-auth", FAKE_ACCESS_TOKEN))).await;
    bb::on_get(
        &w.api,
        "repositories/acme/app",
        None,
        authenticated(bb::private_repository(), "repo_access_token"),
    )
    .await;
    w
}

/// [`app_world`] with a TLS front (its own test CA) before the API and one
/// before the git server.
async fn tls_world() -> (
    World,
    crate::support::tls_front::TlsFront,
    crate::support::tls_front::TlsFront,
) {
    use crate::support::tls_front::TlsFront;
    let w = app_world().await;
    let api_tls = TlsFront::start(*w.api.address());
    let git_addr: std::net::SocketAddr =
        format!("127.0.0.1:{}", w.git.port()).parse().expect("addr");
    let git_tls = TlsFront::start(git_addr);
    (w, api_tls, git_tls)
}

/// `check --format json --repo acme/app --retries 0` against `api` (the API
/// base, with `/2.0`) and `git`.
fn check_once(bb: Bb, api: &str, git: &str) -> Bb {
    bb.args([
        "check",
        "--format",
        "json",
        "--repo",
        "acme/app",
        "--retries",
        "0",
        "--api-url",
        api,
        "--git-url",
        git,
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_tls_certificate_exits_5_and_points_at_ca_file() {
    let (_w, api_tls, git_tls) = tls_world().await;
    let args = |bb: Bb| {
        check_once(
            bb.env("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN),
            &format!("{}/2.0", api_tls.url()),
            &git_tls.url(),
        )
    };

    let bb = args(Bb::new());
    let run = bb.run();
    assert_eq!(run.code(), 5, "{}", run.describe());
    let problem = run.problem("tls-untrusted");
    assert!(
        problem["hint"]
            .as_str()
            .is_some_and(|h| h.contains("--ca-file") && h.contains("SSL_CERT_FILE")),
        "{problem}"
    );

    // Trusting the CA with --ca-file makes the same check pass (both probes, over TLS).
    let bb = Bb::new();
    let ca = bb.file("ca.pem", api_tls.ca_pem().as_bytes(), 0o644);
    let bb = args(bb).args(["--ca-file", &ca.display().to_string()]);
    let run = bb.run();
    // The git front has its own CA: give both in one bundle.
    let bundle = format!("{}{}", api_tls.ca_pem(), git_tls.ca_pem());
    std::fs::write(&ca, bundle).expect("bundle");
    let run2 = bb.run();
    assert_eq!(
        run.code(),
        5,
        "only the API CA trusted: git must still fail\n{}",
        run.describe()
    );
    assert_eq!(run2.code(), 0, "{}", run2.describe());
    assert_no_leak(
        &run2,
        bb.dir.path(),
        FAKE_ACCESS_TOKEN,
        &["x-token-auth"],
        &[],
    );
}

/// A static binary in an image without a CA bundle (scratch, distroless,
/// busybox): the built-in Mozilla roots are trusted instead, so TLS works
/// against public CAs; a private CA still needs `--ca-file`, which still works.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_system_ca_store_the_built_in_roots_are_used() {
    let (_w, api_tls, git_tls) = tls_world().await;
    let bb = Bb::new();
    // An empty store: rustls-native-certs reads only these when they are set.
    let empty_file = bb.file("empty.pem", b"", 0o644);
    let empty_dir = bb.dir.path().join("no-certs");
    std::fs::create_dir(&empty_dir).expect("dir");
    let bb = bb
        .env("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN)
        .env("SSL_CERT_FILE", empty_file.display().to_string())
        .env("SSL_CERT_DIR", empty_dir.display().to_string());
    let bb = check_once(bb, &format!("{}/2.0", api_tls.url()), &git_tls.url()).args(["-v"]);
    let run = bb.run();
    // Before: "cannot set up the HTTP client: No CA certificates were loaded
    // from the system" with a "this is a bug" hint, and no probe at all.
    assert_eq!(run.code(), 5, "{}", run.describe());
    run.problem("tls-untrusted");
    assert!(
        run.stderr
            .contains("Mozilla root certificates built into bbinject"),
        "{}",
        run.describe()
    );

    let ca = bb.file(
        "ca.pem",
        format!("{}{}", api_tls.ca_pem(), git_tls.ca_pem()).as_bytes(),
        0o644,
    );
    let run = bb.args(["--ca-file", &ca.display().to_string()]).run();
    assert_eq!(run.code(), 0, "{}", run.describe());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_proxy_is_reported_as_a_proxy_error_without_its_password() {
    // A loopback endpoint never goes through a proxy (its credentials may be
    // sent over plain http): these names are not loopback, and the dead proxy
    // is the only way to them.
    let bb = Bb::new()
        .env("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN)
        .env(
            "HTTPS_PROXY",
            "http://proxyuser:FAKE-proxy-password@127.0.0.1:9",
        );
    let bb = check_once(
        bb,
        "https://api.bitbucket.example.invalid/2.0",
        "https://bitbucket.example.invalid",
    );
    let run = bb.run();
    assert_eq!(run.code(), 5, "{}", run.describe());
    assert!(
        run.problem_codes().contains(&"proxy-error".to_owned()),
        "{}",
        run.describe()
    );
    assert!(run.stdout.contains("127.0.0.1:9"), "{}", run.stdout);
    assert_no_leak(
        &run,
        bb.dir.path(),
        "FAKE-proxy-password",
        &["proxyuser"],
        &[],
    );
}

/// What the mock API answers for one path.
enum Reply {
    /// An error (or unauthenticated) body from tests/fixtures, as is.
    Fixture(u16, &'static str),
    /// `user.json`, a private or the public repository, with `x-credential-type`.
    Authenticated(&'static str, &'static str),
}

/// One diagnosis: what Bitbucket answers, and what the user must be told.
struct Case {
    name: &'static str,
    git: fn(GitServerBuilder) -> GitServerBuilder,
    api: &'static [(&'static str, Reply)],
    env: &'static [(&'static str, &'static str)],
    repo: &'static str,
    exit: i32,
    /// (problem code, field, text it must contain)
    expect: &'static [(&'static str, &'static str, &'static str)],
}

const API_TOKEN_ENV: &[(&str, &str)] = &[
    ("BITBUCKET_API_TOKEN", FAKE_API_TOKEN),
    ("BITBUCKET_EMAIL", EMAIL),
];
const ACCESS_TOKEN_ENV: &[(&str, &str)] = &[("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN)];
const CHANGE_3222: &str = "remote: CHANGE-3222 - Functionality has been deprecated\nApp passwords are deprecated and must be replaced with API tokens";

const DIAGNOSES: &[Case] = &[
    Case {
        name: "app password: API 401, git 401 with CHANGE-3222",
        git: |g| g.reject_with(401, CHANGE_3222),
        api: &[
            ("user", Reply::Fixture(401, "error-401-token-invalid.json")),
            (
                "repositories/acme/app",
                Reply::Fixture(401, "error-401-token-invalid.json"),
            ),
        ],
        env: &[
            ("BITBUCKET_APP_PASSWORD", FAKE_APP_PASSWORD),
            ("BITBUCKET_USERNAME", "jdoe"),
        ],
        repo: "acme/app",
        exit: 3,
        expect: &[
            ("app-password-removed", "message", "2026-07-28"),
            ("app-password-removed", "hint", "read:repository:bitbucket"),
            ("app-password-deprecated", "hint", "API token"),
        ],
    },
    Case {
        name: "an app password (ATBB…) put in BITBUCKET_API_TOKEN",
        git: |g| g,
        api: &[],
        env: &[("BITBUCKET_API_TOKEN", FAKE_APP_PASSWORD)],
        repo: "acme/app",
        exit: 3,
        expect: &[
            (
                "looks-like-app-password",
                "message",
                "looks like an app password",
            ),
            ("app-password-removed", "hint", "API token"),
        ],
    },
    Case {
        name: "git answers 410 with CHANGE-3222; the API's 410 (CHANGE-2770) is quoted",
        git: |g| g.reject_with(410, "CHANGE-3222 - Functionality has been deprecated"),
        api: &[(
            "repositories/acme/app",
            Reply::Fixture(410, "error-410-change-2770.json"),
        )],
        env: ACCESS_TOKEN_ENV,
        repo: "acme/app",
        exit: 3,
        expect: &[
            ("app-password-removed", "message", "HTTP 410"),
            ("unexpected-response", "message", "CHANGE-2770"),
        ],
    },
    Case {
        name: "missing scope named from the 403 body; /user without it is only a warning",
        git: |g| g.user(GIT_USER, FAKE_API_TOKEN),
        api: &[
            (
                "user",
                Reply::Fixture(403, "error-403-insufficient-scopes.json"),
            ),
            (
                "repositories/acme/app",
                Reply::Fixture(403, "error-403-insufficient-scopes.json"),
            ),
        ],
        env: API_TOKEN_ENV,
        repo: "acme/app",
        exit: 4,
        expect: &[
            ("missing-scope", "message", "lacks the scope account"),
            ("missing-scope", "message", "(it has team)"),
            ("missing-scope", "hint", "create a new one with account"),
            ("identity-unavailable", "hint", "read:user:bitbucket"),
        ],
    },
    Case {
        name: "git 403 names the read scope; no email means no API probe",
        git: |g| g.reject_with(403, "Forbidden"),
        api: &[],
        env: &[("BITBUCKET_API_TOKEN", FAKE_API_TOKEN)],
        repo: "acme/app",
        exit: 4,
        expect: &[
            ("missing-scope", "hint", "read:repository:bitbucket"),
            (
                "rest-email-missing",
                "message",
                "BITBUCKET_EMAIL is not set",
            ),
        ],
    },
    Case {
        name: "a private repository the credential cannot see (404), reported once",
        git: |g| g.user(GIT_USER, FAKE_API_TOKEN),
        api: &[
            ("user", Reply::Authenticated("user", "api_token")),
            (
                "repositories/acme/secret",
                Reply::Fixture(404, "error-404-repo-not-accessible.json"),
            ),
        ],
        env: API_TOKEN_ENV,
        repo: "acme/secret",
        exit: 4,
        expect: &[
            (
                "repository-not-found",
                "message",
                "answers 404, not 403, for private repositories",
            ),
            (
                "repository-not-found",
                "hint",
                "workspace id (not your username)",
            ),
        ],
    },
    Case {
        name: "a public repository answered anonymously is not proof",
        git: |g| g.user(GIT_USER, FAKE_API_TOKEN),
        api: &[
            ("user", Reply::Authenticated("user", "api_token")),
            (
                "repositories/acme/public",
                Reply::Fixture(200, "repository.json"),
            ),
        ],
        env: API_TOKEN_ENV,
        repo: "acme/public",
        exit: 3,
        expect: &[(
            "authentication-not-proven",
            "message",
            "no x-credential-type header",
        )],
    },
    Case {
        name: "an expired token",
        git: |g| g,
        api: &[(
            "repositories/acme/app",
            Reply::Fixture(401, "error-401-access-token-expired.json"),
        )],
        env: ACCESS_TOKEN_ENV,
        repo: "acme/app",
        exit: 3,
        expect: &[
            ("token-expired", "message", "expired"),
            ("git-credential-rejected", "hint", "Access tokens"),
        ],
    },
    Case {
        name: "git rejects the username: the hint says which usernames git accepts",
        git: |g| g.user("jdoe", FAKE_API_TOKEN),
        api: &[],
        env: &[
            ("BITBUCKET_API_TOKEN", FAKE_API_TOKEN),
            ("BITBUCKET_USERNAME", "jdoe-typo"),
        ],
        repo: "acme/app",
        exit: 3,
        expect: &[
            (
                "git-credential-rejected",
                "message",
                "git (clone/fetch) rejected",
            ),
            ("git-credential-rejected", "hint", "jdoe-typo"),
            ("git-credential-rejected", "hint", GIT_USER),
        ],
    },
];

#[tokio::test(flavor = "multi_thread")]
async fn each_failure_is_diagnosed_with_its_code_message_and_hint() {
    for case in DIAGNOSES {
        let w = world(case.git).await;
        for (suffix, reply) in case.api {
            let template = match reply {
                Reply::Fixture(status, name) => json(*status, name),
                Reply::Authenticated(body, credential_type) => {
                    let body = match *body {
                        "user" => bb::fixture("user.json"),
                        _ => bb::private_repository(),
                    };
                    authenticated(body, credential_type)
                }
            };
            bb::on_get(&w.api, suffix, None, template).await;
        }
        let (_, run) = check(&w, case.env, &["--repo", case.repo]);
        assert_eq!(run.code(), case.exit, "{}\n{}", case.name, run.describe());
        assert_eq!(run.json()["exit_code"], case.exit, "{}", case.name);
        for (code, field, text) in case.expect {
            let problem = run.problem(code);
            let value = problem[*field].as_str().unwrap_or_default();
            assert!(
                value.contains(text),
                "{}: {code}.{field} lacks {text:?}: {problem:#}",
                case.name
            );
        }
        let codes = run.problem_codes();
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            codes.len(),
            "{}: a problem reported twice: {codes:?}",
            case.name
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_repo_the_not_verified_warning_gives_the_true_reason() {
    // An email in BITBUCKET_USERNAME is moved to the REST side: GET /user is
    // asked, and when it answers, nothing is "not verified".
    let w = world(|g| g).await;
    bb::on_get(
        &w.api,
        "user",
        Some(&basic(EMAIL, FAKE_API_TOKEN)),
        authenticated(bb::fixture("user.json"), "api_token"),
    )
    .await;
    let env = [
        ("BITBUCKET_API_TOKEN", FAKE_API_TOKEN),
        ("BITBUCKET_USERNAME", EMAIL),
    ];
    let (_, run) = check(&w, &env, &[]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(
        !run.problem_codes().contains(&"not-verified".to_owned()),
        "{}",
        run.describe()
    );

    // GET /user fails: that failure is the report; no second, wrong reason.
    let w = world(|g| g).await;
    bb::on_get(
        &w.api,
        "user",
        None,
        json(401, "error-401-token-invalid.json"),
    )
    .await;
    let (_, run) = check(&w, &api_token_env(), &[]);
    assert_eq!(run.code(), 3, "{}", run.describe());
    assert!(
        !run.stdout.contains("without BITBUCKET_EMAIL"),
        "{}",
        run.describe()
    );
    assert!(
        !run.problem_codes().contains(&"not-verified".to_owned()),
        "{}",
        run.describe()
    );

    // No email: the reason names it, and nothing claims git was probed.
    let (_, run) = check(&w, &[("BITBUCKET_API_TOKEN", FAKE_API_TOKEN)], &[]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    let message = run.problem("not-verified")["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("without BITBUCKET_EMAIL"), "{message}");
    let missing = run.problem("rest-email-missing")["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!missing.contains("only git is probed"), "{missing}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_for_another_name_is_not_blamed_on_trust() {
    use crate::support::tls_front::TlsFront;
    let w = world(|g| g).await;
    let api_tls = TlsFront::start_for(*w.api.address(), &["bitbucket.example"]);
    let bb = Bb::new();
    let ca = bb.file("ca.pem", api_tls.ca_pem().as_bytes(), 0o644);
    let bb = bb.env("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN).args([
        "check",
        "--format",
        "json",
        "--repo",
        "acme/app",
        "--retries",
        "0",
        "--ca-file",
        &ca.display().to_string(),
        "--api-url",
        &format!("{}/2.0", api_tls.url()),
    ]);
    let run = bb.run();
    assert_eq!(run.code(), 5, "{}", run.describe());
    let problem = run.problem("tls-name-mismatch");
    assert!(
        problem["hint"]
            .as_str()
            .is_some_and(|h| h.contains("cannot fix a name mismatch")),
        "{problem}"
    );
    assert!(!run.problem_codes().contains(&"tls-untrusted".to_owned()));
}

#[test]
fn a_network_error_is_one_clause_and_the_chain_is_at_verbose() {
    let base = || {
        Bb::new()
            .env("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN)
            .args([
                "check",
                "--repo",
                "acme/app",
                "--retries",
                "0",
                "--api-url",
                "https://nonexistent.invalid/2.0",
            ])
    };
    let run = base().run();
    assert_eq!(run.code(), 5, "{}", run.describe());
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("error[unreachable]"))
        .unwrap_or_else(|| panic!("{}", run.describe()))
        .to_owned();
    assert!(
        line.contains("cannot resolve nonexistent.invalid ("),
        "{line}"
    );
    for noise in [
        "error sending request",
        "client error",
        "dns error",
        "os error",
    ] {
        assert!(!line.contains(noise), "{noise} in {line}");
    }
    let verbose = base().args(["-v"]).run();
    assert!(
        verbose.stderr.contains("error sending request"),
        "the whole chain is logged at -v:\n{}",
        verbose.describe()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lfs_is_probed_when_asked_and_a_missing_lfs_is_diagnosed() {
    let env = [("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN)];
    // A server with LFS (anonymous requests get 403, as on Bitbucket).
    let w = app_world_with(|g| g.lfs(403)).await;
    let (_, run) = check(&w, &env, &["--repo", "acme/app", "--lfs"]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert_eq!(
        run.json()["repositories"][0]["lfs"],
        "ok",
        "{}",
        run.describe()
    );
    // Without --lfs the field is absent: the JSON is as before.
    let (_, run) = check(&w, &env, &["--repo", "acme/app"]);
    assert!(
        run.json()["repositories"][0].get("lfs").is_none(),
        "{}",
        run.describe()
    );

    // A login page where the batch API should be: not "lfs ok".
    let w = app_world_with(|g| g.lfs_login_page()).await;
    let (_, run) = check(&w, &env, &["--repo", "acme/app", "--lfs"]);
    assert_ne!(run.code(), 0, "{}", run.describe());
    assert_ne!(
        run.json()["repositories"][0]["lfs"],
        "ok",
        "{}",
        run.describe()
    );
    let problem = run.problem("unexpected-response");
    assert!(
        problem["message"]
            .as_str()
            .is_some_and(|m| m.contains("Git LFS server") && m.contains("text/html")),
        "{problem}"
    );

    // A server without LFS: git works, LFS answers 404.
    let w = app_world().await;
    let (_, run) = check(&w, &env, &["--repo", "acme/app", "--lfs"]);
    assert_eq!(run.code(), 4, "{}", run.describe());
    assert_eq!(run.json()["repositories"][0]["read"], "ok");
    let problem = run.problem("lfs-unavailable");
    assert!(
        problem["hint"]
            .as_str()
            .is_some_and(|h| h.contains("Git LFS")),
        "{problem}"
    );
}

/// Thirty repositories, each answering after a delay: probed several at a
/// time, reported in the order given; a 429 on one pauses and is retried.
#[tokio::test(flavor = "multi_thread")]
async fn many_repositories_are_probed_concurrently_and_reported_in_order() {
    use wiremock::matchers::query_param;
    let api = bb::start().await;
    let names: Vec<String> = (0..30).map(|i| format!("acme/r{i:02}")).collect();
    for name in &names {
        Mock::given(method("GET"))
            .and(path(format!("/2.0/repositories/{name}")))
            .respond_with(
                authenticated(bb::private_repository(), "repo_access_token")
                    .set_delay(std::time::Duration::from_millis(100)),
            )
            .mount(&api)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("/{name}.git/info/refs")))
            .and(query_param("service", "git-upload-pack"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_raw(
                        "001e# service=git-upload-pack\n0000",
                        "application/x-git-upload-pack-advertisement",
                    )
                    .set_delay(std::time::Duration::from_millis(100)),
            )
            .mount(&api)
            .await;
    }
    // The first request for r07 is rate-limited once.
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/r07"))
        .respond_with(ResponseTemplate::new(429).set_body_string("Rate limit exceeded"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&api)
        .await;
    let mut bb = Bb::new()
        .env("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN)
        .args(["check", "--format", "json", "--retries", "2"])
        .args(["--api-url", &api_url(&api), "--git-url", &api.uri()]);
    for name in &names {
        bb = bb.args(["--repo", name]);
    }
    let run = bb.run();
    assert_eq!(run.code(), 0, "{}", run.describe());
    let reported: Vec<String> = run.json()["repositories"]
        .as_array()
        .expect("repositories")
        .iter()
        .map(|r| r["repository"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(reported, names);
    assert!(
        run.json()["repositories"]
            .as_array()
            .is_some_and(|r| r.iter().all(|r| r["read"] == "ok" && r["api"] == "ok")),
        "{}",
        run.describe()
    );
    assert_no_leak(
        &run,
        bb.dir.path(),
        FAKE_ACCESS_TOKEN,
        &["x-token-auth"],
        &[],
    );
}
