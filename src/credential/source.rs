//! Reading credential values from environment variables, `NAME_FILE` files and
//! a secrets directory (ARCHITECTURE.md §2).
//!
//! Every value is checked here (one trailing newline stripped; empty, oversized,
//! non-UTF-8 values and inner whitespace or control characters refused) and
//! secret values become [`Secret`]s before this module returns. Errors name the
//! source (`BITBUCKET_API_TOKEN_FILE=/run/secrets/x`), never the value.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{Source, Warning};
use crate::fsutil::{FileProblem, read_regular_file};
use crate::secret::Secret;

/// No live Bitbucket secret is shorter: app passwords were 20 characters or
/// more, OAuth client secrets 32, API and access tokens far longer.
pub const MIN_SECRET_CHARS: usize = 16;

/// The largest secret file we read; real tokens are a few hundred bytes.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Read access to environment variables, so resolution can be tested without
/// touching the process environment.
pub trait Environment {
    fn var_os(&self, name: &str) -> Option<OsString>;
}

/// The real process environment.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var_os(&self, name: &str) -> Option<OsString> {
        std::env::var_os(name)
    }
}

impl Environment for std::collections::HashMap<String, OsString> {
    fn var_os(&self, name: &str) -> Option<OsString> {
        self.get(name).cloned()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{name} and {others} are both set")]
    Conflict { name: String, others: String },
    #[error("{origin}: file does not exist")]
    Missing { origin: String },
    #[error("{origin}: is a directory, not a file")]
    Directory { origin: String },
    #[error("{origin}: is {what}, not a regular file")]
    NotAFile { origin: String, what: &'static str },
    #[error("{origin}: cannot be read ({reason})")]
    Unreadable { origin: String, reason: String },
    #[error("{origin}: is empty")]
    Empty { origin: String },
    #[error("{origin}: is larger than {MAX_SECRET_FILE_BYTES} bytes, which no Bitbucket secret is")]
    TooLarge { origin: String },
    #[error("{origin}: is not valid UTF-8")]
    NotUtf8 { origin: String },
    #[error("{origin}: contains {what} at byte {position}")]
    BadCharacter {
        origin: String,
        what: &'static str,
        position: usize,
    },
    #[error("{origin}: contains an invisible character (U+{code:04X}) at byte {position}")]
    Invisible {
        origin: String,
        code: u32,
        position: usize,
    },
    #[error(
        "{origin}: contains `:`, which cannot be part of a username in HTTP Basic authentication"
    )]
    ColonInUsername { origin: String },
    #[error(
        "{origin}: the value is only {len} characters long, far too short for an {kind} (real ones have {MIN_SECRET_CHARS} or more)"
    )]
    TooShort {
        origin: String,
        len: usize,
        kind: &'static str,
    },
    #[error("--secrets-dir {path}: {reason}")]
    SecretsDir { path: String, reason: &'static str },
}

impl SourceError {
    pub fn hint(&self) -> String {
        match self {
            SourceError::Conflict { .. } => {
                "set the value in one place only: NAME, NAME_FILE or the secrets directory".into()
            }
            SourceError::Missing { .. }
            | SourceError::Directory { .. }
            | SourceError::NotAFile { .. } => {
                "point it at the file that holds the secret (for Docker/Kubernetes secrets, usually \
                 /run/secrets/<name>)"
                    .into()
            }
            SourceError::Unreadable { .. } => {
                "make the file readable by the user running bbinject".into()
            }
            SourceError::Empty { .. } => {
                "the CI secret is empty or was not mounted; check the secret's name in your CI settings"
                    .into()
            }
            SourceError::TooLarge { .. } | SourceError::NotUtf8 { .. } => {
                "the file should hold only the token, on one line".into()
            }
            SourceError::BadCharacter { .. } => {
                "a token is one word: check for a pasted label, a space or quotes around the value"
                    .into()
            }
            SourceError::Invisible { .. } => {
                "the value was pasted with a hidden character (a zero-width space or similar): \
                 paste the token again from Bitbucket into a plain-text field"
                    .into()
            }
            SourceError::ColonInUsername { .. } => {
                "set the Bitbucket username (Personal settings > Account settings), not user:password"
                    .into()
            }
            SourceError::TooShort { .. } => {
                "did you paste the token's name (label) instead of its value? The value is shown \
                 once, when the token is created; create a new one if it is lost"
                    .into()
            }
            SourceError::SecretsDir { .. } => {
                "point --secrets-dir at the directory where the CI mounts its secrets (e.g. /run/secrets)"
                    .into()
            }
        }
    }
}

