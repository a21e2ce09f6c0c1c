//! Building credentials from the values the sources read: which kind the
//! `BITBUCKET_*` variables describe, the git username and REST authentication
//! each kind needs, and the mistakes worth a warning (an email where the
//! username belongs, a prefix of another kind, a label pasted for the value).
//! It reads nothing itself (that is `source`) and never puts a value into a
//! message.

use super::source::{MIN_SECRET_CHARS, Reader, SourceError, Value};
use super::{Credential, Kind, Material, ResolveError, Source, Warning};
use crate::secret::Secret;

pub(super) const API_TOKEN: &str = "BITBUCKET_API_TOKEN";
pub(super) const ACCESS_TOKEN: &str = "BITBUCKET_ACCESS_TOKEN";
pub(super) const APP_PASSWORD: &str = "BITBUCKET_APP_PASSWORD";
pub(super) const OAUTH_CLIENT_ID: &str = "BITBUCKET_OAUTH_CLIENT_ID";
pub(super) const OAUTH_CLIENT_SECRET: &str = "BITBUCKET_OAUTH_CLIENT_SECRET";
pub(super) const USERNAME: &str = "BITBUCKET_USERNAME";
pub(super) const EMAIL: &str = "BITBUCKET_EMAIL";

/// Every variable that can hold a secret; `exec` removes them (and their
/// `_FILE` twins) from the child's environment.
pub const SECRET_VARIABLES: [&str; 4] =
    [API_TOKEN, ACCESS_TOKEN, APP_PASSWORD, OAUTH_CLIENT_SECRET];

/// Builds the one credential the `BITBUCKET_*` variables describe.
pub(super) fn from_variables(reader: &Reader<'_>) -> Result<Credential, ResolveError> {
    let api_token = reader.variable(API_TOKEN)?;
    let access_token = reader.variable(ACCESS_TOKEN)?;
    let app_password = reader.variable(APP_PASSWORD)?;
    let client_id = reader.variable(OAUTH_CLIENT_ID)?;
    let client_secret = reader.variable(OAUTH_CLIENT_SECRET)?;
    let username = reader.variable(USERNAME)?;
    let email = reader.variable(EMAIL)?;

    let mut kinds = Vec::new();
    for (value, kind) in [
        (&api_token, Kind::ApiToken),
        (&access_token, Kind::AccessToken),
        (&app_password, Kind::AppPassword),
    ] {
        if let Some(v) = value {
            kinds.push((kind, v.source.clone()));
        }
    }
    if client_id.is_some() || client_secret.is_some() {
        let source = match (&client_id, &client_secret) {
            (Some(id), Some(secret)) => {
                Source::Pair(Box::new(id.source.clone()), Box::new(secret.source.clone()))
            }
            (Some(one), None) | (None, Some(one)) => one.source.clone(),
            (None, None) => Source::Unknown,
        };
        kinds.push((Kind::OauthClientCredentials, source));
    }
    match kinds.len() {
        0 => return Err(ResolveError::NoCredential),
        1 => {}
        _ => {
            return Err(ResolveError::SeveralKinds(
                kinds
                    .iter()
                    .map(|(kind, source)| format!("{kind} ({source})"))
                    .collect(),
            ));
        }
    }
    let (kind, source) = kinds.remove(0);
    let fields = Fields {
        name: "env".into(),
        source,
        username: username.map(|v| (v.source.to_string(), v.into_plain())),
        email: email.map(|v| (v.source.to_string(), v.into_plain())),
        client_id: client_id.map(Value::into_plain),
        allow: vec![],
    };
    let secret = match kind {
        Kind::ApiToken => api_token,
        Kind::AccessToken => access_token,
        Kind::AppPassword => app_password,
        Kind::OauthClientCredentials => client_secret,
    };
    build(kind, secret, fields)
}

/// The non-secret parts of a credential, with their sources.
pub(super) struct Fields {
    pub name: String,
    pub source: Source,
    pub username: Option<(String, String)>,
    pub email: Option<(String, String)>,
    pub client_id: Option<String>,
    /// Config `allow:`: the repositories this credential may be used for.
    pub allow: Vec<super::RepoPattern>,
}

