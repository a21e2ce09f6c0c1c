//! The diagnosis: probe outcomes in, problems out. Each HTTP status, error
//! body and transport failure of each probe becomes one [`Problem`] with a
//! stable code, a message and a hint in Bitbucket's own terms (which scope,
//! which username, which page). Pure functions, tested as a table without
//! HTTP; the orchestration that sends requests is in `preflight`. It never
//! quotes server text without passing it through the subject's mask, and
//! never sees a secret except to recognise an app password by its prefix.

use super::api;
use super::http::{self, Reply, TransportError};
use super::report::{Problem, Verdict};
use crate::codes::ProblemCode;
use crate::credential::{Credential, Kind, RepoRef};

/// A `--repo` no credential of the config serves.
pub(super) fn no_credential_for(repo: &RepoRef) -> Problem {
    Problem::error(
        ProblemCode::NoCredentialForRepository,
        format!("no credential in the config matches {repo}"),
        "add its workspace or workspace/slug to a credential's `match:` list, or \
         add a credential without `match:` as the default",
    )
    .for_repository(repo)
}

/// Nothing could be asked about `credential` (no `--repo`, and no identity).
/// `can_ask_rest`: whether the REST API could be asked at all.
pub(super) fn not_verified(credential: &Credential, can_ask_rest: bool) -> Problem {
    let why = if !credential.has_user_identity() {
        "access tokens cannot ask Bitbucket who they are"
    } else if !can_ask_rest {
        "the REST API cannot be asked about an API token without BITBUCKET_EMAIL"
    } else {
        "GET /user did not confirm it"
    };
    Problem::warning(
        ProblemCode::NotVerified,
        format!("only the form of the credential was checked: no --repo was given and {why}"),
        "pass --repo WORKSPACE/SLUG to prove the credential works for that repository",
    )
    .for_credential(&credential.name)
}

/// The token endpoint answered 200 without a token.
pub(super) fn no_access_token(
    url: &impl std::fmt::Display,
    problem: super::api::TokenReplyProblem,
) -> Problem {
    let what = match problem {
        super::api::TokenReplyProblem::Missing => "without an access_token".to_owned(),
        super::api::TokenReplyProblem::Unreadable(what) => format!("with {what}"),
        super::api::TokenReplyProblem::Unusable(what) => {
            format!("with an access_token holding {what} (refused; never stored or sent)")
        }
    };
    Problem::error(
        ProblemCode::UnexpectedResponse,
        format!("{url} answered 200 {what}"),
        "check --token-url; the default is https://bitbucket.org/site/oauth2/access_token",
    )
}

/// The token endpoint refused the OAuth consumer (400/401/403). `said` is
/// the endpoint's error, already masked.
pub(super) fn oauth_refused(
    client_id: &str,
    url: &impl std::fmt::Display,
    status: u16,
    said: Option<&str>,
) -> Problem {
    let said = said.map(|e| format!(" ({e})")).unwrap_or_default();
    Problem::error(
        ProblemCode::OauthExchangeFailed,
        format!("the OAuth consumer {client_id} was refused a token by {url}: HTTP {status}{said}"),
        "check BITBUCKET_OAUTH_CLIENT_ID (the consumer's Key) and \
         BITBUCKET_OAUTH_CLIENT_SECRET (its Secret) under Workspace settings > OAuth \
         consumers; the consumer must be private (\"This is a private consumer\") for \
         client credentials",
    )
}

/// `GET /user` answered 403: authenticated, but the identity is not ours to see.
pub(super) fn identity_unavailable(required: &[String]) -> Problem {
    let missing = if required.is_empty() {
        "read:user:bitbucket".to_owned()
    } else {
        required.join(", ")
    };
    Problem::warning(
        ProblemCode::IdentityUnavailable,
        format!(
            "Bitbucket accepted the credential but will not say whose it is (missing {missing})"
        ),
        "not needed for git; add the read:user:bitbucket scope to see the identity here",
    )
}

