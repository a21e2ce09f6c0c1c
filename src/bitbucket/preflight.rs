//! The preflight: runs the API probe and the git probe for every repository
//! with the credential that serves it, and explains every failure in
//! Bitbucket's own terms (which scope, which username, which page).
//!
//! It never fails as a function: every outcome, including an unreachable
//! Bitbucket, becomes part of the [`Report`].

use super::Need;
use super::api::{self, Auth};
use super::endpoint::Endpoints;
use super::git_probe::{self, Service};
use super::http::{self, HttpError, HttpSettings, Reply, TransportError};
use super::report::{CredentialSummary, Problem, RepoResult, Report, Verdict};
use crate::codes::ProblemCode;
use crate::credential::{Credential, CredentialSet, Kind, RepoRef, RestAuth};
use crate::secret::Secret;

pub struct Preflight {
    client: reqwest::Client,
    http: HttpSettings,
    endpoints: Endpoints,
    need: Need,
}

/// Which request an answer came from, for messages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Probe {
    Api,
    Identity,
    GitRead,
    GitWrite,
    Token,
}

impl Probe {
    fn describe(self) -> &'static str {
        match self {
            Probe::Api => "the REST API",
            Probe::Identity => "the REST API (GET /user)",
            Probe::GitRead => "git (clone/fetch)",
            Probe::GitWrite => "git (push)",
            Probe::Token => "the OAuth token endpoint",
        }
    }
}

/// One credential while it is being probed.
struct Probing<'a> {
    credential: &'a Credential,
    /// The bearer token an OAuth consumer was exchanged for.
    bearer: Option<Secret>,
    summary: CredentialSummary,
}

impl Probing<'_> {
    fn rest(&self) -> Option<Auth<'_>> {
        match self.credential.rest_auth() {
            RestAuth::Basic { user, password } => Some(Auth::Basic { user, password }),
            RestAuth::Bearer(token) => Some(Auth::Bearer(token)),
            RestAuth::Exchange { .. } => self.bearer.as_ref().map(Auth::Bearer),
            RestAuth::Unavailable => None,
        }
    }

    fn git(&self) -> Option<Auth<'_>> {
        let user = self.credential.git_username();
        match self.credential.kind() {
            Kind::OauthClientCredentials => self
                .bearer
                .as_ref()
                .map(|password| Auth::Basic { user, password }),
            _ => Some(Auth::Basic {
                user,
                password: self.credential.secret(),
            }),
        }
    }

    /// Server text with every form of every secret in play masked.
    fn scrub(&self, text: &str) -> String {
        let names = self.credential.usernames();
        let mut secrets = vec![(self.credential.secret(), names.as_slice())];
        if let Some(bearer) = &self.bearer {
            secrets.push((bearer, names.as_slice()));
        }
        crate::redact::scrub(text, &secrets)
    }

    fn name(&self) -> &str {
        &self.credential.name
    }
}

impl Preflight {
    pub fn new(http: HttpSettings, endpoints: Endpoints, need: Need) -> Result<Self, HttpError> {
        Ok(Self {
            client: http::build_client(&http)?,
            http,
            endpoints,
            need,
        })
    }

    /// Checks `repos` (or, with none, what can be checked of each credential).
    pub async fn run(&self, set: &CredentialSet, repos: &[RepoRef]) -> Report {
        self.run_keeping_tokens(set, repos).await.0
    }