/// A value as read, before it is turned into a secret or a plain string.
pub(super) struct Value {
    pub text: Zeroizing<String>,
    /// Where it came from, e.g. `env:BITBUCKET_API_TOKEN_FILE`.
    pub source: Source,
    pub warnings: Vec<Warning>,
    /// The file it was read from, to read again when it is rotated.
    pub file: Option<super::SecretFile>,
}

impl Value {
    pub fn into_secret(mut self) -> Secret {
        Secret::new(std::mem::take(&mut *self.text))
    }

    pub fn into_plain(self) -> String {
        self.text.as_str().to_owned()
    }
}

pub(super) struct Reader<'a> {
    env: &'a dyn Environment,
    secrets_dir: Option<&'a Path>,
}

impl<'a> Reader<'a> {
    pub fn new(env: &'a dyn Environment, secrets_dir: Option<&'a Path>) -> Self {
        Self { env, secrets_dir }
    }

    /// Reads variable `name` from `NAME`, `NAME_FILE` or `<secrets dir>/<name>`;
    /// more than one of them set is an error.
    pub fn variable(&self, name: &str) -> Result<Option<Value>, SourceError> {
        if let Some(dir) = self.secrets_dir {
            let reason = match std::fs::metadata(dir) {
                Ok(meta) if meta.is_dir() => None,
                Ok(_) => Some("is not a directory"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("does not exist"),
                Err(_) => Some("cannot be read"),
            };
            if let Some(reason) = reason {
                return Err(SourceError::SecretsDir {
                    path: dir.display().to_string(),
                    reason,
                });
            }
        }
        let file_name = format!("{name}_FILE");
        let direct = self.env.var_os(name);
        let file = self.env.var_os(&file_name);
        let in_dir = self
            .secrets_dir
            .map(|dir| dir.join(name.to_ascii_lowercase()))
            .filter(|path| path.symlink_metadata().is_ok());

        let mut present = Vec::new();
        if direct.is_some() {
            present.push(name.to_owned());
        }
        if file.is_some() {
            present.push(file_name.clone());
        }
        if let Some(path) = &in_dir {
            present.push(path.display().to_string());
        }
        if present.len() > 1 {
            let name = present.remove(0);
            return Err(SourceError::Conflict {
                name,
                others: present.join(" and "),
            });
        }

        if let Some(raw) = direct {
            let source = Source::Env(name.to_owned());
            let text = raw.into_string().map_err(|_| SourceError::NotUtf8 {
                origin: name.to_owned(),
            })?;
            let text = validate_value(Zeroizing::new(text), name)?;
            return Ok(Some(Value {
                text,
                source,
                warnings: vec![],
                file: None,
            }));
        }
        if let Some(path) = file {
            let path = PathBuf::from(path);
            let label = format!("{file_name}={}", path.display());
            return read_secret_file(&path, &label)
                .map(|(text, warnings)| Value {
                    text,
                    source: Source::Env(file_name.clone()),
                    warnings,
                    file: Some(super::SecretFile {
                        path: path.clone(),
                        label: label.clone(),
                    }),
                })
                .map(Some);
        }
        if let Some(path) = in_dir {
            let label = path.display().to_string();
            return read_secret_file(&path, &label)
                .map(|(text, warnings)| Value {
                    text,
                    source: Source::File(label.clone()),
                    warnings,
                    file: Some(super::SecretFile {
                        path: path.clone(),
                        label: label.clone(),
                    }),
                })
                .map(Some);
        }
        Ok(None)
    }

    /// Reads a variable that names another variable's value (config `*_env` keys):
    /// only `NAME` itself and `NAME_FILE`.
    pub fn env_only(&self, name: &str) -> Result<Option<Value>, SourceError> {
        let scoped = Reader {
            env: self.env,
            secrets_dir: None,
        };
        scoped.variable(name)
    }
}

/// Reads a secret file with the rules of ARCHITECTURE.md §2. `label` names it in errors.
pub fn read_secret_file(
    path: &Path,
    label: &str,
) -> Result<(Zeroizing<String>, Vec<Warning>), SourceError> {
    let origin = label.to_owned();
    let (mut bytes, metadata) =
        read_regular_file(path, MAX_SECRET_FILE_BYTES).map_err(|problem| match problem {
            FileProblem::Missing => SourceError::Missing { origin },
            FileProblem::Directory => SourceError::Directory { origin },
            FileProblem::NotAFile(what) => SourceError::NotAFile { origin, what },
            FileProblem::Unreadable(reason) => SourceError::Unreadable { origin, reason },
            FileProblem::TooLarge => SourceError::TooLarge { origin },
        })?;

    let mut warnings = Vec::new();
    if let Some((who, mode)) = crate::sys::readable_by_others(&metadata) {
        warnings.push(Warning {
            code: crate::codes::ProblemCode::SecretFilePermissions,
            message: format!("{label} is readable by {who} ({mode})"),
            hint:
                "restrict it (chmod 600; for a Kubernetes secret, defaultMode: 0400, or 0440 with \
                   an fsGroup the pod runs in)"
                    .into(),
        });
    }

    let bytes = std::mem::take(&mut *bytes);
    let text = String::from_utf8(bytes).map_err(|e| {
        // The rejected bytes are inside the error: wipe them before dropping.
        drop(Zeroizing::new(e.into_bytes()));
        SourceError::NotUtf8 {
            origin: label.to_owned(),
        }
    })?;
    Ok((validate_value(Zeroizing::new(text), label)?, warnings))
}

/// Characters that cannot be seen and are never part of a Bitbucket secret:
/// zero-width and bidirectional marks, the soft hyphen, a BOM inside a value.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// Strips one trailing `\n` or `\r\n` and refuses empty values and values with
/// whitespace or control characters inside.
pub(super) fn validate_value(
    mut text: Zeroizing<String>,
    source: &str,
) -> Result<Zeroizing<String>, SourceError> {
    // Windows editors start UTF-8 files with a byte order mark; it is never
    // part of the secret.
    if text.starts_with('\u{FEFF}') {
        text.replace_range(..'\u{FEFF}'.len_utf8(), "");
    }
    if let Some((position, c)) = text.char_indices().find(|(_, c)| is_invisible(*c)) {
        return Err(SourceError::Invisible {
            origin: source.to_owned(),
            code: u32::from(c),
            position,
        });
    }
    let len = text.len();
    if text.ends_with("\r\n") {
        text.truncate(len - 2);
    } else if text.ends_with('\n') {
        text.truncate(len - 1);
    }
    if text.is_empty() {
        return Err(SourceError::Empty {
            origin: source.to_owned(),
        });
    }
    if let Some((position, c)) = text
        .char_indices()
        .find(|(_, c)| c.is_whitespace() || c.is_control())
    {
        let what = if c.is_control() && !c.is_whitespace() {
            "a control character"
        } else if matches!(c, '\n' | '\r') {
            "a line break"
        } else {
            "whitespace"
        };
        return Err(SourceError::BadCharacter {
            origin: source.to_owned(),
            what,
            position,
        });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::build::{ACCESS_TOKEN, API_TOKEN, from_variables};
    use crate::credential::{Kind, ResolveError};

    const FAKE_TOKEN: &str = "ATATT3xFAKEFAKEFAKEFAKEFAKE0000";

    type Expect = fn(&SourceError) -> bool;

    use crate::credential::testing::{assert_no_secret, env, resolve};

    #[test]
    fn trailing_newlines_are_stripped_once() {
        for value in [format!("{FAKE_TOKEN}\n"), format!("{FAKE_TOKEN}\r\n")] {
            let cred = resolve(&[(ACCESS_TOKEN, &value)]).expect("ok");
            assert_eq!(cred.secret().expose(), FAKE_TOKEN);
        }
        let err =
            resolve(&[(ACCESS_TOKEN, &format!("{FAKE_TOKEN}\n\n"))]).expect_err("two newlines");
        assert!(matches!(
            err,
            ResolveError::Source(SourceError::BadCharacter { .. })
        ));
    }

    #[test]
    fn bad_values_are_refused_naming_the_source_only() {
        let cases: &[(&str, Expect)] = &[
            ("", |e| matches!(e, SourceError::Empty { .. })),
            ("\n", |e| matches!(e, SourceError::Empty { .. })),
            ("FAKEFAKE inner space", |e| {
                matches!(e, SourceError::BadCharacter { .. })
            }),
            ("FAKEFAKE\ttab", |e| {
                matches!(e, SourceError::BadCharacter { .. })
            }),
            ("FAKEFAKE\u{7}bell", |e| {
                matches!(e, SourceError::BadCharacter { .. })
            }),
            ("FAKEFAKE\nsecond line", |e| {
                matches!(e, SourceError::BadCharacter { .. })
            }),
        ];
        for (value, expected) in cases {
            let err = resolve(&[(API_TOKEN, value)]).expect_err(value);
            let ResolveError::Source(source_err) = &err else {
                panic!("{err}")
            };
            assert!(expected(source_err), "{value:?} gave {err}");
            let text = format!("{err} {}", err.hint());
            assert!(text.contains(API_TOKEN), "{text}");
            assert_no_secret(&text);
        }
    }

    #[test]
    fn name_and_name_file_both_set_is_an_error() {
        let err = resolve(&[(API_TOKEN, FAKE_TOKEN), ("BITBUCKET_API_TOKEN_FILE", "/x")])
            .expect_err("conflict");
        assert_eq!(
            err.to_string(),
            "BITBUCKET_API_TOKEN and BITBUCKET_API_TOKEN_FILE are both set"
        );
    }

    #[test]
    fn secret_files_follow_the_rules() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, bytes: &[u8], mode: u32| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).expect("write");
            crate::sys::set_mode(&path, mode).expect("chmod");
            path
        };
        let ok = write("ok", format!("{FAKE_TOKEN}\r\n").as_bytes(), 0o600);
        let (text, warnings) = read_secret_file(&ok, "X_FILE=ok").expect("ok");
        assert_eq!(text.as_str(), FAKE_TOKEN);
        assert!(warnings.is_empty());