/// A public repository answered 200 without proof that the credential was used.
pub(super) fn authentication_not_proven(credential: &Credential, repo: &RepoRef) -> Problem {
    Problem::error(
        ProblemCode::AuthenticationNotProven,
        format!(
            "{repo} is public and Bitbucket answered without saying it used the \
             credential (no x-credential-type header): a malformed credential is \
             treated as anonymous"
        ),
        rejected_hint(credential, Probe::Api),
    )
}

/// `info/refs` (or the LFS batch API) answered 200 with something that is
/// not its answer: a login page, a proxy's HTML.
pub(super) fn not_a_git_server(
    git_url: &impl std::fmt::Display,
    content_type: Option<&str>,
    repo: &RepoRef,
    lfs: bool,
) -> Problem {
    let (what, hint) = if lfs {
        (
            "a Git LFS server",
            "check --git-url and any proxy in front of it: the LFS batch API answers JSON \
             (application/vnd.git-lfs+json)",
        )
    } else {
        (
            "a git server",
            "check --git-url: it is the host of the clone URL, https://bitbucket.org by default",
        )
    };
    Problem::error(
        ProblemCode::UnexpectedResponse,
        format!(
            "{git_url} did not answer like {what} for {repo} (content type {})",
            content_type.unwrap_or("none")
        ),
        hint,
    )
}

/// The LFS batch API answered 404 where git itself works.
pub(super) fn lfs_unavailable(repo: &RepoRef) -> Problem {
    Problem::error(
        ProblemCode::LfsUnavailable,
        format!("Git LFS is not available for {repo} (its batch API answered 404) while git is"),
        "enable Git LFS in the repository settings (Repository settings > Git LFS), or drop --lfs \
         if the build does not use it",
    )
}

/// `git-receive-pack` refused (401/403) after `git-upload-pack` succeeded.
pub(super) fn write_not_allowed(kind: Kind, repo: &RepoRef, status: u16) -> Problem {
    Problem::error(
        ProblemCode::WriteNotAllowed,
        format!(
            "{} can clone {repo} but not push to it (git-receive-pack answered {status})",
            kind.description()
        ),
        write_hint(kind),
    )
}

/// The credential a problem is about, and how to mask server text that may
/// echo any form of its secrets.
pub(super) struct Subject<'a> {
    pub credential: &'a Credential,
    pub mask: &'a dyn Fn(&str) -> String,
}

/// Which request an answer came from, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Probe {
    Api,
    Identity,
    GitRead,
    GitWrite,
    Lfs,
    Token,
}

impl Probe {
    /// The options that say where this probe goes, for a hint.
    fn url_flags(self) -> &'static str {
        match self {
            Probe::Token => "--token-url",
            Probe::Api | Probe::Identity => "--api-url",
            Probe::GitRead | Probe::GitWrite | Probe::Lfs => "--git-url",
        }
    }

    pub(super) fn describe(self) -> &'static str {
        match self {
            Probe::Api => "the REST API",
            Probe::Identity => "the REST API (GET /user)",
            Probe::GitRead => "git (clone/fetch)",
            Probe::GitWrite => "git (push)",
            Probe::Lfs => "Git LFS (batch API)",
            Probe::Token => "the OAuth token endpoint",
        }
    }
}