    /// [`Preflight::run`], also returning the bearer token each OAuth consumer
    /// it probed was exchanged for (by credential index), so `exec` need not
    /// ask the token endpoint again.
    pub async fn run_keeping_tokens(
        &self,
        set: &CredentialSet,
        repos: &[RepoRef],
    ) -> (Report, Vec<Option<Secret>>) {
        let mut tokens: Vec<Option<Secret>> = (0..set.len()).map(|_| None).collect();
        let mut report = Report::new(self.need);
        let routes: Vec<(&RepoRef, Option<usize>)> =
            repos.iter().map(|r| (r, set.route(r))).collect();
        for (repo, route) in &routes {
            if route.is_none() {
                report.push(
                    Problem::error(
                        ProblemCode::NoCredentialForRepository,
                        format!("no credential in the config matches {repo}"),
                        "add its workspace or workspace/slug to a credential's `match:` list, or \
                         add a credential without `match:` as the default",
                    )
                    .for_repository(repo),
                );
            }
        }
        let in_play: Vec<usize> = if repos.is_empty() {
            (0..set.len()).collect()
        } else {
            let mut used: Vec<usize> = routes.iter().filter_map(|(_, r)| *r).collect();
            used.sort_unstable();
            used.dedup();
            used
        };

        for index in in_play {
            let credential = set.credential(index);
            let mut probing = Probing {
                credential,
                bearer: None,
                summary: summary(credential),
            };
            for w in &credential.warnings {
                report.push(
                    Problem::warning(w.code, w.message.clone(), w.hint.clone())
                        .for_credential(&credential.name),
                );
            }
            let mine: Vec<&RepoRef> = routes
                .iter()
                .filter(|(_, r)| *r == Some(index))
                .map(|(repo, _)| *repo)
                .collect();

            let exchanged = self.exchange(&mut probing, &mut report).await;
            let mut verified = false;
            if exchanged {
                verified |= self
                    .identity(&mut probing, &mut report, mine.is_empty())
                    .await;
            }
            for repo in &mine {
                let result = if exchanged {
                    verified = true;
                    self.repository(&mut probing, repo, &mut report).await
                } else {
                    RepoResult {
                        repository: repo.to_string(),
                        credential: probing.name().to_owned(),
                        private: None,
                        api: Verdict::Unknown,
                        read: Verdict::Unknown,
                        write: if self.need == Need::Write {
                            Verdict::Unknown
                        } else {
                            Verdict::NotChecked
                        },
                    }
                };
                report.repositories.push(result);
            }
            // A failed GET /user is reported above; the warning is for
            // credentials nothing could be asked about.
            let failed = report.problems.iter().any(|p| {
                p.credential.as_deref() == Some(credential.name.as_str())
                    && p.severity == crate::bitbucket::Severity::Error
            });
            if !verified && exchanged && !failed {
                let why = if !credential.has_user_identity() {
                    "access tokens cannot ask Bitbucket who they are"
                } else if probing.rest().is_none() {
                    "the REST API cannot be asked about an API token without BITBUCKET_EMAIL"
                } else {
                    "GET /user did not confirm it"
                };
                report.push(
                    Problem::warning(
                        ProblemCode::NotVerified,
                        format!(
                            "only the form of the credential was checked: no --repo was given and {why}"
                        ),
                        "pass --repo WORKSPACE/SLUG to prove the credential works for that repository",
                    )
                    .for_credential(&credential.name),
                );
            }
            tokens[index] = probing.bearer.take();
            report.credentials.push(probing.summary);
        }
        (report, tokens)
    }

    /// The bearer token of every OAuth consumer in `set` (`None` for other
    /// kinds), for the broker: tokens in `known` are kept, the others fetched.
    /// A report of what failed otherwise.
    pub async fn bearer_tokens(
        &self,
        set: &CredentialSet,
        known: Vec<Option<Secret>>,
    ) -> Result<Vec<Option<Secret>>, Report> {
        let mut report = Report::new(self.need);
        let mut tokens = Vec::with_capacity(set.len());
        let mut known = known.into_iter();
        for credential in set.credentials() {
            let mut probing = Probing {
                credential,
                bearer: known.next().flatten(),
                summary: summary(credential),
            };
            if probing.bearer.is_none() && !self.exchange(&mut probing, &mut report).await {
                return Err(report);
            }
            tokens.push(probing.bearer.take());
        }
        Ok(tokens)
    }

