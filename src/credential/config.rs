//! The YAML config file (`--config` / `BBINJECT_CONFIG`): several credentials,
//! each matched to workspaces or repositories, plus defaults for options.
//!
//! Parsed with serde-saphyr with unknown keys denied, strict booleans and error
//! snippets **off**: a snippet prints neighbouring lines, which may hold a
//! secret. Parser messages are also stripped of quoted values before they are
//! shown, since a type error quotes the offending scalar. An error must never
//! quote a value: it names the file, the credential and the key.

use std::path::Path;

use serde::Deserialize;

use super::build::Fields;
use super::source::{Reader, SourceError, Value, read_secret_file};
use super::{Credential, CredentialSet, Kind, RepoRef, ResolveError, Scope, Source};
use crate::fsutil::{FileProblem, read_regular_file};

/// The largest config we read: a config with hundreds of credentials is a few
/// dozen KiB; `--config /dev/zero` or a mistaken log file must not fill memory.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Option defaults a config file may set; command-line flags win over them.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConfigDefaults {
    pub need: Option<crate::bitbucket::Need>,
    pub api_url: Option<String>,
    pub git_url: Option<String>,
    pub token_url: Option<String>,
    /// Extra git hosts the broker may answer for.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Route SSH-style URLs of the allowed hosts over HTTPS (`--rewrite-ssh`).
    #[serde(default)]
    pub rewrite_ssh: bool,
    /// Probe Git LFS too (`--lfs`).
    #[serde(default)]
    pub lfs: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    defaults: ConfigDefaults,
    credentials: Vec<RawCredential>,
}

// No Debug: `secret` may hold a value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredential {
    name: Option<String>,
    kind: Kind,
    #[serde(rename = "match", default)]
    matches: Vec<String>,
    /// The repositories the broker may answer for with this credential.
    #[serde(default)]
    allow: Vec<String>,
    secret: Option<String>,
    secret_file: Option<String>,
    secret_env: Option<String>,
    username: Option<String>,
    email: Option<String>,
    client_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path}: cannot be read ({reason})")]
    Unreadable { path: String, reason: String },
    #[error("config {path}: {message}")]
    Syntax { path: String, message: String },
    #[error("config {path}: {message}")]
    Invalid { path: String, message: String },
    #[error("config {path}: credential `{name}`: {error}")]
    Secret {
        path: String,
        name: String,
        error: SourceError,
    },
}

impl ConfigError {
    pub fn hint(&self) -> String {
        match self {
            ConfigError::Unreadable { .. } => "check the --config / BBINJECT_CONFIG path".into(),
            ConfigError::Syntax { .. } | ConfigError::Invalid { .. } => {
                "see the README section \"Config file\" for the keys a config may have".into()
            }
            ConfigError::Secret { error, .. } => error.hint(),
        }
    }
}

