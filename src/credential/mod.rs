//! The credential model and where credentials come from.
//!
//! This module owns what a Bitbucket Cloud credential *is* (its [`Kind`], the
//! username git must be given, how the REST API must be called) and how the set
//! of credentials for a run is resolved from environment variables, `_FILE`
//! twins, a secrets directory or a YAML config (ARCHITECTURE.md §2). It never
//! talks to the network and never puts a secret into an error, a log line or a
//! `Debug` string: errors name the *source* of a value, never the value.

mod build;
mod config;
mod repo;
mod source;

use std::fmt;

pub use build::{APP_PASSWORD_HINT, SECRET_VARIABLES, reread_secret};
pub use config::{ConfigDefaults, ConfigError};
pub use repo::{RepoPattern, RepoRef, RepoRefError, UnsafePath, normalised_repository};
pub use source::{Environment, ProcessEnvironment, SourceError};

use crate::secret::Secret;

/// The static git username Bitbucket accepts for Atlassian API tokens.
pub const API_TOKEN_GIT_USERNAME: &str = "x-bitbucket-api-token-auth";
/// The static git username for repository/project/workspace access tokens and
/// OAuth bearer tokens.
pub const TOKEN_GIT_USERNAME: &str = "x-token-auth";
/// The git usernames that carry no meaning without a token.
pub const STATIC_USERNAMES: [&str; 2] = [API_TOKEN_GIT_USERNAME, TOKEN_GIT_USERNAME];

/// The kinds of credential Bitbucket Cloud knows, as named in configs and JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    ApiToken,
    AccessToken,
    #[serde(alias = "oauth")]
    OauthClientCredentials,
    AppPassword,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ApiToken => "api_token",
            Kind::AccessToken => "access_token",
            Kind::OauthClientCredentials => "oauth_client_credentials",
            Kind::AppPassword => "app_password",
        }
    }

    /// The kind named by [`Kind::as_str`].
    pub fn from_name(name: &str) -> Option<Kind> {
        [
            Kind::ApiToken,
            Kind::AccessToken,
            Kind::OauthClientCredentials,
            Kind::AppPassword,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }

    /// The kind a secret's prefix suggests (`ATBB` app password, `ATATT`
    /// API token, `ATCTT` access token): for hints only, never to refuse a value.
    pub fn from_prefix(secret: &str) -> Option<Kind> {
        if secret.starts_with("ATBB") {
            Some(Kind::AppPassword)
        } else if secret.starts_with("ATATT") {
            Some(Kind::ApiToken)
        } else if secret.starts_with("ATCTT") {
            Some(Kind::AccessToken)
        } else {
            None
        }
    }

    /// What a person calls it, for messages.
    pub fn description(self) -> &'static str {
        match self {
            Kind::ApiToken => "Atlassian API token",
            Kind::AccessToken => "access token",
            Kind::OauthClientCredentials => "OAuth consumer",
            Kind::AppPassword => "app password",
        }
    }
}

/// People read the description; JSON and configs use the snake_case name
/// ([`Kind::as_str`], serde).
impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// Where a value was read. Shown in messages and reports as `env:NAME`,
/// `file:PATH`, `config:PATH#CREDENTIAL.KEY`, or two of them joined by ` + `
/// (an OAuth consumer's id and secret); never the value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Source {
    /// A variable (or its `_FILE` twin), by name.
    Env(String),
    /// A file of a secrets directory or a config's `secret_file`.
    File(String),
    /// An inline value of a config file.
    Config { path: String, key: String },
    /// The two halves of one credential.
    Pair(Box<Source>, Box<Source>),
    /// Nothing was read (an incomplete credential).
    #[default]
    Unknown,
}

impl Source {
    /// The environment variables this source reads, for `exec` to remove
    /// from the child's environment.
    pub fn variables(&self) -> Vec<&str> {
        match self {
            Source::Env(name) => vec![name.as_str()],
            Source::Pair(a, b) => a.variables().into_iter().chain(b.variables()).collect(),
            Source::File(_) | Source::Config { .. } | Source::Unknown => vec![],
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Env(name) => write!(f, "env:{name}"),
            Source::File(path) => write!(f, "file:{path}"),
            Source::Config { path, key } => write!(f, "config:{path}#{key}"),
            Source::Pair(a, b) => write!(f, "{a} + {b}"),
            Source::Unknown => Ok(()),
        }
    }
}