    /// For OAuth consumers, gets the bearer token; `false` if that failed.
    async fn exchange(&self, probing: &mut Probing<'_>, report: &mut Report) -> bool {
        let RestAuth::Exchange {
            client_id,
            client_secret,
        } = probing.credential.rest_auth()
        else {
            return true;
        };
        let url = &self.endpoints.token;
        match api::exchange(&self.http, &self.client, url, client_id, client_secret).await {
            Ok(mut reply) if reply.status == 200 => {
                probing.bearer = api::take_access_token(&mut reply);
                if probing.bearer.is_none() {
                    report.push(
                        Problem::error(
                            ProblemCode::UnexpectedResponse,
                            format!("{url} answered 200 without an access_token"),
                            "check --token-url; the default is https://bitbucket.org/site/oauth2/access_token",
                        )
                        .for_credential(probing.name()),
                    );
                }
                probing.bearer.is_some()
            }
            Ok(reply) if matches!(reply.status, 400 | 401 | 403) => {
                let said = api::oauth_error(&reply)
                    .map(|e| format!(" ({})", probing.scrub(&e)))
                    .unwrap_or_default();
                report.push(
                    Problem::error(
                        ProblemCode::OauthExchangeFailed,
                        format!(
                            "the OAuth consumer {client_id} was refused a token by {url}: HTTP {}{said}",
                            reply.status
                        ),
                        "check BITBUCKET_OAUTH_CLIENT_ID (the consumer's Key) and \
                         BITBUCKET_OAUTH_CLIENT_SECRET (its Secret) under Workspace settings > OAuth \
                         consumers; the consumer must be private (\"This is a private consumer\") for \
                         client credentials",
                    )
                    .for_credential(probing.name()),
                );
                false
            }
            Ok(reply) => {
                report.push(self.status_problem(probing, &reply, Probe::Token, None));
                false
            }
            Err(e) => {
                report.push(
                    self.transport_problem(&e, url.host(), Probe::Token)
                        .for_credential(probing.name()),
                );
                false
            }
        }
    }

    /// `GET /user`; returns whether the credential was proven to authenticate.
    async fn identity(
        &self,
        probing: &mut Probing<'_>,
        report: &mut Report,
        only_probe: bool,
    ) -> bool {
        if !probing.credential.has_user_identity() {
            return false;
        }
        let reply = {
            let Some(auth) = probing.rest() else {
                return false;
            };
            api::get(
                &self.http,
                &self.client,
                &self.endpoints.api.join("user"),
                &auth,
            )
            .await
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => {
                if only_probe {
                    report.push(
                        self.transport_problem(&e, self.endpoints.api.host(), Probe::Identity)
                            .for_credential(probing.name()),
                    );
                }
                return false;
            }
        };
        self.note_headers(probing, &reply);
        match reply.status {
            200 => {
                probing.summary.identity = api::identity(&reply.body);
                true
            }
            403 => {
                let body = api::error_body(&reply.body);
                let missing = if body.required.is_empty() {
                    "read:user:bitbucket".to_owned()
                } else {
                    body.required.join(", ")
                };
                report.push(
                    Problem::warning(
                        ProblemCode::IdentityUnavailable,
                        format!(
                            "Bitbucket accepted the credential but will not say whose it is (missing {missing})"
                        ),
                        "not needed for git; add the read:user:bitbucket scope to see the identity here",
                    )
                    .for_credential(probing.name()),
                );
                true
            }
            _ => {
                report.push(self.status_problem(probing, &reply, Probe::Identity, None));
                false
            }
        }
    }