/// Explains an HTTP status that is not success.
pub(super) fn status_problem(
    subject: &Subject<'_>,
    reply: &Reply,
    probe: Probe,
    repo: Option<&RepoRef>,
) -> Problem {
    let kind = subject.credential.kind();
    let body = api::error_body(&reply.body);
    let text = (subject.mask)(&reply.text());
    let said = body
        .message
        .as_deref()
        .map(|m| format!(": \"{}\"", (subject.mask)(m)))
        .unwrap_or_default();
    let where_ = repo.map(|r| format!(" for {r}")).unwrap_or_default();
    let is_git = matches!(probe, Probe::GitRead | Probe::GitWrite | Probe::Lfs);
    let app_password_text =
        text.contains("CHANGE-3222") || text.to_ascii_lowercase().contains("app password");
    let problem = match reply.status {
        401 | 410
            if kind == Kind::AppPassword
                || app_password_text
                || Kind::from_prefix(subject.credential.secret().expose())
                    == Some(Kind::AppPassword) =>
        {
            Problem::error(
                ProblemCode::AppPasswordRemoved,
                format!(
                    "{} rejected the credential{where_} (HTTP {}): it is an app password, and app \
                     passwords were removed from Bitbucket Cloud on 2026-07-28",
                    probe.describe(),
                    reply.status
                ),
                crate::credential::APP_PASSWORD_HINT,
            )
        }
        401 if body
            .message
            .as_deref()
            .is_some_and(|m| m.contains("Access token expired")) =>
        {
            Problem::error(
                ProblemCode::TokenExpired,
                format!("{} says the token has expired{where_}", probe.describe()),
                match kind {
                    Kind::OauthClientCredentials => {
                        "run again: OAuth tokens last two hours and bbinject fetches a new one each run"
                    }
                    _ => {
                        "create a new token (an expiry date is set when a token is created) and update the CI secret"
                    }
                },
            )
        }
        401 if is_git && subject.credential.git_username().contains('@') => Problem::error(
            ProblemCode::GitUsernameIsEmail,
            format!(
                "git rejected the username {}{where_}: git needs the Bitbucket username, not the email",
                subject.credential.git_username()
            ),
            "set BITBUCKET_USERNAME to your Bitbucket username (Personal settings > Account \
             settings), or leave it unset to use x-bitbucket-api-token-auth",
        ),
        401 => Problem::error(
            if is_git {
                ProblemCode::GitCredentialRejected
            } else {
                ProblemCode::CredentialRejected
            },
            format!(
                "{} rejected the {}{where_} (HTTP 401{said})",
                probe.describe(),
                kind.description()
            ),
            rejected_hint(subject.credential, probe),
        ),
        403 if !body.required.is_empty() => Problem::error(
            ProblemCode::MissingScope,
            format!(
                "the {} lacks the scope {}{where_}{}",
                kind.description(),
                body.required.join(", "),
                if body.granted.is_empty() {
                    String::new()
                } else {
                    format!(" (it has {})", body.granted.join(", "))
                }
            ),
            scope_hint(kind, &body.required.join(", ")),
        ),
        403 if body
            .message
            .as_deref()
            .is_some_and(|m| m.contains("authentication mechanism")) =>
        {
            Problem::error(
                ProblemCode::AuthMechanismNotAllowed,
                format!(
                    "{} refuses this kind of credential{where_}{said}",
                    probe.describe()
                ),
                "access tokens cannot call user- or workspace-wide endpoints; this is expected for \
                 them and harmless for git",
            )
        }
        403 if is_git => {
            let scope = match kind {
                Kind::ApiToken => "read:repository:bitbucket",
                _ => "repository (read)",
            };
            Problem::error(
                ProblemCode::MissingScope,
                format!(
                    "{} refused to let the {} read{where_} (HTTP 403)",
                    if probe == Probe::Lfs {
                        "Git LFS"
                    } else {
                        "git"
                    },
                    kind.description()
                ),
                scope_hint(kind, scope),
            )
        }
        403 => Problem::error(
            ProblemCode::Forbidden,
            format!("{} answered 403 Forbidden{where_}{said}", probe.describe()),
            "the account or token has no access here; ask a workspace admin to grant it",
        ),
        404 => Problem::error(
            ProblemCode::RepositoryNotFound,
            format!(
                "{} not found, or not visible to this credential ({} answered 404; Bitbucket \
                 answers 404, not 403, for private repositories you cannot see)",
                repo.map(|r| r.to_string())
                    .unwrap_or_else(|| "the resource".into()),
                probe.describe()
            ),
            match kind {
                Kind::AccessToken => {
                    "check the workspace id and slug in the repository URL; an access \
                    token sees only the repository, project or workspace it was created in"
                }
                _ => {
                    "check the workspace id (not your username) and the slug in the repository URL \
                    (bitbucket.org/WORKSPACE/SLUG), and that the account has access to it"
                }
            },
        ),
        429 => Problem::error(
            ProblemCode::RateLimited,
            format!(
                "{} rate-limited the request{where_} after {} attempts (HTTP 429)",
                probe.describe(),
                reply.attempts
            ),
            "wait a few minutes; if many builds share one credential, spread them across tokens",
        ),
        500..=599 => Problem::error(
            ProblemCode::BitbucketUnavailable,
            format!(
                "{} failed{where_} with HTTP {} after {} attempts",
                probe.describe(),
                reply.status,
                reply.attempts
            ),
            "Bitbucket may be having an incident (see bitbucket.status.atlassian.com); run again later",
        ),
        300..=399 => Problem::error(
            ProblemCode::UnexpectedResponse,
            format!(
                "{} redirected{where_} (HTTP {}) to {}",
                probe.describe(),
                reply.status,
                reply
                    .header("location")
                    .map(http::strip_userinfo)
                    .unwrap_or_default()
            ),
            format!(
                "check {}; bbinject does not follow redirects with credentials",
                probe.url_flags()
            ),
        ),
        status => Problem::error(
            ProblemCode::UnexpectedResponse,
            format!("{} answered HTTP {status}{where_}{said}", probe.describe()),
            format!("check {}", probe.url_flags()),
        ),
    };
    let problem = problem.for_credential(&subject.credential.name);
    match repo {
        Some(r) => problem.for_repository(r),
        None => problem,
    }
}

