//! The preflight: runs the API probe and the git probe for every repository
//! with the credential that serves it, and explains every failure in
//! Bitbucket's own terms (which scope, which username, which page).
//!
//! It never fails as a function: every outcome, including an unreachable
//! Bitbucket, becomes part of the [`Report`].

use futures_util::StreamExt as _;

use super::Need;
use super::api::{self, Auth};
use super::diagnosis::{self, Probe, Subject};
use super::endpoint::Endpoints;
use super::git_probe::{self, Service};
use super::http::{self, HttpError, HttpSettings, Reply, TransportError};
use super::oauth::Bearer;
use super::report::{CredentialSummary, Problem, RepoResult, Report, Verdict};
use crate::credential::{Credential, CredentialSet, Kind, RepoRef, RestAuth};

/// Repositories probed at once by default: enough to hide the latency of a
/// 30-repository monorepo check, few enough to stay clear of rate limits.
pub const DEFAULT_JOBS: usize = 8;

pub struct Preflight {
    client: reqwest::Client,
    http: HttpSettings,
    endpoints: Endpoints,
    need: Need,
    /// Also probe Git LFS for each repository.
    lfs: bool,
    /// How many repositories are probed at once.
    jobs: usize,
}

/// What probing one repository found, merged into the report in order.
#[derive(Default)]
struct Findings {
    problems: Vec<Problem>,
    credential_type: Option<String>,
    scopes: Option<Vec<String>>,
}

impl Findings {
    fn push(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    /// What Bitbucket said about the credential in a reply's headers.
    fn note(&mut self, reply: &Reply) {
        if let Some(kind) = reply.header("x-credential-type") {
            self.credential_type = Some(kind.to_owned());
        }
        if let Some(scopes) = api::scopes(reply) {
            self.scopes = Some(scopes);
        }
    }

    fn merge_into(self, probing: &mut Probing<'_>, report: &mut Report) {
        if self.credential_type.is_some() {
            probing.summary.credential_type = self.credential_type;
        }
        if self.scopes.is_some() {
            probing.summary.scopes = self.scopes;
        }
        for problem in self.problems {
            report.push(problem);
        }
    }
}

/// One credential while it is being probed.
struct Probing<'a> {
    credential: &'a Credential,
    /// The bearer token an OAuth consumer was exchanged for.
    bearer: Option<Bearer>,
    summary: CredentialSummary,
}

impl Probing<'_> {
    fn rest(&self) -> Option<Auth<'_>> {
        match self.credential.rest_auth() {
            RestAuth::Basic { user, password } => Some(Auth::Basic { user, password }),
            RestAuth::Bearer(token) => Some(Auth::Bearer(token)),
            RestAuth::Exchange { .. } => self.bearer.as_ref().map(|b| Auth::Bearer(&b.token)),
            RestAuth::Unavailable => None,
        }
    }

    fn git(&self) -> Option<Auth<'_>> {
        let user = self.credential.git_username();
        match self.credential.kind() {
            Kind::OauthClientCredentials => self.bearer.as_ref().map(|b| Auth::Basic {
                user,
                password: &b.token,
            }),
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
            secrets.push((&bearer.token, names.as_slice()));
        }
        crate::redact::mask_secrets(text, &secrets)
    }

    fn name(&self) -> &str {
        &self.credential.name
    }

    /// The diagnosis of an unsuccessful HTTP status for this credential.
    fn status_problem(&self, reply: &Reply, probe: Probe, repo: Option<&RepoRef>) -> Problem {
        let mask = |text: &str| self.scrub(text);
        let subject = Subject {
            credential: self.credential,
            mask: &mask,
        };
        diagnosis::status_problem(&subject, reply, probe, repo)
    }
}

impl Preflight {
    pub fn new(http: HttpSettings, endpoints: Endpoints, need: Need) -> Result<Self, HttpError> {
        Ok(Self {
            client: http::build_client(&http)?,
            http,
            endpoints,
            need,
            lfs: false,
            jobs: DEFAULT_JOBS,
        })
    }