/// A credential value with everything needed to use it. Each variant holds
/// exactly what its kind needs, so an OAuth consumer without a client id, or an
/// app password without a username, cannot exist.
pub enum Material {
    ApiToken {
        token: Secret,
        /// The Bitbucket username (git); `None` means the static token username.
        username: Option<String>,
        /// The Atlassian account email (REST).
        email: Option<String>,
    },
    AccessToken {
        token: Secret,
    },
    OauthClientCredentials {
        client_id: String,
        client_secret: Secret,
    },
    AppPassword {
        username: String,
        password: Secret,
    },
}

/// How the REST API must be called with a credential.
pub enum RestAuth<'a> {
    Basic {
        user: &'a str,
        password: &'a Secret,
    },
    Bearer(&'a Secret),
    /// OAuth client credentials: exchange for a bearer token first.
    Exchange {
        client_id: &'a str,
        client_secret: &'a Secret,
    },
    /// Not possible with what was given (e.g. an API token without the account email).
    Unavailable,
}

/// A file a secret was read from (`NAME_FILE`, `--secrets-dir`, config
/// `secret_file`): the broker reads it again when it changes (rotation).
#[derive(Clone, Debug)]
pub struct SecretFile {
    pub path: std::path::PathBuf,
    /// How errors name it, e.g. `BITBUCKET_ACCESS_TOKEN_FILE=/run/secrets/t`.
    pub label: String,
}

/// The variables that say where secrets are (`--config`, `--secrets-dir`):
/// `exec` removes them from the child's environment with the secrets'.
pub const LOCATION_VARIABLES: [&str; 2] = ["BBINJECT_CONFIG", "BBINJECT_SECRETS_DIR"];

/// A secret file `--consume-secret-files` may not remove.
#[derive(Debug, thiserror::Error)]
#[error("--consume-secret-files: {label} cannot be removed: {reason}")]
pub struct ConsumeError {
    pub label: String,
    pub reason: String,
}

/// One resolved credential and where it came from.
pub struct Credential {
    /// `env` for the environment, or the config entry's name.
    pub name: String,
    /// Where the secret was read, e.g. `env:BITBUCKET_API_TOKEN_FILE`.
    pub source: Source,
    pub material: Material,
    /// Problems noticed while reading it, for the report (never fatal).
    pub warnings: Vec<Warning>,
    /// The only repositories the broker may answer for with it (config
    /// `allow:`); empty means no limit beyond `--allow-repo`.
    pub allow: Vec<RepoPattern>,
    /// The file the secret came from, if any.
    pub secret_file: Option<SecretFile>,
}

impl Credential {
    pub fn kind(&self) -> Kind {
        match self.material {
            Material::ApiToken { .. } => Kind::ApiToken,
            Material::AccessToken { .. } => Kind::AccessToken,
            Material::OauthClientCredentials { .. } => Kind::OauthClientCredentials,
            Material::AppPassword { .. } => Kind::AppPassword,
        }
    }

    /// The secret this credential was configured with (for OAuth: the client
    /// secret, which git never sees).
    /// Gives up the secret (for the broker's vault, which then owns it).
    pub fn into_secret(self) -> Secret {
        match self.material {
            Material::ApiToken { token, .. } | Material::AccessToken { token } => token,
            Material::OauthClientCredentials { client_secret, .. } => client_secret,
            Material::AppPassword { password, .. } => password,
        }
    }

    pub fn secret(&self) -> &Secret {
        match &self.material {
            Material::ApiToken { token, .. } | Material::AccessToken { token } => token,
            Material::OauthClientCredentials { client_secret, .. } => client_secret,
            Material::AppPassword { password, .. } => password,
        }
    }

    /// The username git must be given for this credential.
    pub fn git_username(&self) -> &str {
        match &self.material {
            Material::ApiToken {
                username: Some(user),
                ..
            } => user,
            Material::ApiToken { username: None, .. } => API_TOKEN_GIT_USERNAME,
            Material::AccessToken { .. } | Material::OauthClientCredentials { .. } => {
                TOKEN_GIT_USERNAME
            }
            Material::AppPassword { username, .. } => username,
        }
    }