pub(super) fn rejected_hint(cred: &Credential, probe: Probe) -> String {
    match (cred.kind(), probe) {
        (Kind::ApiToken, Probe::GitRead | Probe::GitWrite | Probe::Lfs) => format!(
            "git was given the username {}: it must be your Bitbucket username or \
             x-bitbucket-api-token-auth, and the token must be a scoped API token with \
             read:repository:bitbucket that is not revoked or expired",
            cred.git_username()
        ),
        (Kind::ApiToken, _) => "the REST API needs the Atlassian account email in BITBUCKET_EMAIL \
             (not the Bitbucket username) and a scoped API token with Bitbucket scopes; unscoped \
             tokens do not work with Bitbucket"
            .into(),
        (Kind::AccessToken, _) => "the access token was revoked, has expired, or was copied \
             wrongly; create a new one under Repository (or Project/Workspace) settings > Access \
             tokens"
            .into(),
        (Kind::OauthClientCredentials, _) => "the token issued to the OAuth consumer was refused; \
             check the consumer still exists and has the Repositories permission"
            .into(),
        (Kind::AppPassword, _) => crate::credential::APP_PASSWORD_HINT.into(),
    }
}

pub(super) fn transport_problem(error: &TransportError, host: &str, probe: Probe) -> Problem {
    let what = probe.describe();
    match error {
        TransportError::Timeout { detail } => Problem::error(
            ProblemCode::Timeout,
            format!("{what} at {host} did not answer in time ({detail})"),
            "raise --timeout, or check that the agent can reach the host (firewall, HTTPS_PROXY)",
        ),
        TransportError::Tls { detail } => Problem::error(
            ProblemCode::TlsUntrusted,
            format!("the TLS certificate of {host} is not trusted ({detail})"),
            "if a proxy inspects TLS, give its root CA with --ca-file FILE or SSL_CERT_FILE=FILE",
        ),
        TransportError::TlsName { detail } => Problem::error(
            ProblemCode::TlsNameMismatch,
            format!("the TLS certificate of {host} is for another host name ({detail})"),
            "check the host in --api-url / --git-url, or the TLS-inspecting proxy's certificate \
             for this host; trusting a CA (--ca-file) cannot fix a name mismatch",
        ),
        TransportError::Proxy { detail } => Problem::error(
            ProblemCode::ProxyError,
            format!("the proxy failed for {host} ({detail})"),
            "check HTTPS_PROXY / NO_PROXY and the proxy's credentials",
        ),
        TransportError::Dns { detail } => Problem::error(
            ProblemCode::Unreachable,
            format!("cannot resolve {host} ({detail})"),
            "check the agent's DNS and network, or the host in --api-url / --git-url",
        ),
        TransportError::Connect { detail } | TransportError::Other { detail } => Problem::error(
            ProblemCode::Unreachable,
            format!("cannot reach {what} at {host} ({detail})"),
            "check the agent's network, firewall and HTTPS_PROXY, or the host in --api-url / --git-url",
        ),
    }
}