/// Turns the raw parts into a [`Credential`] that cannot be incomplete,
/// noting the common mistakes of ARCHITECTURE.md §1 as warnings.
pub(super) fn build(
    kind: Kind,
    secret: Option<Value>,
    fields: Fields,
) -> Result<Credential, ResolveError> {
    let incomplete = |missing| ResolveError::Incomplete {
        kind,
        origin: fields.source.to_string(),
        missing,
    };
    let secret_value = secret.ok_or_else(|| match kind {
        Kind::OauthClientCredentials => incomplete("BITBUCKET_OAUTH_CLIENT_SECRET"),
        _ => incomplete("the secret"),
    })?;
    // git and HTTP Basic split `user:password` at the first colon: a username
    // holding one would put part of it in the password.
    if let Some((source, username)) = &fields.username
        && username.contains(':')
    {
        return Err(SourceError::ColonInUsername {
            origin: source.trim_start_matches("env:").to_owned(),
        }
        .into());
    }
    let mut warnings = secret_value.warnings.clone();
    let secret_source = secret_value.source.to_string();
    let secret_file = secret_value.file.clone();
    let len = secret_value.text.chars().count();
    if len < MIN_SECRET_CHARS {
        return Err(SourceError::TooShort {
            origin: secret_source.trim_start_matches("env:").to_owned(),
            len,
            kind: kind.description(),
        }
        .into());
    }
    let secret = secret_value.into_secret();
    warnings.extend(prefix_warnings(kind, &secret, &secret_source));

    let material = match kind {
        Kind::ApiToken => {
            let mut username = fields.username.clone();
            let mut email = fields.email.clone();
            if let Some((source, value)) = &email
                && !value.contains('@')
            {
                return Err(ResolveError::EmailNotAnEmail {
                    origin: source.clone(),
                });
            }
            if let Some((source, value)) = username.clone()
                && value.contains('@')
            {
                warnings.push(Warning {
                    code: crate::codes::ProblemCode::GitUsernameIsEmail,
                    message: format!(
                        "{source} holds an email address; git rejects the email as username, so \
                         {} is used for git instead",
                        super::API_TOKEN_GIT_USERNAME
                    ),
                    hint: "set BITBUCKET_USERNAME to your Bitbucket username (Personal settings > \
                           Account settings) or leave it unset, and put the email in BITBUCKET_EMAIL"
                        .into(),
                });
                if email.is_none() {
                    email = Some((source, value));
                }
                username = None;
            }
            if email.is_none() {
                warnings.push(Warning {
                    code: crate::codes::ProblemCode::RestEmailMissing,
                    message:
                        "BITBUCKET_EMAIL is not set, so the REST API cannot be asked about this \
                              API token (it needs the Atlassian account email)"
                            .into(),
                    hint:
                        "set BITBUCKET_EMAIL to the email of the Atlassian account that owns the \
                           token; without it, only git is probed for each --repo"
                            .into(),
                });
            }
            Material::ApiToken {
                token: secret,
                username: username.map(|(_, v)| v),
                email: email.map(|(_, v)| v),
            }
        }
        Kind::AccessToken => {
            if let Some((source, _)) = &fields.username {
                warnings.push(Warning {
                    code: crate::codes::ProblemCode::UsernameIgnored,
                    message: format!(
                        "{source} is ignored: git must use {} with an access token",
                        super::TOKEN_GIT_USERNAME
                    ),
                    hint: "unset BITBUCKET_USERNAME for access tokens".into(),
                });
            }
            Material::AccessToken { token: secret }
        }
        Kind::OauthClientCredentials => {
            let client_id = fields
                .client_id
                .clone()
                .ok_or_else(|| incomplete("BITBUCKET_OAUTH_CLIENT_ID"))?;
            Material::OauthClientCredentials {
                client_id,
                client_secret: secret,
            }
        }
        Kind::AppPassword => {
            let (source, username) = fields
                .username
                .clone()
                .ok_or_else(|| incomplete("BITBUCKET_USERNAME"))?;
            if username.contains('@') {
                return Err(ResolveError::AppPasswordEmailUsername { origin: source });
            }
            warnings.push(Warning {
                code: crate::codes::ProblemCode::AppPasswordDeprecated,
                message: "app passwords were removed from Bitbucket Cloud on 2026-07-28; this one \
                          will be rejected"
                    .into(),
                hint: APP_PASSWORD_HINT.into(),
            });
            Material::AppPassword {
                username,
                password: secret,
            }
        }
    };
    Ok(Credential {
        name: fields.name,
        source: fields.source,
        material,
        warnings,
        allow: fields.allow,
        secret_file,
    })
}