    async fn repository(
        &self,
        probing: &mut Probing<'_>,
        repo: &RepoRef,
        report: &mut Report,
    ) -> RepoResult {
        let mut result = RepoResult {
            repository: repo.to_string(),
            credential: probing.name().to_owned(),
            private: None,
            api: Verdict::Skipped,
            read: Verdict::Unknown,
            write: Verdict::NotChecked,
        };

        // 1. The REST API.
        let api_reply = match probing.rest() {
            Some(auth) => {
                let url = api::repository_url(&self.endpoints.api, repo);
                Some(api::get(&self.http, &self.client, &url, &auth).await)
            }
            None => None,
        };
        match api_reply {
            None => {}
            Some(Err(e)) => {
                result.api = Verdict::Unknown;
                report.push(
                    self.transport_problem(&e, self.endpoints.api.host(), Probe::Api)
                        .for_repository(repo)
                        .for_credential(probing.name()),
                );
            }
            Some(Ok(reply)) => {
                self.note_headers(probing, &reply);
                result.api = verdict(reply.status);
                if reply.status == 200 {
                    result.private = api::is_private(&reply.body);
                    let proven =
                        reply.header("x-credential-type").is_some() || result.private == Some(true);
                    if !proven {
                        result.api = Verdict::Unknown;
                        report.push(
                            Problem::error(
                                ProblemCode::AuthenticationNotProven,
                                format!(
                                    "{repo} is public and Bitbucket answered without saying it used the \
                                     credential (no x-credential-type header): a malformed credential is \
                                     treated as anonymous"
                                ),
                                self.rejected_hint(probing, Probe::Api),
                            )
                            .for_repository(repo)
                            .for_credential(probing.name()),
                        );
                    }
                } else {
                    report.push(self.status_problem(probing, &reply, Probe::Api, Some(repo)));
                }
            }
        }

        // 2. git, the way git will ask.
        let Some(auth) = probing.git() else {
            return result;
        };
        let read = git_probe::info_refs(
            &self.http,
            &self.client,
            &self.endpoints.git,
            repo,
            Service::UploadPack,
            &auth,
        )
        .await;
        let read_ok = self.git_outcome(
            probing,
            repo,
            read,
            Probe::GitRead,
            report,
            &mut result.read,
        );
        if self.need == Need::Write {
            if read_ok {
                let write = git_probe::info_refs(
                    &self.http,
                    &self.client,
                    &self.endpoints.git,
                    repo,
                    Service::ReceivePack,
                    &auth,
                )
                .await;
                self.git_outcome(
                    probing,
                    repo,
                    write,
                    Probe::GitWrite,
                    report,
                    &mut result.write,
                );
            } else {
                result.write = Verdict::Unknown;
            }
        }
        result
    }

    /// Records a git probe's outcome in `verdict`; returns whether it succeeded.
    fn git_outcome(
        &self,
        probing: &Probing<'_>,
        repo: &RepoRef,
        outcome: Result<Reply, TransportError>,
        probe: Probe,
        report: &mut Report,
        verdict_slot: &mut Verdict,
    ) -> bool {
        let service = if probe == Probe::GitWrite {
            Service::ReceivePack
        } else {
            Service::UploadPack
        };
        match outcome {
            Err(e) => {
                *verdict_slot = Verdict::Unknown;
                report.push(
                    self.transport_problem(&e, self.endpoints.git.host(), probe)
                        .for_repository(repo)
                        .for_credential(probing.name()),
                );
                false
            }
            Ok(reply) if reply.status == 200 && git_probe::is_advertisement(&reply, service) => {
                *verdict_slot = Verdict::Ok;
                true
            }
            Ok(reply) if reply.status == 200 => {
                *verdict_slot = Verdict::Unknown;
                report.push(
                    Problem::error(
                        ProblemCode::UnexpectedResponse,
                        format!(
                            "{} did not answer like a git server for {repo} (content type {})",
                            self.endpoints.git,
                            reply.header("content-type").unwrap_or("none")
                        ),
                        "check --git-url: it is the host of the clone URL, https://bitbucket.org by default",
                    )
                    .for_repository(repo)
                    .for_credential(probing.name()),
                );
                false
            }
            Ok(reply) => {
                *verdict_slot = verdict(reply.status);
                if probe == Probe::GitWrite && matches!(reply.status, 401 | 403) {
                    *verdict_slot = Verdict::Denied;
                    report.push(
                        Problem::error(
                            ProblemCode::WriteNotAllowed,
                            format!(
                                "{} can clone {repo} but not push to it (git-receive-pack answered {})",
                                probing.credential.kind().description(),
                                reply.status
                            ),
                            write_hint(probing.credential.kind()),
                        )
                        .for_repository(repo)
                        .for_credential(probing.name()),
                    );
                } else {
                    report.push(self.status_problem(probing, &reply, probe, Some(repo)));
                }
                false
            }
        }
    }