    pub fn rest_auth(&self) -> RestAuth<'_> {
        match &self.material {
            Material::ApiToken {
                token,
                email: Some(email),
                ..
            } => RestAuth::Basic {
                user: email,
                password: token,
            },
            Material::ApiToken { email: None, .. } => RestAuth::Unavailable,
            Material::AccessToken { token } => RestAuth::Bearer(token),
            Material::OauthClientCredentials {
                client_id,
                client_secret,
            } => RestAuth::Exchange {
                client_id,
                client_secret,
            },
            Material::AppPassword { username, password } => RestAuth::Basic {
                user: username,
                password,
            },
        }
    }

    /// Whether `GET /user` can work for this kind (access tokens always get 403).
    pub fn has_user_identity(&self) -> bool {
        !matches!(self.material, Material::AccessToken { .. })
    }

    /// Every username under which this secret may be sent, for scrubbing and redaction.
    pub fn usernames(&self) -> Vec<&str> {
        let mut names = vec![self.git_username()];
        match &self.material {
            Material::ApiToken {
                email: Some(email), ..
            } => names.push(email),
            Material::OauthClientCredentials { client_id, .. } => names.push(client_id),
            _ => {}
        }
        for fixed in [API_TOKEN_GIT_USERNAME, TOKEN_GIT_USERNAME] {
            if !names.contains(&fixed) {
                names.push(fixed);
            }
        }
        names
    }

    pub fn fingerprint(&self) -> String {
        self.secret().fingerprint()
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("name", &self.name)
            .field("kind", &self.kind())
            .field("source", &self.source)
            .field("git_username", &self.git_username())
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

/// A non-fatal observation about how a credential was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub code: crate::codes::ProblemCode,
    pub message: String,
    pub hint: String,
}

/// Which repositories a credential of a config serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// No `match:` list: every repository not claimed by a more specific entry.
    Any,
    Workspace(String),
    Repository(RepoRef),
}

impl Scope {
    /// `*` (any), `workspace` or `workspace/slug`: the form a broker hand-off uses.
    pub fn parse(text: &str) -> Option<Self> {
        if text == "*" {
            Some(Scope::Any)
        } else if text.contains('/') {
            RepoRef::parse(text).ok().map(Scope::Repository)
        } else if repo::is_name(text) {
            Some(Scope::Workspace(text.to_ascii_lowercase()))
        } else {
            None
        }
    }

    /// Higher is more specific; `None` if the scope does not cover `repo`.
    fn specificity(&self, repo: &RepoRef) -> Option<u8> {
        match self {
            Scope::Any => Some(0),
            Scope::Workspace(ws) if ws.eq_ignore_ascii_case(&repo.workspace) => Some(1),
            Scope::Repository(r) if r.matches(repo) => Some(2),
            _ => None,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Any => f.write_str("*"),
            Scope::Workspace(ws) => f.write_str(ws),
            Scope::Repository(repo) => write!(f, "{repo}"),
        }
    }
}

/// Which of several scope lists serves `repo`: the most specific match wins
/// (`workspace/repo` over `workspace` over an entry without `match:`); among
/// equals, the first.
pub fn route<'a>(entries: impl Iterator<Item = &'a [Scope]>, repo: &RepoRef) -> Option<usize> {
    entries
        .enumerate()
        .filter_map(|(i, scopes)| {
            scopes
                .iter()
                .filter_map(|s| s.specificity(repo))
                .max()
                .map(|level| (level, i))
        })
        .max_by_key(|&(level, i)| (level, std::cmp::Reverse(i)))
        .map(|(_, i)| i)
}

/// The credentials of a run, each with the repositories it serves.
#[derive(Debug)]
pub struct CredentialSet {
    entries: Vec<(Vec<Scope>, Credential)>,
    /// Option defaults read from the config file, if one was used.
    pub defaults: ConfigDefaults,
}

impl CredentialSet {
    pub fn single(credential: Credential) -> Self {
        Self {
            entries: vec![(vec![Scope::Any], credential)],
            defaults: ConfigDefaults::default(),
        }
    }

