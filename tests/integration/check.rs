//! `bbinject check` against wiremock servers answering like api.bitbucket.org
//! and a real git smart-HTTP server.

use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::support::bitbucket_mock::{self as bb, api_url, authenticated, basic, json};
use crate::support::git_server::{GitServer, create_repo};
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

async fn world(
    configure: impl FnOnce(
        crate::support::git_server::GitServerBuilder,
    ) -> crate::support::git_server::GitServerBuilder,
) -> World {
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
async fn app_password_is_diagnosed_as_removed_with_what_to_create_instead() {
    let w = world(|g| g.reject_with(401, "remote: CHANGE-3222 - Functionality has been deprecated\nApp passwords are deprecated and must be replaced with API tokens")).await;
    bb::on_get(
        &w.api,
        "user",
        None,
        json(401, "error-401-token-invalid.json"),
    )
    .await;
    bb::on_get(
        &w.api,
        "repositories/acme/app",
        None,
        json(401, "error-401-token-invalid.json"),
    )
    .await;
    let env = [
        ("BITBUCKET_APP_PASSWORD", FAKE_APP_PASSWORD),
        ("BITBUCKET_USERNAME", "jdoe"),
    ];
    let (bb, run) = check(&w, &env, &["--repo", "acme/app"]);
    assert_eq!(run.code(), 3, "{}", run.describe());
    let report = run.json();
    let problem = run.problem("app-password-removed");
    assert!(
        problem["message"]
            .as_str()
            .is_some_and(|m| m.contains("2026-07-28")),
        "{problem}"
    );
    assert!(
        problem["hint"]
            .as_str()
            .is_some_and(|h| h.contains("read:repository:bitbucket")),
        "{problem}"
    );
    assert_eq!(report["repositories"][0]["read"], "rejected");
    assert_no_leak(&run, bb.dir.path(), FAKE_APP_PASSWORD, &["jdoe"], &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_token_value_with_an_app_password_prefix_is_called_out() {
    let w = world(|g| g).await;
    let env = [("BITBUCKET_API_TOKEN", FAKE_APP_PASSWORD)];
    let (_, run) = check(&w, &env, &["--repo", "acme/app"]);
    assert_eq!(run.code(), 3, "{}", run.describe());
    let codes = run.problem_codes();
    assert!(
        codes.contains(&"looks-like-app-password".to_owned()),
        "{codes:?}"
    );
    assert!(
        codes.contains(&"app-password-removed".to_owned()),
        "{codes:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_scope_is_named_from_the_403_body() {
    let w = world(|g| g.user(GIT_USER, FAKE_API_TOKEN)).await;
    bb::on_get(
        &w.api,
        "user",
        None,
        json(403, "error-403-insufficient-scopes.json"),
    )
    .await;
    bb::on_get(
        &w.api,
        "repositories/acme/app",
        None,
        json(403, "error-403-insufficient-scopes.json"),
    )
    .await;
    let (_, run) = check(&w, &api_token_env(), &["--repo", "acme/app"]);
    assert_eq!(run.code(), 4, "{}", run.describe());
    let problem = run.problem("missing-scope");
    assert!(
        problem["message"]
            .as_str()
            .is_some_and(|m| m.contains("account") && m.contains("team")),
        "{problem}"
    );
    // /user without read:user:bitbucket is only a warning: git does not need it.
    assert!(
        run.problem_codes()
            .contains(&"identity-unavailable".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn git_403_names_the_read_scope() {
    let w = world(|g| g.reject_with(403, "Forbidden")).await;
    let (_, run) = check(
        &w,
        &[("BITBUCKET_API_TOKEN", FAKE_API_TOKEN)],
        &["--repo", "acme/app"],
    );
    assert_eq!(run.code(), 4, "{}", run.describe());
    let report = run.json();
    let problem = run.problem("missing-scope");
    assert!(
        problem["hint"]
            .as_str()
            .is_some_and(|h| h.contains("read:repository:bitbucket")),
        "{problem}"
    );
    // Without BITBUCKET_EMAIL the API probe is skipped, and the report says so.
    assert_eq!(report["repositories"][0]["api"], "skipped");
    assert!(
        run.problem_codes()
            .contains(&"rest-email-missing".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn private_repository_not_visible_is_not_found_with_a_hint() {
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
        "repositories/acme/secret",
        None,
        json(404, "error-404-repo-not-accessible.json"),
    )
    .await;
    let (_, run) = check(&w, &api_token_env(), &["--repo", "acme/secret"]);
    assert_eq!(run.code(), 4, "{}", run.describe());
    let report = run.json();
    assert_eq!(report["repositories"][0]["api"], "not_found");
    assert_eq!(report["repositories"][0]["read"], "not_found");
    let codes = run.problem_codes();
    let not_found = codes
        .iter()
        .filter(|c| *c == "repository-not-found")
        .count();
    assert_eq!(
        not_found, 1,
        "the API and git agree, so it is reported once: {codes:?}"
    );
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
async fn public_repository_answered_anonymously_is_not_proof() {
    let w = world(|g| g.user(GIT_USER, FAKE_API_TOKEN)).await;
    bb::on_get(
        &w.api,
        "user",
        None,
        authenticated(bb::fixture("user.json"), "api_token"),
    )
    .await;
    // No x-credential-type: Bitbucket treated the request as anonymous.
    bb::on_get(
        &w.api,
        "repositories/acme/public",
        None,
        json(200, "repository.json"),
    )
    .await;
    let (_, run) = check(&w, &api_token_env(), &["--repo", "acme/public"]);
    assert_eq!(run.code(), 3, "{}", run.describe());
    assert!(
        run.problem_codes()
            .contains(&"authentication-not-proven".to_owned()),
        "{}",
        run.describe()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_token_is_named() {
    let w = world(|g| g).await;
    bb::on_get(
        &w.api,
        "repositories/acme/app",
        None,
        json(401, "error-401-access-token-expired.json"),
    )
    .await;
    let (_, run) = check(
        &w,
        &[("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN)],
        &["--repo", "acme/app"],
    );
    assert_eq!(run.code(), 3, "{}", run.describe());
    let codes = run.problem_codes();
    assert!(codes.contains(&"token-expired".to_owned()), "{codes:?}");
    assert!(
        codes.contains(&"git-credential-rejected".to_owned()),
        "{codes:?}"
    );
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
    let bb = Bb::new()
        .env("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN)
        .args([
            "check",
            "--format",
            "json",
            "--repo",
            "acme/app",
            "--retries",
            "0",
            "--api-url",
            "http://127.0.0.1:9/2.0",
            "--git-url",
            "http://127.0.0.1:9",
        ]);
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
    let w = world(|g| g.user("x-token-auth", FAKE_ACCESS_TOKEN)).await;
    bb::on_get(
        &w.api,
        "repositories/acme/app",
        None,
        authenticated(bb::private_repository(), "repo_access_token"),
    )
    .await;
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
async fn git_rejecting_a_wrong_username_says_which_username_git_needs() {
    let w = world(|g| g.user("jdoe", FAKE_API_TOKEN)).await;
    let env = [
        ("BITBUCKET_API_TOKEN", FAKE_API_TOKEN),
        ("BITBUCKET_USERNAME", "jdoe-typo"),
    ];
    let (_, run) = check(&w, &env, &["--repo", "acme/app"]);
    assert_eq!(run.code(), 3, "{}", run.describe());
    let problem = run.problem("git-credential-rejected");
    assert!(
        problem["hint"]
            .as_str()
            .is_some_and(|h| h.contains("jdoe-typo") && h.contains(GIT_USER)),
        "{problem}"
    );
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

#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_tls_certificate_exits_5_and_points_at_ca_file() {
    use crate::support::tls_front::TlsFront;
    let w = world(|g| g.user("x-token-auth", FAKE_ACCESS_TOKEN)).await;
    bb::on_get(
        &w.api,
        "repositories/acme/app",
        None,
        authenticated(bb::private_repository(), "repo_access_token"),
    )
    .await;
    let api_tls = TlsFront::start(*w.api.address());
    let git_addr: std::net::SocketAddr =
        format!("127.0.0.1:{}", w.git.port()).parse().expect("addr");
    let git_tls = TlsFront::start(git_addr);
    let args = |bb: Bb| {
        bb.env("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN).args([
            "check",
            "--format",
            "json",
            "--repo",
            "acme/app",
            "--retries",
            "0",
            "--api-url",
            &format!("{}/2.0", api_tls.url()),
            "--git-url",
            &git_tls.url(),
        ])
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

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_proxy_is_reported_as_a_proxy_error_without_its_password() {
    use crate::support::tls_front::TlsFront;
    let w = world(|g| g).await;
    let api_tls = TlsFront::start(*w.api.address());
    let bb = Bb::new()
        .env("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN)
        .env(
            "HTTPS_PROXY",
            "http://proxyuser:FAKE-proxy-password@127.0.0.1:9",
        )
        .args([
            "check",
            "--format",
            "json",
            "--repo",
            "acme/app",
            "--retries",
            "0",
            "--api-url",
            &format!("{}/2.0", api_tls.url()),
            "--git-url",
            &api_tls.url(),
        ]);
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

#[tokio::test(flavor = "multi_thread")]
async fn gone_410_answers_are_explained() {
    // git answering 410 with CHANGE-3222 means the value is an app password,
    // whatever variable it was put in.
    let w = world(|g| g.reject_with(410, "CHANGE-3222 - Functionality has been deprecated")).await;
    bb::on_get(
        &w.api,
        "repositories/acme/app",
        None,
        json(410, "error-410-change-2770.json"),
    )
    .await;
    let (_, run) = check(
        &w,
        &[("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN)],
        &["--repo", "acme/app"],
    );
    assert_eq!(run.code(), 3, "{}", run.describe());
    let codes = run.problem_codes();
    assert!(
        codes.contains(&"app-password-removed".to_owned()),
        "{codes:?}"
    );
    // The API's 410 for a removed endpoint (CHANGE-2770) is quoted, not guessed at.
    assert!(
        codes.contains(&"unexpected-response".to_owned()),
        "{codes:?}"
    );
    assert!(run.stdout.contains("CHANGE-2770"), "{}", run.stdout);
}