    fn note_headers(&self, probing: &mut Probing<'_>, reply: &Reply) {
        if let Some(kind) = reply.header("x-credential-type") {
            probing.summary.credential_type = Some(kind.to_owned());
        }
        if let Some(scopes) = api::scopes(reply) {
            probing.summary.scopes = Some(scopes);
        }
    }

    /// Explains an HTTP status that is not success.
    fn status_problem(
        &self,
        probing: &Probing<'_>,
        reply: &Reply,
        probe: Probe,
        repo: Option<&RepoRef>,
    ) -> Problem {
        let kind = probing.credential.kind();
        let body = api::error_body(&reply.body);
        let text = probing.scrub(&reply.text());
        let said = body
            .message
            .as_deref()
            .map(|m| format!(": \"{}\"", probing.scrub(m)))
            .unwrap_or_default();
        let where_ = repo.map(|r| format!(" for {r}")).unwrap_or_default();
        let is_git = matches!(probe, Probe::GitRead | Probe::GitWrite);
        let app_password_text =
            text.contains("CHANGE-3222") || text.to_ascii_lowercase().contains("app password");
        let problem = match reply.status {
            401 | 410
                if kind == Kind::AppPassword
                    || app_password_text
                    || probing.credential.secret().starts_with("ATBB") =>
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
            401 if is_git && probing.credential.git_username().contains('@') => Problem::error(
                ProblemCode::GitUsernameIsEmail,
                format!(
                    "git rejected the username {}{where_}: git needs the Bitbucket username, not the email",
                    probing.credential.git_username()
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
                self.rejected_hint(probing, probe),
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
                        "git refused to let the {} read{where_} (HTTP 403)",
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
                "check --api-url and --git-url; bbinject does not follow redirects with credentials",
            ),
            status => Problem::error(
                ProblemCode::UnexpectedResponse,
                format!("{} answered HTTP {status}{where_}{said}", probe.describe()),
                "check --api-url and --git-url",
            ),
        };
        let problem = problem.for_credential(probing.name());
        match repo {
            Some(r) => problem.for_repository(r),
            None => problem,
        }
    }

    fn rejected_hint(&self, probing: &Probing<'_>, probe: Probe) -> String {
        let cred = probing.credential;
        match (cred.kind(), probe) {
            (Kind::ApiToken, Probe::GitRead | Probe::GitWrite) => format!(
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

    fn transport_problem(&self, error: &TransportError, host: &str, probe: Probe) -> Problem {
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
            TransportError::Connect { detail } | TransportError::Other { detail } => {
                Problem::error(
                    ProblemCode::Unreachable,
                    format!("cannot reach {what} at {host} ({detail})"),
                    "check the agent's network, firewall and HTTPS_PROXY, or the host in --api-url / --git-url",
                )
            }
        }
    }
}

fn summary(credential: &Credential) -> CredentialSummary {
    CredentialSummary {
        name: credential.name.clone(),
        kind: credential.kind(),
        source: credential.source.clone(),
        git_username: credential.git_username().to_owned(),
        fingerprint: credential.fingerprint(),
        credential_type: None,
        scopes: None,
        identity: None,
    }
}

fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Ok,
        401 | 410 => Verdict::Rejected,
        403 => Verdict::Denied,
        404 => Verdict::NotFound,
        _ => Verdict::Unknown,
    }
}

fn scope_hint(kind: Kind, scope: &str) -> String {
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

fn write_hint(kind: Kind) -> String {
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