/// Loads the config at `path`; `reader` resolves `secret_env` references.
pub(super) fn load(path: &Path, reader: &Reader<'_>) -> Result<CredentialSet, ConfigError> {
    let shown = path.display().to_string();
    let unreadable = |reason: String| ConfigError::Unreadable {
        path: shown.clone(),
        reason,
    };
    // The file may hold secrets (`secret:`): our copies are wiped when done.
    let (bytes, _) = read_regular_file(path, MAX_CONFIG_BYTES).map_err(|p| match p {
        FileProblem::TooLarge => unreadable(format!(
            "{}, which no config is",
            p.describe(MAX_CONFIG_BYTES)
        )),
        p => unreadable(p.describe(MAX_CONFIG_BYTES)),
    })?;
    let text = match std::str::from_utf8(&bytes) {
        Ok(text) => zeroize::Zeroizing::new(text.to_owned()),
        Err(e) => {
            return Err(unreadable(format!(
                "it is not UTF-8 (the first bad byte is at offset {})",
                e.valid_up_to()
            )));
        }
    };
    let options = serde_saphyr::options! {
        with_snippet: false,
        strict_booleans: true,
    };
    let raw: RawConfig =
        serde_saphyr::from_str_with_options(&text, options).map_err(|e| ConfigError::Syntax {
            path: shown.clone(),
            message: without_quoted_values(&without_parser_advice(&e.to_string())),
        })?;
    let invalid = |message: String| ConfigError::Invalid {
        path: shown.clone(),
        message,
    };
    if raw.credentials.is_empty() {
        return Err(invalid("`credentials` is empty".into()));
    }

    let mut entries: Vec<(Vec<Scope>, Credential)> = Vec::new();
    for (index, mut rc) in raw.credentials.into_iter().enumerate() {
        let name = rc
            .name
            .clone()
            .unwrap_or_else(|| format!("credentials[{index}]"));
        if entries.iter().any(|(_, c)| c.name == name) {
            return Err(invalid(format!("two credentials are named `{name}`")));
        }
        let scopes = scopes(&rc.matches).map_err(|bad| {
            invalid(format!(
                "credential `{name}`: `match` entry {} is not WORKSPACE or WORKSPACE/SLUG (its value is not shown)",
                bad + 1
            ))
        })?;
        for scope in &scopes {
            if let Some((_, other)) = entries.iter().find(|(s, _)| s.contains(scope)) {
                return Err(invalid(format!(
                    "credentials `{}` and `{name}` both claim {}",
                    other.name,
                    describe(scope)
                )));
            }
        }
        let secret_error = |error| ConfigError::Secret {
            path: shown.clone(),
            name: name.clone(),
            error,
        };
        let secret = credential_secret(&mut rc, &shown, &name, reader).map_err(|e| match e {
            SecretSpecError::Source(source_error) => secret_error(source_error),
            SecretSpecError::Invalid(message) => invalid(message),
        })?;
        let source = secret
            .as_ref()
            .map(|v| v.source.clone())
            .unwrap_or_default();
        let allow = rc
            .allow
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                super::RepoPattern::parse(entry).map_err(|_| {
                    invalid(format!(
                        "credential `{name}`: `allow` entry {} is not WORKSPACE/SLUG or WORKSPACE/* (its value is not shown)",
                        index + 1
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let fields = Fields {
            name: name.clone(),
            source,
            username: rc
                .username
                .map(|u| (format!("config:{shown}#{name}.username"), u)),
            email: rc
                .email
                .map(|e| (format!("config:{shown}#{name}.email"), e)),
            client_id: rc.client_id,
            allow,
        };
        let credential = super::build::build(rc.kind, secret, fields).map_err(|e| match e {
            ResolveError::Source(error) => secret_error(error),
            other => invalid(format!("credential `{name}`: {other}")),
        })?;
        entries.push((scopes, credential));
    }
    Ok(CredentialSet {
        entries,
        defaults: raw.defaults,
    })
}

/// Why a credential's `secret` / `secret_file` / `secret_env` gave no value:
/// reading it failed, or the entry itself is wrong.
enum SecretSpecError {
    Source(SourceError),
    Invalid(String),
}

impl From<SourceError> for SecretSpecError {
    fn from(error: SourceError) -> Self {
        SecretSpecError::Source(error)
    }
}

type SecretResult = Result<Option<Value>, SecretSpecError>;

fn credential_secret(
    rc: &mut RawCredential,
    path: &str,
    name: &str,
    reader: &Reader<'_>,
) -> SecretResult {
    let given = [
        rc.secret.is_some(),
        rc.secret_file.is_some(),
        rc.secret_env.is_some(),
    ];
    match given.iter().filter(|g| **g).count() {
        0 => {
            return Err(SecretSpecError::Invalid(format!(
                "credential `{name}` needs one of `secret`, `secret_file` or `secret_env`"
            )));
        }
        1 => {}
        _ => {
            return Err(SecretSpecError::Invalid(format!(
                "credential `{name}` sets more than one of `secret`, `secret_file`, `secret_env`"
            )));
        }
    }
    if let Some(inline) = rc.secret.take() {
        let source = Source::Config {
            path: path.to_owned(),
            key: format!("{name}.secret"),
        };
        // Moved, not copied: the only copy is wiped on drop.
        let text = zeroize::Zeroizing::new(inline);
        let text = super::source::validate_value(text, &source.to_string())?;
        return Ok(Some(Value {
            text,
            source,
            warnings: vec![],
            file: None,
        }));
    }
    if let Some(file) = &rc.secret_file {
        // A value pasted where the path belongs must not be echoed: a path is
        // shown only when it looks like one.
        let label = if looks_like_a_path(file) {
            format!("secret_file {file}")
        } else {
            format!(
                "credential `{name}`: secret_file (a relative path, not shown in case it is a pasted secret)"
            )
        };
        let (text, warnings) = read_secret_file(Path::new(file), &label)?;
        return Ok(Some(Value {
            text,
            source: Source::File(file.clone()),
            warnings,
            file: Some(super::SecretFile {
                path: file.into(),
                label,
            }),
        }));
    }
    if let Some(variable) = &rc.secret_env {
        if !is_variable_name(variable) {
            return Err(SecretSpecError::Invalid(format!(
                "credential `{name}`: secret_env must name an environment variable (upper-case \
                 letters, digits and `_`); the value given is not one, and is not shown"
            )));
        }
        return match reader.env_only(variable)? {
            Some(value) => Ok(Some(value)),
            None => Err(SecretSpecError::Invalid(format!(
                "credential `{name}`: secret_env {variable} is not set (nor {variable}_FILE)"
            ))),
        };
    }
    Ok(None)
}

/// `NAME` of an environment variable as CI systems write them; anything else
/// (a pasted token, most likely) is not echoed.
fn is_variable_name(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !text.starts_with(|c: char| c.is_ascii_digit())
}

/// An absolute path or one that starts like a relative path: safe to show.
fn looks_like_a_path(text: &str) -> bool {
    ["/", "./", "../", "~/"].iter().any(|p| text.starts_with(p))
}

/// A short, token-unlike word (a key or variant name): safe to show.
pub(super) fn is_harmless_word(text: &str) -> bool {
    (1..=20).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || matches!(c, '_' | '-'))
}

/// Turns `match:` entries into scopes; an empty list means "any repository".
/// A bad entry is reported by its index (0-based), never its value.
fn scopes(matches: &[String]) -> Result<Vec<Scope>, usize> {
    if matches.is_empty() {
        return Ok(vec![Scope::Any]);
    }
    matches
        .iter()
        .enumerate()
        .map(|(index, m)| {
            if m.contains('/') {
                RepoRef::parse(m).map(Scope::Repository).map_err(|_| index)
            } else if super::repo::is_name(m) {
                Ok(Scope::Workspace(m.to_ascii_lowercase()))
            } else {
                Err(index)
            }
        })
        .collect()
}

fn describe(scope: &Scope) -> String {
    match scope {
        Scope::Any => "every repository (no `match:`)".into(),
        Scope::Workspace(ws) => format!("workspace {ws}"),
        Scope::Repository(repo) => format!("repository {repo}"),
    }
}

/// Removes quoted scalars from a parser message: serde quotes the offending
/// value in type errors, and that value may be a secret. Short identifiers in
/// backticks (field and variant names) are kept, since they are the useful part.
/// The parser's message without advice meant for programmers
/// (", set DuplicateKeyPolicy in Options if acceptable"): a user cannot act on
/// it, and a key may appear once only.
fn without_parser_advice(message: &str) -> String {
    const ADVICE: &str = ", set DuplicateKeyPolicy in Options if acceptable";
    match message.find(ADVICE) {
        Some(at) => format!(
            "{} (each key may appear once){}",
            &message[..at],
            &message[at + ADVICE.len()..]
        ),
        None => message.to_owned(),
    }
}

fn without_quoted_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(['"', '`', '\'']) {
        let quote = rest[start..].chars().next().unwrap_or('"');
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find(quote) {
            Some(end) => {
                let inner = &after[..end];
                // A one-character quote is YAML syntax (`'-'`), never a secret.
                // A variant the user wrote is a *value* (it may be a secret
                // on the wrong line): never shown; the expected ones are ours.
                let user_value = out.ends_with("unknown variant ");
                let identifier = inner.chars().count() <= 1
                    || quote == '`' && !user_value && is_harmless_word(inner);
                if identifier {
                    out.push(quote);
                    out.push_str(inner);
                    out.push(quote);
                } else {
                    out.push_str("(value hidden)");
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str("(value hidden)");
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::ffi::OsString;

    use super::*;

    const FAKE: &str = "ATATT3xFAKEFAKEFAKEconfigsecret";

    fn load_str(yaml: &str, env: &[(&str, &str)]) -> Result<CredentialSet, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bbinject.yaml");
        std::fs::write(&path, yaml).expect("write");
        let env: HashMap<String, OsString> = env
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        load(&path, &Reader::new(&env, None))
    }

    #[test]
    fn several_credentials_route_by_specificity() {
        let yaml = format!(
            "defaults:\n  need: write\ncredentials:\n  - name: acme\n    kind: api_token\n    match: [acme]\n    secret: {FAKE}\n    email: ci@example.com\n  - name: app\n    kind: access_token\n    match: [acme/app]\n    secret_env: APP_TOKEN\n  - name: rest\n    kind: oauth\n    client_id: consumer\n    secret_env: OAUTH_SECRET\n"
        );
        let set = load_str(&yaml, &[("APP_TOKEN", FAKE), ("OAUTH_SECRET", FAKE)]).expect("loads");
        assert_eq!(set.len(), 3);
        assert_eq!(set.defaults.need, Some(crate::bitbucket::Need::Write));
        let route = |r: &str| {
            set.credential(
                set.route(&RepoRef::parse(r).expect("repo"))
                    .expect("routed"),
            )
            .name
            .clone()
        };
        assert_eq!(route("acme/app"), "app");
        assert_eq!(route("acme/lib"), "acme");
        assert_eq!(route("other/x"), "rest");
        assert_eq!(set.credential(1).source.to_string(), "env:APP_TOKEN");
    }

    #[test]
    fn errors_never_print_a_secret_from_the_file() {
        let cases = [
            // unknown key on the line before the secret
            format!("credentials:\n  - kind: api_token\n    tokn: x\n    secret: {FAKE}\n"),
            // wrong type next to the secret
            format!("credentials:\n  - kind: api_token\n    secret: {FAKE}\n    match: 42\n"),
            // the secret itself where a bool/enum is expected
            format!("credentials:\n  - kind: {FAKE}\n    secret: x\n"),
            format!("defaults:\n  need: {FAKE}\ncredentials: []\n"),
            // malformed YAML around the secret
            format!("credentials:\n  - kind: api_token\n    secret: {FAKE}\n   bad: [\n"),
            format!("credentials:\n  - kind: api_token\n    secret: \"{FAKE}\n"),
        ];
        for yaml in cases {
            let err = load_str(&yaml, &[])
                .err()
                .unwrap_or_else(|| panic!("accepted:\n{yaml}"));
            let text = format!("{err} {}", err.hint());
            assert!(!text.contains("FAKEFAKE"), "secret leaked: {text}");
            assert!(text.contains("bbinject.yaml"), "{text}");
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let err =
            load_str("credentials:\n  - kind: api_token\n    tokn: x\n", &[]).expect_err("error");
        assert!(err.to_string().contains("tokn"), "{err}");
    }

    #[test]
    fn invalid_entries_are_refused() {
        for (yaml, expected) in [
            ("credentials: []\n", "empty"),
            ("credentials:\n  - kind: api_token\n", "needs one of"),
            (
                "credentials:\n  - kind: api_token\n    secret: a\n    secret_env: B\n",
                "more than one",
            ),
            (
                "credentials:\n  - kind: access_token\n    secret: FAKEFAKEaaaaaaaaaaaaaaaa\n  - kind: access_token\n    secret: FAKEFAKEbbbbbbbbbbbbbbbbbb\n",
                "both claim every repository",
            ),
            (
                "credentials:\n  - kind: access_token\n    match: [acme/app/x]\n    secret: FAKEFAKEaaaaaaaaaaaaaa\n",
                "is not WORKSPACE",
            ),
            (
                "credentials:\n  - kind: access_token\n    secret_env: NOPE\n",
                "NOPE is not set",
            ),
            (
                "credentials:\n  - kind: access_token\n    secret_file: /nonexistent/x\n",
                "does not exist",
            ),
        ] {
            let err = load_str(yaml, &[])
                .err()
                .unwrap_or_else(|| panic!("accepted {yaml}"));
            assert!(err.to_string().contains(expected), "{yaml}: {err}");
        }
    }

    #[test]
    fn config_errors_never_quote_a_value_from_any_key() {
        let lower = "sekritlowercasevalue";
        let cases = [
            format!("credentials:\n  - kind: api_token\n    secret_env: {FAKE}\n"),
            format!("credentials:\n  - kind: api_token\n    secret_file: {FAKE}\n"),
            format!(
                "credentials:\n  - kind: api_token\n    match: [\"{FAKE}+/=\"]\n    secret: {FAKE}\n"
            ),
            format!("credentials:\n  - kind: {lower}\n    secret: x\n"),
            format!(
                "defaults:\n  need: {lower}\ncredentials:\n  - kind: api_token\n    secret: {FAKE}\n"
            ),
        ];
        for yaml in cases {
            let err = load_str(&yaml, &[])
                .err()
                .unwrap_or_else(|| panic!("accepted:\n{yaml}"));
            let text = format!("{err} {}", err.hint());
            assert!(
                !text.contains("FAKE") && !text.contains(lower),
                "value echoed: {text}"
            );
            assert!(text.contains("bbinject.yaml"), "{text}");
        }
    }

    #[test]
    #[cfg(unix)]
    fn a_fifo_or_a_huge_config_is_refused_without_waiting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        crate::testing::mkfifo(&fifo);
        let env: HashMap<String, OsString> = HashMap::new();
        let Err(err) = load(&fifo, &Reader::new(&env, None)) else {
            panic!("a FIFO was accepted")
        };
        assert!(err.to_string().contains("named pipe"), "{err}");
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, vec![b'#'; MAX_CONFIG_BYTES as usize + 1]).expect("write");
        let Err(err) = load(&big, &Reader::new(&env, None)) else {
            panic!("a huge config was accepted")
        };
        assert!(err.to_string().contains("larger than"), "{err}");
        let Err(err) = load(std::path::Path::new("/dev/zero"), &Reader::new(&env, None)) else {
            panic!("/dev/zero was accepted")
        };
        assert!(err.to_string().contains("a device"), "{err}");
    }

    #[test]
    fn quoted_values_are_hidden_but_field_names_kept() {
        let shown = without_quoted_values(
            "invalid type: string \"ATATT3x\", expected a boolean; unknown field `tokn`, expected `secret`",
        );
        assert!(!shown.contains("ATATT3x"), "{shown}");
        assert!(shown.contains("`tokn`"), "{shown}");
    }
}