    pub fn credentials(&self) -> impl Iterator<Item = &Credential> {
        self.entries.iter().map(|(_, c)| c)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The index of the credential serving `repo`: the most specific match wins
    /// (`workspace/repo` over `workspace` over an entry without `match:`).
    pub fn route(&self, repo: &RepoRef) -> Option<usize> {
        // Equal specificity is rejected when a config is loaded, so the first of
        // the highest is the only one.
        route(
            self.entries.iter().map(|(scopes, _)| scopes.as_slice()),
            repo,
        )
    }

    /// `--consume-secret-files`: removes each credential's secret file, now
    /// that its value is held, so nothing started later can open it. Refused
    /// (nothing removed) unless every file is ours, in a directory of ours we
    /// may write to. Returns the labels of the files removed.
    pub fn consume_secret_files(&mut self) -> Result<Vec<String>, ConsumeError> {
        let files: Vec<&SecretFile> = self
            .entries
            .iter()
            .filter_map(|(_, c)| c.secret_file.as_ref())
            .collect();
        for file in &files {
            crate::fsutil::may_consume(&file.path).map_err(|reason| ConsumeError {
                label: file.label.clone(),
                reason,
            })?;
        }
        let mut consumed = Vec::new();
        for (_, credential) in &mut self.entries {
            if let Some(file) = credential.secret_file.take() {
                std::fs::remove_file(&file.path).map_err(|e| ConsumeError {
                    label: file.label.clone(),
                    reason: e.kind().to_string(),
                })?;
                consumed.push(file.label);
            }
        }
        Ok(consumed)
    }

    /// Whether any credential limits the repositories it serves (`allow:`).
    pub fn limits_repositories(&self) -> bool {
        self.entries.iter().any(|(_, c)| !c.allow.is_empty())
    }

    /// Takes the set apart, for the broker's vault.
    pub fn into_entries(self) -> Vec<(Vec<Scope>, Credential)> {
        self.entries
    }

    /// The credential serving repositories no `match:` names: an entry without
    /// `match:` (the only credential of an environment-variable run).
    pub fn catch_all(&self) -> Option<usize> {
        self.entries
            .iter()
            .position(|(scopes, _)| scopes.contains(&Scope::Any))
    }

    /// Environment variables that held a secret of this set (`env:NAME` sources),
    /// which `exec` removes from the child's environment.
    pub fn secret_variables(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .credentials()
            .flat_map(|c| c.source.variables())
            .map(str::to_owned)
            .collect();
        names.sort();
        names.dedup();
        names
    }

    pub fn credential(&self, index: usize) -> &Credential {
        &self.entries[index].1
    }
}

/// Everything that can go wrong while resolving credentials. Every variant
/// names where the value came from, never the value.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("no Bitbucket credential found")]
    NoCredential,
    #[error("more than one kind of credential is set: {}", .0.join(", "))]
    SeveralKinds(Vec<String>),
    #[error("{kind} from {origin} needs {missing} too")]
    Incomplete {
        kind: Kind,
        origin: String,
        missing: &'static str,
    },
    #[error(
        "{origin} does not look like an email address (the REST API needs the Atlassian account email here)"
    )]
    EmailNotAnEmail { origin: String },
    #[error(
        "{origin} holds an email address, but git needs the Bitbucket username for an app password"
    )]
    AppPasswordEmailUsername { origin: String },
}

impl ResolveError {
    pub fn hint(&self) -> String {
        match self {
            ResolveError::Source(e) => e.hint(),
            ResolveError::Config(e) => e.hint(),
            ResolveError::NoCredential => "set one of BITBUCKET_API_TOKEN, BITBUCKET_ACCESS_TOKEN, \
                BITBUCKET_OAUTH_CLIENT_ID + BITBUCKET_OAUTH_CLIENT_SECRET (or NAME_FILE with a path to a \
                file holding it), use --secrets-dir, or --config"
                .into(),
            ResolveError::SeveralKinds(_) => "unset all but one, or write a --config file that says \
                which credential serves which workspace"
                .into(),
            ResolveError::Incomplete { missing, .. } => format!("set {missing}"),
            ResolveError::EmailNotAnEmail { .. } => "set BITBUCKET_EMAIL to the email address of the \
                Atlassian account that created the API token (the Bitbucket username goes in \
                BITBUCKET_USERNAME)"
                .into(),
            ResolveError::AppPasswordEmailUsername { .. } => "set BITBUCKET_USERNAME to the Bitbucket \
                username shown under Personal settings > Account settings; better, replace the app \
                password with an API token (app passwords were removed on 2026-07-28)"
                .into(),
        }
    }
}

/// Where credentials are read from for this run.
pub struct Resolver<'a> {
    pub env: &'a dyn Environment,
    pub secrets_dir: Option<&'a std::path::Path>,
    pub config_file: Option<&'a std::path::Path>,
}

