//! Exit codes in one enum, and the one place errors become text for a person:
//! `bbinject: error: …` then `hint: …`. Errors of every module arrive here
//! typed; none of them carries a secret, so none can print one.

use crate::bitbucket::{EndpointError, HttpError, codes};
use crate::credential::{RepoRefError, ResolveError};

/// What `bbinject` exits with. `check` and a failing preflight use 2–5;
/// `exec` otherwise passes the child's status through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    Success,
    /// `scrub --check`: credentials were found.
    Found,
    /// Usage or configuration: no credential, `X` and `X_FILE` both set, bad YAML…
    Usage,
    /// Bitbucket refused the credential (401/410).
    CredentialRejected,
    /// Authenticated but not allowed (403, 404 on a private repository, missing scope).
    NotAllowed,
    /// Bitbucket could not be reached (DNS, TLS, timeout, 5xx/429 after retries).
    Unreachable,
    /// `exec`: the command could not be executed (126, as shells do).
    CannotExecute,
    /// `exec`: the command was not found (127, as shells do).
    CommandNotFound,
    /// `exec`: the child's own status, or `128 + n` if signal `n` killed it.
    Child(u8),
}

impl ExitCode {
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Success => 0,
            ExitCode::Found => 1,
            ExitCode::Usage => 2,
            ExitCode::CredentialRejected => 3,
            ExitCode::NotAllowed => 4,
            ExitCode::Unreachable => 5,
            ExitCode::CannotExecute => 126,
            ExitCode::CommandNotFound => 127,
            ExitCode::Child(code) => code,
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("BITBUCKET_REPO_FULL_NAME: {0}")]
    PipelinesRepo(RepoRefError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot set up the broker: {}", io_reason(.0))]
    RuntimeDir(std::io::Error),
    #[error("GIT_CONFIG_COUNT is `{0}`, not a number")]
    GitConfigCount(String),
    #[error("cannot write the man pages into {dir}: {reason}")]
    Manual { dir: String, reason: String },
}

/// An I/O error as a short clause, without the OS error number.
fn io_reason(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

impl Error {
    pub fn hint(&self) -> String {
        match self {
            Error::Resolve(e) => e.hint(),
            Error::Endpoint(e) => e.hint(),
            Error::PipelinesRepo(_) => "pass --repo WORKSPACE/SLUG explicitly".into(),
            Error::Http(e) => e.hint(),
            Error::Runtime(_) => "the machine may be out of threads or file descriptors".into(),
            Error::RuntimeDir(_) => {
                "bbinject needs a private directory for its socket: check that $XDG_RUNTIME_DIR or \
                 $TMPDIR is writable and its path is short"
                    .into()
            }
            Error::GitConfigCount(_) => "unset GIT_CONFIG_COUNT or fix the value".into(),
            Error::Manual { .. } => "give a directory you can write to".into(),
        }
    }

    /// Everything that stops a run before a child starts is something to fix
    /// in the set-up: exit 2, as `check` does.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::Usage
    }

    /// The stable problem code this error has in a JSON report.
    pub fn code(&self) -> &'static str {
        codes::CONFIGURATION
    }
}

/// A command line clap rejected: clap's own message (it names the argument),
/// a hint where we know the usual mistake, and for `check --format json` the
/// documented JSON report, so a CI job archiving stdout gets an object too.
pub fn usage(error: &clap::Error, args: &[std::ffi::OsString]) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = error.print();
        return ExitCode::Success;
    }
    let words: Vec<&str> = args.iter().skip(1).filter_map(|a| a.to_str()).collect();
    let subcommand = words.iter().find(|w| !w.starts_with('-')).copied();
    let _ = error.print();
    if subcommand == Some("exec")
        && matches!(
            error.kind(),
            ErrorKind::UnknownArgument | ErrorKind::MissingRequiredArgument
        )
    {
        crate::redact::eprint_line(
            "hint: put the command after `--`, e.g. bbinject exec --repo acme/app -- git clone https://bitbucket.org/acme/app.git",
        );
    }
    let json =
        words.windows(2).any(|w| w == ["--format", "json"]) || words.contains(&"--format=json");
    if subcommand == Some("check") && json {
        let rendered = error.to_string();
        let message = rendered
            .lines()
            .next()
            .unwrap_or("invalid command line")
            .trim_start_matches("error: ")
            .to_owned();
        let mut report = crate::bitbucket::Report::new(crate::bitbucket::Need::default());
        report.push(crate::bitbucket::Problem::error(
            codes::CONFIGURATION,
            message,
            "see `bbinject check --help`",
        ));
        let text = report.to_json();
        let mut out = std::io::stdout().lock();
        let _ = std::io::Write::write_all(&mut out, &crate::redact::redact_own(text.as_bytes()));
        if !text.ends_with('\n') {
            let _ = std::io::Write::write_all(&mut out, b"\n");
        }
    }
    ExitCode::Usage
}

/// Prints `error` the one way errors are printed: a line, then a hint, both
/// through the redactor.
pub fn print(error: &Error) {
    crate::redact::eprint_line(&format!("bbinject: error: {error}"));
    crate::redact::eprint_line(&format!("hint: {}", error.hint()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_documented_numbers() {
        let table = [
            (ExitCode::Success, 0),
            (ExitCode::Found, 1),
            (ExitCode::Usage, 2),
            (ExitCode::CredentialRejected, 3),
            (ExitCode::NotAllowed, 4),
            (ExitCode::Unreachable, 5),
            (ExitCode::CannotExecute, 126),
            (ExitCode::CommandNotFound, 127),
            (ExitCode::Child(0), 0),
            (ExitCode::Child(7), 7),
            (ExitCode::Child(143), 143),
            (ExitCode::Child(255), 255),
        ];
        for (code, number) in table {
            assert_eq!(code.code(), number, "{code:?}");
        }
    }

    #[test]
    fn io_errors_read_without_the_os_error_number() {
        let e = Error::RuntimeDir(std::io::Error::from_raw_os_error(30));
        assert_eq!(
            e.to_string(),
            "cannot set up the broker: Read-only file system"
        );
    }

    #[test]
    fn configuration_errors_exit_2() {
        let e = Error::Resolve(ResolveError::NoCredential);
        assert_eq!(e.exit_code(), ExitCode::Usage);
        assert!(e.hint().contains("BITBUCKET_API_TOKEN"));
    }
}