/// Reads a secret file again after it changed (rotation), checked exactly as
/// at start: the file rules, the value rules and the minimum length.
pub fn reread_secret(file: &super::SecretFile, kind: Kind) -> Result<Secret, SourceError> {
    let (mut text, _) = super::source::read_secret_file(&file.path, &file.label)?;
    let len = text.chars().count();
    if len < MIN_SECRET_CHARS {
        return Err(SourceError::TooShort {
            origin: file.label.clone(),
            len,
            kind: kind.description(),
        });
    }
    Ok(Secret::new(std::mem::take(&mut *text)))
}

pub const APP_PASSWORD_HINT: &str = "create an API token with scopes read:repository:bitbucket \
    (and write:repository:bitbucket to push) at id.atlassian.com > Security > API tokens, set it as \
    BITBUCKET_API_TOKEN, your Bitbucket username as BITBUCKET_USERNAME and your Atlassian email as \
    BITBUCKET_EMAIL; then revoke the app password";

/// Token prefixes seen in the wild are hints, never grounds for refusal.
fn prefix_warnings(kind: Kind, secret: &Secret, source: &str) -> Vec<Warning> {
    let looks_like = Kind::from_prefix(secret.expose()).and_then(|seen| match seen {
        Kind::AppPassword => Some((seen, crate::codes::ProblemCode::LooksLikeAppPassword)),
        Kind::ApiToken => Some((seen, crate::codes::ProblemCode::LooksLikeApiToken)),
        Kind::AccessToken => Some((seen, crate::codes::ProblemCode::LooksLikeAccessToken)),
        Kind::OauthClientCredentials => None,
    });
    let mut warnings = Vec::new();
    if let Some((seen, code)) = looks_like.filter(|(seen, _)| *seen != kind) {
        let hint = match seen {
            Kind::AppPassword => APP_PASSWORD_HINT.to_owned(),
            Kind::ApiToken => "put an API token in BITBUCKET_API_TOKEN".to_owned(),
            _ => "put a repository, project or workspace access token in BITBUCKET_ACCESS_TOKEN"
                .to_owned(),
        };
        warnings.push(Warning {
            code,
            message: format!(
                "the value from {source} looks like an {} (by its prefix), not an {}",
                seen.description(),
                kind.description()
            ),
            hint,
        });
    }
    if kind != Kind::OauthClientCredentials && secret.len() < 24 {
        warnings.push(Warning {
            code: crate::codes::ProblemCode::SecretLooksLikeLabel,
            message: format!(
                "the value from {source} is only {} characters long; Bitbucket tokens are much longer",
                secret.len()
            ),
            hint: "did you paste the token's name (label) instead of its value? The value is shown \
                   once, when the token is created"
                .into(),
        });
    }
    warnings
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::credential::source::Reader;

    const FAKE_TOKEN: &str = "ATATT3xFAKEFAKEFAKEFAKEFAKE0000";

    use crate::credential::testing::{assert_no_secret, env, resolve};

    #[test]
    fn api_token_from_the_environment() {
        let cred = resolve(&[(API_TOKEN, FAKE_TOKEN), (EMAIL, "jdoe@example.com")]).expect("ok");
        assert_eq!(cred.kind(), Kind::ApiToken);
        assert_eq!(cred.source.to_string(), "env:BITBUCKET_API_TOKEN");
        assert_eq!(cred.secret().expose(), FAKE_TOKEN);
        assert!(cred.warnings.is_empty(), "{:?}", cred.warnings);
    }

    #[test]
    fn two_kinds_without_a_config_name_them_all() {
        let err = resolve(&[(API_TOKEN, FAKE_TOKEN), (ACCESS_TOKEN, FAKE_TOKEN)]).expect_err("two");
        let text = err.to_string();
        assert!(
            text.contains("Atlassian API token (env:BITBUCKET_API_TOKEN)"),
            "{text}"
        );
        assert!(
            text.contains(", access token (env:BITBUCKET_ACCESS_TOKEN)"),
            "{text}"
        );
        assert_no_secret(&text);
    }

    #[test]
    fn nothing_set_is_no_credential() {
        assert!(matches!(resolve(&[]), Err(ResolveError::NoCredential)));
        // A username alone is not a credential.
        assert!(matches!(
            resolve(&[(USERNAME, "jdoe")]),
            Err(ResolveError::NoCredential)
        ));
    }

    #[test]
    fn email_as_git_username_is_moved_to_rest_with_a_warning() {
        let cred = resolve(&[(API_TOKEN, FAKE_TOKEN), (USERNAME, "jdoe@example.com")]).expect("ok");
        assert_eq!(
            cred.git_username(),
            crate::credential::API_TOKEN_GIT_USERNAME
        );
        assert!(
            cred.warnings
                .iter()
                .any(|w| w.code == crate::codes::ProblemCode::GitUsernameIsEmail)
        );
        assert!(
            matches!(cred.rest_auth(), crate::credential::RestAuth::Basic { user, .. } if user == "jdoe@example.com")
        );
    }

    #[test]
    fn username_where_the_email_belongs_is_an_error() {
        let err = resolve(&[(API_TOKEN, FAKE_TOKEN), (EMAIL, "jdoe")]).expect_err("not an email");
        assert!(err.to_string().contains("env:BITBUCKET_EMAIL"), "{err}");
    }

    #[test]
    fn app_password_needs_a_username_and_is_flagged() {
        let err = resolve(&[(APP_PASSWORD, "FAKEFAKEapppassword00")]).expect_err("no user");
        assert!(err.to_string().contains("BITBUCKET_USERNAME"), "{err}");
        let cred =
            resolve(&[(APP_PASSWORD, "FAKEFAKEapppassword00"), (USERNAME, "jdoe")]).expect("ok");
        assert!(
            cred.warnings
                .iter()
                .any(|w| w.code == crate::codes::ProblemCode::AppPasswordDeprecated)
        );
    }

    #[test]
    fn prefixes_are_hints_never_refusals() {
        let cred = resolve(&[(API_TOKEN, "ATBBFAKEFAKEFAKEFAKEFAKE0000")]).expect("accepted");
        assert!(
            cred.warnings
                .iter()
                .any(|w| w.code == crate::codes::ProblemCode::LooksLikeAppPassword)
        );
        let cred = resolve(&[(ACCESS_TOKEN, FAKE_TOKEN)]).expect("accepted");
        assert!(
            cred.warnings
                .iter()
                .any(|w| w.code == crate::codes::ProblemCode::LooksLikeApiToken)
        );
        let short = resolve(&[(ACCESS_TOKEN, "ci-token-for-builds")]).expect("accepted");
        assert!(
            short
                .warnings
                .iter()
                .any(|w| w.code == crate::codes::ProblemCode::SecretLooksLikeLabel)
        );
        // Far too short for any live credential: an error, not a warning.
        let err = resolve(&[(ACCESS_TOKEN, "abcde")]).expect_err("too short");
        assert_eq!(
            err.to_string(),
            "BITBUCKET_ACCESS_TOKEN: the value is only 5 characters long, far too short for an \
             access token (real ones have 16 or more)"
        );
    }

    #[test]
    fn oauth_needs_both_halves() {
        let err = resolve(&[(OAUTH_CLIENT_ID, "client")]).expect_err("no secret");
        assert!(
            err.to_string().contains("BITBUCKET_OAUTH_CLIENT_SECRET"),
            "{err}"
        );
        let err = resolve(&[(OAUTH_CLIENT_SECRET, "FAKEFAKEsecret-0000")]).expect_err("no id");
        assert!(
            err.to_string().contains("BITBUCKET_OAUTH_CLIENT_ID"),
            "{err}"
        );
        assert_no_secret(&err.to_string());
        let cred = resolve(&[
            (OAUTH_CLIENT_ID, "client"),
            (OAUTH_CLIENT_SECRET, "FAKEFAKEsecret-0000"),
        ])
        .expect("ok");
        assert_eq!(cred.kind(), Kind::OauthClientCredentials);
        assert_eq!(cred.git_username(), crate::credential::TOKEN_GIT_USERNAME);
    }

    #[test]
    fn a_username_with_a_colon_and_a_missing_secrets_dir_are_named() {
        let err =
            resolve(&[(API_TOKEN, FAKE_TOKEN), (USERNAME, "jdoe:FAKEFAKE")]).expect_err("colon");
        assert!(
            err.to_string().contains("BITBUCKET_USERNAME: contains `:`"),
            "{err}"
        );
        assert_no_secret(&err.to_string());
        let env = env(&[]);
        let err = from_variables(&Reader::new(&env, Some(Path::new("/nonexistent/secrets"))))
            .expect_err("missing dir");
        assert_eq!(
            err.to_string(),
            "--secrets-dir /nonexistent/secrets: does not exist"
        );
    }
}