impl Resolver<'_> {
    /// Resolves the credentials once, at start-up (ARCHITECTURE.md §2).
    pub fn resolve(&self) -> Result<CredentialSet, ResolveError> {
        let reader = source::Reader::new(self.env, self.secrets_dir);
        if let Some(path) = self.config_file {
            return Ok(config::load(path, &reader)?);
        }
        build::from_variables(&reader).map(CredentialSet::single)
    }
}

/// Helpers for the unit tests of the credential modules.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::HashMap;
    use std::ffi::OsString;

    use super::source::Reader;
    use super::{Credential, ResolveError};

    /// An environment holding exactly `pairs`.
    pub fn env(pairs: &[(&str, &str)]) -> HashMap<String, OsString> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect()
    }

    /// The credential the `BITBUCKET_*` variables in `pairs` describe.
    pub fn resolve(pairs: &[(&str, &str)]) -> Result<Credential, ResolveError> {
        let env = env(pairs);
        super::build::from_variables(&Reader::new(&env, None))
    }

    /// The test secrets all hold `FAKEFAKE`; a message must not.
    pub fn assert_no_secret(text: &str) {
        assert!(!text.contains("FAKEFAKE"), "secret leaked into: {text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_token(username: Option<&str>, email: Option<&str>) -> Credential {
        Credential {
            name: "env".into(),
            source: Source::Env("BITBUCKET_API_TOKEN".into()),
            material: Material::ApiToken {
                token: Secret::new("FAKE-api-token-000000000000".into()),
                username: username.map(str::to_owned),
                email: email.map(str::to_owned),
            },
            warnings: vec![],
            allow: vec![],
            secret_file: None,
        }
    }

    #[test]
    fn each_kind_gives_git_the_username_bitbucket_expects() {
        assert_eq!(api_token(None, None).git_username(), API_TOKEN_GIT_USERNAME);
        assert_eq!(api_token(Some("jdoe"), None).git_username(), "jdoe");
        let access = Credential {
            name: "env".into(),
            source: Source::Env("x".into()),
            material: Material::AccessToken {
                token: Secret::new("FAKE".into()),
            },
            warnings: vec![],
            allow: vec![],
            secret_file: None,
        };
        assert_eq!(access.git_username(), TOKEN_GIT_USERNAME);
        assert!(!access.has_user_identity());
        let app = Credential {
            name: "env".into(),
            source: Source::Env("x".into()),
            material: Material::AppPassword {
                username: "jdoe".into(),
                password: Secret::new("FAKE".into()),
            },
            warnings: vec![],
            allow: vec![],
            secret_file: None,
        };
        assert_eq!(app.git_username(), "jdoe");
    }

    #[test]
    fn api_token_rest_auth_needs_the_email() {
        assert!(matches!(
            api_token(Some("jdoe"), None).rest_auth(),
            RestAuth::Unavailable
        ));
        match api_token(Some("jdoe"), Some("jdoe@example.com")).rest_auth() {
            RestAuth::Basic { user, .. } => assert_eq!(user, "jdoe@example.com"),
            _ => panic!("expected Basic auth with the email"),
        }
    }

    #[test]
    fn debug_of_a_credential_hides_the_secret() {
        let shown = format!("{:?}", api_token(None, None));
        assert!(!shown.contains("FAKE-api-token"), "{shown}");
    }

    #[test]
    fn routing_prefers_repository_over_workspace_over_catch_all() {
        let repo = |s: &str| RepoRef::parse(s).expect("valid repo");
        let set = CredentialSet {
            entries: vec![
                (vec![Scope::Any], api_token(None, None)),
                (vec![Scope::Workspace("acme".into())], api_token(None, None)),
                (
                    vec![Scope::Repository(repo("acme/app"))],
                    api_token(None, None),
                ),
            ],
            defaults: ConfigDefaults::default(),
        };
        assert_eq!(set.route(&repo("acme/app")), Some(2));
        assert_eq!(set.route(&repo("ACME/lib")), Some(1));
        assert_eq!(set.route(&repo("other/app")), Some(0));
        let only_acme = CredentialSet {
            entries: vec![(vec![Scope::Workspace("acme".into())], api_token(None, None))],
            defaults: ConfigDefaults::default(),
        };
        assert_eq!(only_acme.route(&repo("other/app")), None);
    }
}