    /// Probes up to `jobs` repositories at once (at least one).
    pub fn with_jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    /// Probes Git LFS too (`--lfs`): an empty download batch per repository.
    pub fn with_lfs(mut self, lfs: bool) -> Self {
        self.lfs = lfs;
        self
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
    ) -> (Report, Vec<Option<Bearer>>) {
        let mut tokens: Vec<Option<Bearer>> = (0..set.len()).map(|_| None).collect();
        let mut report = Report::new(self.need);
        let routes: Vec<(&RepoRef, Option<usize>)> =
            repos.iter().map(|r| (r, set.route(r))).collect();
        for (repo, route) in &routes {
            if route.is_none() {
                report.push(diagnosis::no_credential_for(repo));
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
            if exchanged {
                // The repositories of one credential are probed `jobs` at a
                // time, sharing the client and its connections; results merge
                // in the order the repositories were given.
                let probed: Vec<(RepoResult, Findings)> = {
                    let probing = &probing;
                    futures_util::stream::iter(mine.iter())
                        .map(|repo| self.repository(probing, repo))
                        .buffered(self.jobs)
                        .collect()
                        .await
                };
                verified |= !probed.is_empty();
                for (result, findings) in probed {
                    findings.merge_into(&mut probing, &mut report);
                    report.repositories.push(result);
                }
            } else {
                for repo in &mine {
                    report.repositories.push(RepoResult {
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
                        lfs: if self.lfs {
                            Verdict::Unknown
                        } else {
                            Verdict::NotChecked
                        },
                    });
                }
            }
            // A failed GET /user is reported above; the warning is for
            // credentials nothing could be asked about.
            let failed = report.problems.iter().any(|p| {
                p.credential.as_deref() == Some(credential.name.as_str())
                    && p.severity == crate::bitbucket::Severity::Error
            });
            if !verified && exchanged && !failed {
                report.push(diagnosis::not_verified(
                    credential,
                    probing.rest().is_some(),
                ));
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
        known: Vec<Option<Bearer>>,
    ) -> Result<Vec<Option<Bearer>>, Report> {
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
                let taken = api::take_access_token(&mut reply);
                if let Err(problem) = taken {
                    report.push(
                        diagnosis::no_access_token(url, problem).for_credential(probing.name()),
                    );
                }
                probing.bearer = taken.ok();
                probing.summary.token_lifetime_secs = probing
                    .bearer
                    .as_ref()
                    .and_then(|b| b.lifetime)
                    .map(|l| l.as_secs());
                probing.bearer.is_some()
            }
            Ok(reply) if matches!(reply.status, 400 | 401 | 403) => {
                let said = api::oauth_error(&reply).map(|e| probing.scrub(&e));
                report.push(
                    diagnosis::oauth_refused(client_id, url, reply.status, said.as_deref())
                        .for_credential(probing.name()),
                );
                false
            }
            Ok(reply) => {
                report.push(probing.status_problem(&reply, Probe::Token, None));
                false
            }
            Err(e) => {
                report.push(
                    diagnosis::transport_problem(&e, url.host(), Probe::Token)
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
                        diagnosis::transport_problem(
                            &e,
                            self.endpoints.api.host(),
                            Probe::Identity,
                        )
                        .for_credential(probing.name()),
                    );
                }
                return false;
            }
        };
        let mut notes = Findings::default();
        notes.note(&reply);
        notes.merge_into(probing, report);
        match reply.status {
            200 => {
                probing.summary.identity = api::identity(&reply.body);
                true
            }
            403 => {
                let body = api::error_body(&reply.body);
                report.push(
                    diagnosis::identity_unavailable(&body.required).for_credential(probing.name()),
                );
                true
            }
            _ => {
                report.push(probing.status_problem(&reply, Probe::Identity, None));
                false
            }
        }
    }

