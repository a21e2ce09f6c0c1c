//! The preflight report: what was checked, what was found, and the exit code
//! that follows. Its JSON form is a stable interface (documented in README.md,
//! "JSON output"); problem codes are never renamed once released.
//!
//! Nothing in a report is secret: credentials appear as kind, source, git
//! username and fingerprint only.

use std::fmt::Write as _;

use serde::Serialize;

use crate::codes::Exit;

pub use crate::codes::ProblemCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub code: ProblemCode,
    pub severity: Severity,
    /// The repository it concerns, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The credential it concerns (its name: `env` or the config entry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    pub message: String,
    pub hint: String,
}

impl Problem {
    pub fn error(code: ProblemCode, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            code,
            severity: Severity::Error,
            repository: None,
            credential: None,
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn warning(code: ProblemCode, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(code, message, hint)
        }
    }

    pub fn for_repository(mut self, repo: &impl ToString) -> Self {
        self.repository = Some(repo.to_string());
        self
    }

    pub fn for_credential(mut self, name: &str) -> Self {
        self.credential = Some(name.to_owned());
        self
    }

    /// `error[code] repo: message` and an indented hint line: how a problem
    /// reads in every text output (the report, and exec's stderr).
    pub fn render(&self) -> String {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let subject = self
            .repository
            .as_deref()
            .map(|r| format!(" {r}:"))
            .unwrap_or_default();
        format!(
            "{level}[{}]{subject} {}\n  hint: {}\n",
            self.code, self.message, self.hint
        )
    }
}

/// The outcome of one check of one repository.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    /// Authenticated, but not allowed.
    Denied,
    /// The credential was not accepted.
    Rejected,
    NotFound,
    /// No conclusive answer (network, rate limit, server error).
    Unknown,
    /// Not asked (e.g. write when only read is needed).
    #[default]
    NotChecked,
    /// Could not be asked with this credential (e.g. no REST email).
    Skipped,
}

impl Verdict {
    fn is_not_checked(&self) -> bool {
        *self == Verdict::NotChecked
    }

    fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Denied => "DENIED",
            Verdict::Rejected => "REJECTED",
            Verdict::NotFound => "NOT FOUND",
            Verdict::Unknown => "unknown",
            Verdict::NotChecked => "not checked",
            Verdict::Skipped => "skipped",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Identity {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CredentialSummary {
    pub name: String,
    pub kind: crate::credential::Kind,
    pub source: String,
    pub git_username: String,
    pub fingerprint: String,
    /// What Bitbucket said the credential is (`x-credential-type`), when seen.
    pub credential_type: Option<String>,
    /// Scopes Bitbucket reported (`x-oauth-scopes`), when seen.
    pub scopes: Option<Vec<String>>,
    pub identity: Option<Identity>,
    /// An OAuth consumer's token lifetime (`expires_in`), when it was exchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_lifetime_secs: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RepoResult {
    pub repository: String,
    pub credential: String,
    /// `true`/`false` when the API said so.
    pub private: Option<bool>,
    /// The REST API probe (`GET /repositories/{workspace}/{slug}`).
    pub api: Verdict,
    /// The git probe for `git-upload-pack` (clone, fetch).
    pub read: Verdict,
    /// The git probe for `git-receive-pack` (push); `not_checked` unless `--need write`.
    pub write: Verdict,
    /// The Git LFS batch probe; only with `--lfs` (absent from JSON otherwise).
    #[serde(skip_serializing_if = "Verdict::is_not_checked")]
    pub lfs: Verdict,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub ok: bool,
    /// The exit code `check` returns for this report.
    pub exit_code: u8,
    pub need: super::Need,
    pub credentials: Vec<CredentialSummary>,
    pub repositories: Vec<RepoResult>,
    pub problems: Vec<Problem>,
}

impl Report {
    pub fn new(need: super::Need) -> Self {
        Self {
            ok: true,
            exit_code: 0,
            need,
            credentials: vec![],
            repositories: vec![],
            problems: vec![],
        }
    }

    /// Adds a problem unless the same code was already reported for the same
    /// repository and credential (the API and git probes often agree), or, for
    /// a rejected credential, for the same credential at all.
    pub fn push(&mut self, problem: Problem) {
        let credential_wide = problem.code.is_about_the_credential();
        let duplicate = self.problems.iter().any(|p| {
            p.code == problem.code
                && p.credential == problem.credential
                && (credential_wide || p.repository == problem.repository)
        });
        if !duplicate {
            self.problems.push(problem);
        }
        self.settle();
    }

    fn settle(&mut self) {
        let exit = self.exit();
        self.ok = exit == Exit::Success;
        self.exit_code = exit.code();
    }

    /// The most fundamental error decides: configuration before rejection
    /// before permission before reachability.
    pub fn exit(&self) -> Exit {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .map(|p| p.code.exit_code().unwrap_or(Exit::Unreachable))
            .min_by_key(|e| e.code())
            .unwrap_or(Exit::Success)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{\"ok\":false}".into())
    }

    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for c in &self.credentials {
            let _ = writeln!(
                out,
                "credential {}: {} from {}, git username {}, fingerprint {}",
                c.name,
                c.kind.description(),
                c.source,
                c.git_username,
                c.fingerprint
            );
            if let Some(id) = &c.identity {
                let who = match (&id.display_name, &id.username) {
                    (Some(name), Some(user)) => format!("{name} ({user})"),
                    (Some(name), None) => name.clone(),
                    (None, Some(user)) => user.clone(),
                    (None, None) => id.account_id.clone().unwrap_or_else(|| "unknown".into()),
                };
                let _ = writeln!(out, "  identity: {who}");
            }
            if let Some(kind) = &c.credential_type {
                let _ = writeln!(out, "  Bitbucket sees: {kind}");
            }
            if let Some(secs) = c.token_lifetime_secs {
                // exec and export brokers mint a new one before it expires.
                let _ = writeln!(
                    out,
                    "  OAuth token lifetime: {} (renewed by the broker {} before it expires)",
                    human_duration(secs),
                    human_duration(
                        crate::bitbucket::renewal_margin(std::time::Duration::from_secs(secs))
                            .as_secs()
                    )
                );
            }
        }
        for r in &self.repositories {
            let visibility = match r.private {
                Some(true) => ", private",
                Some(false) => ", public",
                None => "",
            };
            let lfs = if r.lfs.is_not_checked() {
                String::new()
            } else {
                format!(", lfs {}", r.lfs.as_str())
            };
            let _ = writeln!(
                out,
                "repository {}: read {}, write {}{lfs} (api {}{visibility})",
                r.repository,
                r.read.as_str(),
                r.write.as_str(),
                r.api.as_str()
            );
        }
        for p in &self.problems {
            out.push_str(&p.render());
        }
        let _ = if self.ok {
            writeln!(out, "result: ok")
        } else {
            writeln!(out, "result: FAILED (exit {})", self.exit_code)
        };
        out
    }
}

/// `7200` → `2h`, `300` → `5m`, `90` → `90s`.
fn human_duration(secs: u64) -> String {
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_fundamental_error_decides_the_exit_code() {
        let mut report = Report::new(super::super::Need::Read);
        assert_eq!(report.exit(), Exit::Success);
        report.push(Problem::warning(ProblemCode::NotVerified, "m", "h"));
        assert!(report.ok);
        report.push(Problem::error(ProblemCode::Timeout, "m", "h"));
        assert_eq!(report.exit_code, 5);
        report.push(Problem::error(ProblemCode::RepositoryNotFound, "m", "h"));
        assert_eq!(report.exit_code, 4);
        report.push(Problem::error(ProblemCode::AppPasswordRemoved, "m", "h"));
        assert_eq!(report.exit_code, 3);
        report.push(Problem::error(ProblemCode::Configuration, "m", "h"));
        assert_eq!(report.exit_code, 2);
        assert!(!report.ok);
    }

    #[test]
    fn duplicate_problems_are_reported_once() {
        let mut report = Report::new(super::super::Need::Read);
        let p = Problem::error(ProblemCode::RepositoryNotFound, "m", "h").for_repository(&"a/b");
        report.push(p.clone());
        report.push(p);
        assert_eq!(report.problems.len(), 1);
    }

    #[test]
    fn a_rejected_credential_is_reported_once_for_all_repositories() {
        let mut report = Report::new(super::super::Need::Read);
        for repo in ["a/one", "a/two"] {
            report.push(Problem::error(ProblemCode::TokenExpired, "m", "h").for_repository(&repo));
            report.push(
                Problem::error(ProblemCode::RepositoryNotFound, "m", "h").for_repository(&repo),
            );
        }
        let codes: Vec<_> = report.problems.iter().map(|p| p.code).collect();
        assert_eq!(
            codes,
            [
                ProblemCode::TokenExpired,
                ProblemCode::RepositoryNotFound,
                ProblemCode::RepositoryNotFound
            ]
        );
    }

    #[test]
    fn an_oauth_token_lifetime_is_shown_with_its_renewal_margin() {
        let mut report = Report::new(crate::bitbucket::Need::Read);
        report.credentials.push(CredentialSummary {
            name: "env".into(),
            kind: crate::credential::Kind::OauthClientCredentials,
            source: "env:BITBUCKET_OAUTH_CLIENT_ID".into(),
            git_username: "x-token-auth".into(),
            fingerprint: "sha256:0123456789ab".into(),
            credential_type: None,
            scopes: None,
            identity: None,
            token_lifetime_secs: Some(7200),
        });
        assert!(
            report
                .render_text()
                .contains("OAuth token lifetime: 2h (renewed by the broker 5m before it expires)"),
            "{}",
            report.render_text()
        );
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human_duration(7200), "2h");
        assert_eq!(human_duration(300), "5m");
        assert_eq!(human_duration(90), "90s");
    }

    #[test]
    fn every_error_code_is_kebab_case_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in ProblemCode::ALL.map(ProblemCode::as_str) {
            assert!(
                code.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{code}"
            );
            assert!(seen.insert(code), "duplicate {code}");
        }
    }
}