        // Mode bits exist on Unix only (Windows ACLs are not inspected).
        if cfg!(unix) {
            let open = write("open", FAKE_TOKEN.as_bytes(), 0o644);
            let (_, warnings) = read_secret_file(&open, "X_FILE=open").expect("ok");
            assert_eq!(
                warnings[0].code,
                crate::codes::ProblemCode::SecretFilePermissions
            );
        }

        let cases: Vec<(PathBuf, Expect)> = vec![
            (dir.path().join("absent"), |e| {
                matches!(e, SourceError::Missing { .. })
            }),
            (dir.path().to_path_buf(), |e| {
                matches!(e, SourceError::Directory { .. })
            }),
            (write("empty", b"", 0o600), |e| {
                matches!(e, SourceError::Empty { .. })
            }),
            (write("newline", b"\n", 0o600), |e| {
                matches!(e, SourceError::Empty { .. })
            }),
            (write("big", &vec![b'A'; 64 * 1024 + 1], 0o600), |e| {
                matches!(e, SourceError::TooLarge { .. })
            }),
            (write("latin1", b"FAKEFAKE\xe9\xff", 0o600), |e| {
                matches!(e, SourceError::NotUtf8 { .. })
            }),
            (write("space", b"FAKEFAKE x", 0o600), |e| {
                matches!(e, SourceError::BadCharacter { .. })
            }),
        ];
        for (path, expected) in cases {
            let label = format!("X_FILE={}", path.display());
            let err = read_secret_file(&path, &label).expect_err(&label);
            assert!(expected(&err), "{label}: {err}");
            assert!(err.to_string().starts_with(&label), "{err}");
            assert_no_secret(&err.to_string());
        }
    }

    #[test]
    fn secrets_dir_files_are_named_after_the_variables() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bitbucket_access_token");
        std::fs::write(&path, format!("{FAKE_TOKEN}\n")).expect("write");
        crate::sys::set_mode(&path, 0o400).expect("chmod");
        let env = env(&[]);
        let cred = from_variables(&Reader::new(&env, Some(dir.path()))).expect("ok");
        assert_eq!(cred.kind(), Kind::AccessToken);
        assert_eq!(cred.source.to_string(), format!("file:{}", path.display()));

        let env = self::env(&[(ACCESS_TOKEN, FAKE_TOKEN)]);
        let err = from_variables(&Reader::new(&env, Some(dir.path()))).expect_err("both");
        assert!(err.to_string().contains("bitbucket_access_token"), "{err}");
    }

    #[test]
    #[cfg(unix)]
    fn fifos_sockets_and_devices_are_refused_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("bitbucket_api_token");
        crate::testing::mkfifo(&fifo);
        // A blocking open of a FIFO with no writer would never return.
        let err = read_secret_file(&fifo, "X_FILE=fifo").expect_err("fifo");
        assert!(err.to_string().contains("named pipe"), "{err}");
        let env = env(&[]);
        let err = from_variables(&Reader::new(&env, Some(dir.path()))).expect_err("fifo in dir");
        assert!(
            err.to_string()
                .contains("bitbucket_api_token: is a named pipe"),
            "{err}"
        );
        let err = read_secret_file(Path::new("/dev/zero"), "X_FILE=/dev/zero").expect_err("dev");
        assert!(err.to_string().contains("is a device"), "{err}");
    }

    #[test]
    fn a_leading_bom_is_stripped_and_invisible_characters_are_refused() {
        let bom = format!("\u{FEFF}{FAKE_TOKEN}");
        let cred = resolve(&[(API_TOKEN, &bom)]).expect("a BOM is stripped");
        assert_eq!(
            cred.fingerprint(),
            resolve(&[(API_TOKEN, FAKE_TOKEN)])
                .expect("ok")
                .fingerprint()
        );
        for (value, code) in [
            (format!("{FAKE_TOKEN}\u{200B}"), "U+200B"),
            (format!("FAKE\u{2060}{FAKE_TOKEN}"), "U+2060"),
            (format!("{FAKE_TOKEN}\u{FEFF}x"), "U+FEFF"),
            (format!("\u{00AD}{FAKE_TOKEN}"), "U+00AD"),
        ] {
            let err = resolve(&[(API_TOKEN, &value)]).expect_err("invisible");
            let text = err.to_string();
            assert!(
                text.contains(code) && text.contains(API_TOKEN) && text.contains("at byte"),
                "{text}"
            );
            assert_no_secret(&text);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, format!("\u{FEFF}{FAKE_TOKEN}\r\n")).expect("write");
        let (text, _) = read_secret_file(&path, "X_FILE=token").expect("BOM stripped");
        assert_eq!(text.as_str(), FAKE_TOKEN);
    }

    #[test]
    #[cfg(unix)]
    fn a_file_readable_by_our_own_group_is_fine_but_others_are_warned() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, FAKE_TOKEN).expect("write");
        // The file's group is our own egid (we created it): 0440 as with fsGroup.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o440)).expect("chmod");
        let (_, warnings) = read_secret_file(&path, "X_FILE=token").expect("ok");
        assert!(
            warnings.is_empty(),
            "{:?}",
            warnings.iter().map(|w| &w.message).collect::<Vec<_>>()
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).expect("chmod");
        let (_, warnings) = read_secret_file(&path, "X_FILE=token").expect("ok");
        assert!(
            warnings[0].message.contains("other users (mode 444)"),
            "{}",
            warnings[0].message
        );
    }
}