pub(super) fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Ok,
        401 | 410 => Verdict::Rejected,
        403 => Verdict::Denied,
        404 => Verdict::NotFound,
        _ => Verdict::Unknown,
    }
}

pub(super) fn scope_hint(kind: Kind, scope: &str) -> String {
    match kind {
        Kind::ApiToken => format!(
            "scopes cannot be added to an existing API token: create a new one with {scope} at \
             id.atlassian.com > Security > API tokens > Create API token with scopes"
        ),
        Kind::AccessToken => format!(
            "create a new access token with the {scope} scope under Repository settings > Access tokens"
        ),
        Kind::OauthClientCredentials => format!(
            "give the OAuth consumer the {scope} permission under Workspace settings > OAuth consumers"
        ),
        Kind::AppPassword => crate::credential::APP_PASSWORD_HINT.into(),
    }
}

pub(super) fn write_hint(kind: Kind) -> String {
    match kind {
        Kind::ApiToken => {
            "the token needs write:repository:bitbucket (create a new API token with it) \
            and the account needs write access to the repository"
                .into()
        }
        Kind::AccessToken => "create the access token with the repository:write scope".into(),
        Kind::OauthClientCredentials => {
            "give the OAuth consumer the Repositories: Write permission".into()
        }
        Kind::AppPassword => crate::credential::APP_PASSWORD_HINT.into(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::credential::Material;
    use crate::secret::Secret;

    use crate::testing::fixture;

    fn credential(kind: Kind) -> Credential {
        let secret = || Secret::new("FAKEFAKE-token-000000000000".into());
        let material = match kind {
            Kind::ApiToken => Material::ApiToken {
                token: secret(),
                username: None,
                email: Some("jdoe@example.com".into()),
            },
            Kind::AccessToken => Material::AccessToken { token: secret() },
            Kind::OauthClientCredentials => Material::OauthClientCredentials {
                client_id: "consumer".into(),
                client_secret: secret(),
            },
            Kind::AppPassword => Material::AppPassword {
                username: "jdoe".into(),
                password: secret(),
            },
        };
        Credential {
            name: "env".into(),
            source: crate::credential::Source::Env("TEST".into()),
            material,
            warnings: vec![],
            allow: vec![],
            secret_file: None,
        }
    }

    fn reply(status: u16, body: &[u8]) -> Reply {
        Reply {
            status,
            headers: reqwest::header::HeaderMap::new(),
            body: body.to_vec(),
            attempts: 1,
        }
    }

    fn status(kind: Kind, probe: Probe, reply: &Reply) -> Problem {
        let credential = credential(kind);
        let mask = |text: &str| text.replace("FAKEFAKE-token-000000000000", "****");
        let subject = Subject {
            credential: &credential,
            mask: &mask,
        };
        let repo = RepoRef::parse("acme/app").expect("repo");
        status_problem(&subject, reply, probe, Some(&repo))
    }

    /// Every problem the diagnosis can give, from the outcome that gives it.
    #[test]
    fn each_probe_outcome_is_diagnosed_with_its_code() {
        use Kind::{AccessToken, ApiToken, AppPassword, OauthClientCredentials as Oauth};
        use Probe::{Api, GitRead, GitWrite, Identity, Token};
        let repo = RepoRef::parse("acme/app").expect("repo");
        let scopes = fixture("error-403-insufficient-scopes.json");
        let mechanism = fixture("error-403-auth-mechanism.json");
        let expired = fixture("error-401-access-token-expired.json");
        let invalid = fixture("error-401-token-invalid.json");
        let forbidden = fixture("error-403-forbidden.json");
        let not_found = fixture("error-404-repo-not-accessible.json");
        let change = b"remote: CHANGE-3222 - Functionality has been deprecated";
        let mut redirect = reply(302, b"");
        redirect.headers.insert(
            "location",
            "https://user:pw@example.com/login".parse().expect("header"),
        );
        let mut email_git = credential(ApiToken);
        email_git.material = Material::ApiToken {
            token: Secret::new("FAKEFAKE-token-000000000000".into()),
            username: Some("jdoe@example.com".into()),
            email: None,
        };
        let no_email_mask = |t: &str| t.to_owned();
        let email_subject = Subject {
            credential: &email_git,
            mask: &no_email_mask,
        };
        let rows: Vec<(&str, Problem, ProblemCode)> = vec![
            (
                "app password, 401",
                status(AppPassword, Api, &reply(401, &invalid)),
                ProblemCode::AppPasswordRemoved,
            ),
            (
                "410 naming CHANGE-3222",
                status(ApiToken, GitRead, &reply(410, change)),
                ProblemCode::AppPasswordRemoved,
            ),
            (
                "expired token",
                status(Oauth, Api, &reply(401, &expired)),
                ProblemCode::TokenExpired,
            ),
            (
                "email as git username",
                status_problem(&email_subject, &reply(401, b""), GitRead, Some(&repo)),
                ProblemCode::GitUsernameIsEmail,
            ),
            (
                "git 401",
                status(ApiToken, GitRead, &reply(401, b"")),
                ProblemCode::GitCredentialRejected,
            ),
            (
                "REST 401",
                status(ApiToken, Api, &reply(401, &invalid)),
                ProblemCode::CredentialRejected,
            ),
            (
                "403 with required scopes",
                status(Oauth, Identity, &reply(403, &scopes)),
                ProblemCode::MissingScope,
            ),
            (
                "403 auth mechanism",
                status(AccessToken, Identity, &reply(403, &mechanism)),
                ProblemCode::AuthMechanismNotAllowed,
            ),
            (
                "git 403",
                status(AccessToken, GitRead, &reply(403, b"")),
                ProblemCode::MissingScope,
            ),
            (
                "other 403",
                status(ApiToken, Api, &reply(403, &forbidden)),
                ProblemCode::Forbidden,
            ),
            (
                "404",
                status(ApiToken, Api, &reply(404, &not_found)),
                ProblemCode::RepositoryNotFound,
            ),
            (
                "429",
                status(ApiToken, Api, &reply(429, b"Rate limit")),
                ProblemCode::RateLimited,
            ),
            (
                "503",
                status(ApiToken, GitWrite, &reply(503, b"")),
                ProblemCode::BitbucketUnavailable,
            ),
            (
                "redirect",
                status(ApiToken, Api, &redirect),
                ProblemCode::UnexpectedResponse,
            ),
            (
                "418",
                status(ApiToken, Token, &reply(418, b"")),
                ProblemCode::UnexpectedResponse,
            ),
            (
                "timeout",
                transport_problem(&TransportError::Timeout { detail: "x".into() }, "h", Api),
                ProblemCode::Timeout,
            ),
            (
                "untrusted TLS",
                transport_problem(&TransportError::Tls { detail: "x".into() }, "h", Api),
                ProblemCode::TlsUntrusted,
            ),
            (
                "TLS name",
                transport_problem(&TransportError::TlsName { detail: "x".into() }, "h", Api),
                ProblemCode::TlsNameMismatch,
            ),
            (
                "proxy",
                transport_problem(&TransportError::Proxy { detail: "x".into() }, "h", Api),
                ProblemCode::ProxyError,
            ),
            (
                "dns",
                transport_problem(&TransportError::Dns { detail: "x".into() }, "h", Api),
                ProblemCode::Unreachable,
            ),
            (
                "connect",
                transport_problem(
                    &TransportError::Connect { detail: "x".into() },
                    "h",
                    GitRead,
                ),
                ProblemCode::Unreachable,
            ),
            (
                "no route",
                no_credential_for(&repo),
                ProblemCode::NoCredentialForRepository,
            ),
            (
                "nothing asked",
                not_verified(&credential(AccessToken), true),
                ProblemCode::NotVerified,
            ),
            (
                "token endpoint 200 without token",
                no_access_token(&"https://t", super::super::api::TokenReplyProblem::Missing),
                ProblemCode::UnexpectedResponse,
            ),
            (
                "consumer refused",
                oauth_refused("consumer", &"https://t", 401, Some("invalid_client")),
                ProblemCode::OauthExchangeFailed,
            ),
            (
                "GET /user 403",
                identity_unavailable(&[]),
                ProblemCode::IdentityUnavailable,
            ),
            (
                "public, unproven",
                authentication_not_proven(&credential(ApiToken), &repo),
                ProblemCode::AuthenticationNotProven,
            ),
            (
                "HTML instead of git",
                not_a_git_server(&"https://bitbucket.org", Some("text/html"), &repo, false),
                ProblemCode::UnexpectedResponse,
            ),
            (
                "push refused",
                write_not_allowed(ApiToken, &repo, 403),
                ProblemCode::WriteNotAllowed,
            ),
            (
                "LFS not enabled",
                lfs_unavailable(&repo),
                ProblemCode::LfsUnavailable,
            ),
            (
                "LFS 401",
                status(AccessToken, Probe::Lfs, &reply(401, b"")),
                ProblemCode::GitCredentialRejected,
            ),
        ];
        let mut covered = HashSet::new();
        for (case, problem, expected) in &rows {
            assert_eq!(problem.code, *expected, "{case}: {}", problem.message);
            assert!(
                !problem.message.is_empty() && !problem.hint.is_empty(),
                "{case}"
            );
            assert!(
                !problem.message.contains("FAKEFAKE"),
                "{case}: {}",
                problem.message
            );
            assert!(
                !problem.message.contains("user:pw@"),
                "{case}: {}",
                problem.message
            );
            covered.insert(*expected);
        }
        // Every code the preflight can raise has a row; the rest come from
        // elsewhere (configuration errors, credential warnings).
        let elsewhere = [
            ProblemCode::Configuration,
            ProblemCode::RestEmailMissing,
            ProblemCode::LooksLikeAppPassword,
            ProblemCode::LooksLikeApiToken,
            ProblemCode::LooksLikeAccessToken,
            ProblemCode::SecretLooksLikeLabel,
            ProblemCode::SecretFilePermissions,
            ProblemCode::AppPasswordDeprecated,
            ProblemCode::UsernameIgnored,
            ProblemCode::SshSubmoduleUrl,
            ProblemCode::AllowRepoNotChecked,
        ];
        for code in ProblemCode::ALL {
            assert!(
                covered.contains(&code) || elsewhere.contains(&code),
                "{code} has no row"
            );
        }
    }

    #[test]
    fn lfs_refusals_are_told_as_git_lfs_with_the_hint_for_git() {
        let problem = status(
            crate::credential::Kind::ApiToken,
            Probe::Lfs,
            &reply(401, b""),
        );
        assert!(
            problem.hint.contains("git was given the username")
                && !problem.hint.contains("BITBUCKET_EMAIL"),
            "{}",
            problem.hint
        );
        let problem = status(
            crate::credential::Kind::AccessToken,
            Probe::Lfs,
            &reply(403, b""),
        );
        assert!(
            problem.message.starts_with("Git LFS refused"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn a_redirect_points_at_the_option_of_the_probe_that_got_it() {
        let mut redirect = reply(302, b"");
        redirect.headers.insert(
            "location",
            "https://example.com/login".parse().expect("header"),
        );
        for (probe, flag) in [
            (Probe::Token, "--token-url"),
            (Probe::Api, "--api-url"),
            (Probe::GitRead, "--git-url"),
        ] {
            let problem = status(crate::credential::Kind::AccessToken, probe, &redirect);
            assert!(problem.hint.contains(flag), "{flag}: {}", problem.hint);
        }
    }

    #[test]
    fn verdicts_follow_the_status() {
        for (code, verdict_expected) in [
            (200, Verdict::Ok),
            (204, Verdict::Ok),
            (401, Verdict::Rejected),
            (410, Verdict::Rejected),
            (403, Verdict::Denied),
            (404, Verdict::NotFound),
            (500, Verdict::Unknown),
            (429, Verdict::Unknown),
        ] {
            assert_eq!(verdict(code), verdict_expected, "{code}");
        }
    }
}