    /// Probes one repository. It only reads `probing`, so several run at once;
    /// what it found comes back in order, to be merged into the report.
    async fn repository(&self, probing: &Probing<'_>, repo: &RepoRef) -> (RepoResult, Findings) {
        let mut findings = Findings::default();
        let report = &mut findings;
        let mut result = RepoResult {
            repository: repo.to_string(),
            credential: probing.name().to_owned(),
            private: None,
            api: Verdict::Skipped,
            read: Verdict::Unknown,
            write: Verdict::NotChecked,
            lfs: Verdict::NotChecked,
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
                    diagnosis::transport_problem(&e, self.endpoints.api.host(), Probe::Api)
                        .for_repository(repo)
                        .for_credential(probing.name()),
                );
            }
            Some(Ok(reply)) => {
                report.note(&reply);
                result.api = diagnosis::verdict(reply.status);
                if reply.status == 200 {
                    result.private = api::is_private(&reply.body);
                    let proven =
                        reply.header("x-credential-type").is_some() || result.private == Some(true);
                    if !proven {
                        result.api = Verdict::Unknown;
                        report.push(
                            diagnosis::authentication_not_proven(probing.credential, repo)
                                .for_repository(repo)
                                .for_credential(probing.name()),
                        );
                    }
                } else {
                    report.push(probing.status_problem(&reply, Probe::Api, Some(repo)));
                }
            }
        }

        // 2. git, the way git will ask.
        let Some(auth) = probing.git() else {
            return (result, findings);
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
        if self.lfs {
            result.lfs = if read_ok {
                let reply = git_probe::lfs_batch(
                    &self.http,
                    &self.client,
                    &self.endpoints.git,
                    repo,
                    &auth,
                )
                .await;
                self.lfs_outcome(probing, repo, reply, report)
            } else {
                Verdict::Unknown
            };
        }
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
        (result, findings)
    }

    /// Records a git probe's outcome in `verdict`; returns whether it succeeded.
    fn git_outcome(
        &self,
        probing: &Probing<'_>,
        repo: &RepoRef,
        outcome: Result<Reply, TransportError>,
        probe: Probe,
        report: &mut Findings,
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
                    diagnosis::transport_problem(&e, self.endpoints.git.host(), probe)
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
                    diagnosis::not_a_git_server(
                        &self.endpoints.git,
                        reply.header("content-type"),
                        repo,
                        false,
                    )
                    .for_repository(repo)
                    .for_credential(probing.name()),
                );
                false
            }
            Ok(reply) => {
                *verdict_slot = diagnosis::verdict(reply.status);
                if probe == Probe::GitWrite && matches!(reply.status, 401 | 403) {
                    *verdict_slot = Verdict::Denied;
                    report.push(
                        diagnosis::write_not_allowed(probing.credential.kind(), repo, reply.status)
                            .for_repository(repo)
                            .for_credential(probing.name()),
                    );
                } else {
                    report.push(probing.status_problem(&reply, probe, Some(repo)));
                }
                false
            }
        }
    }

    /// The LFS probe's verdict, with a problem reported when it is not ok.
    fn lfs_outcome(
        &self,
        probing: &Probing<'_>,
        repo: &RepoRef,
        outcome: Result<Reply, TransportError>,
        report: &mut Findings,
    ) -> Verdict {
        match outcome {
            Err(e) => {
                report.push(
                    diagnosis::transport_problem(&e, self.endpoints.git.host(), Probe::Lfs)
                        .for_repository(repo)
                        .for_credential(probing.name()),
                );
                Verdict::Unknown
            }
            Ok(reply) if reply.status == 200 && is_lfs_batch_reply(&reply) => Verdict::Ok,
            Ok(reply) if reply.status == 200 => {
                let content_type = reply.header("content-type");
                report.push(
                    diagnosis::not_a_git_server(&self.endpoints.git, content_type, repo, true)
                        .for_repository(repo)
                        .for_credential(probing.name()),
                );
                Verdict::Unknown
            }
            Ok(reply) if reply.status == 404 => {
                report.push(
                    diagnosis::lfs_unavailable(repo)
                        .for_repository(repo)
                        .for_credential(probing.name()),
                );
                Verdict::NotFound
            }
            Ok(reply) => {
                report.push(probing.status_problem(&reply, Probe::Lfs, Some(repo)));
                diagnosis::verdict(reply.status)
            }
        }
    }
}

/// Whether a 200 from the LFS batch endpoint is its JSON: an object (the
/// reply to an empty download batch has `objects`), whatever the content
/// type's parameters.
fn is_lfs_batch_reply(reply: &Reply) -> bool {
    serde_json::from_slice::<serde_json::Value>(&reply.body)
        .is_ok_and(|v| v.as_object().is_some_and(|o| o.contains_key("objects")))
}

fn summary(credential: &Credential) -> CredentialSummary {
    CredentialSummary {
        name: credential.name.clone(),
        kind: credential.kind(),
        source: credential.source.to_string(),
        git_username: credential.git_username().to_owned(),
        fingerprint: credential.fingerprint(),
        credential_type: None,
        scopes: None,
        identity: None,
        token_lifetime_secs: None,
    }
}
