//! The edge where errors, warnings and notes become text for a person:
//! `bbinject: error: …` then `hint: …`, preflight problems on stderr, clap's
//! usage errors with our hints. Errors of every module arrive here typed;
//! none of them carries a secret, so none can print one. Nothing else in the
//! crate writes an error line, and nothing here decides an exit code that
//! `codes` does not define.

use std::io::Write as _;

use crate::bitbucket::{EndpointError, HttpError};
use crate::codes::ProblemCode;
use crate::credential::{RepoRefError, ResolveError};

pub use crate::codes::Exit;

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
    BrokerSetup(std::io::Error),
    #[error(transparent)]
    GitConfigCount(#[from] crate::broker::child_env::GitConfigCountError),
    #[error("--allow-repo: {0}")]
    AllowRepo(crate::credential::RepoRefError),
    #[error("--allow-checked needs the repositories from --repo (or BITBUCKET_REPO_FULL_NAME)")]
    AllowCheckedWithoutRepo,
    #[error("--audit-log {path}: {reason}")]
    AuditLog { path: String, reason: String },
    #[error(transparent)]
    Consume(#[from] crate::credential::ConsumeError),
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
            Error::BrokerSetup(_) if cfg!(windows) => {
                "bbinject needs a named pipe and a job object of its own: run it again, with -vv \
                 if it fails the same way"
                    .into()
            }
            Error::BrokerSetup(_) => {
                "bbinject needs a private directory for its socket: check that $XDG_RUNTIME_DIR or \
                 $TMPDIR is writable and its path is short"
                    .into()
            }
            Error::GitConfigCount(_) => "unset GIT_CONFIG_COUNT or fix the value".into(),
            Error::Manual { .. } => "give a directory you can write to".into(),
            Error::AllowRepo(_) => "give WORKSPACE/SLUG or WORKSPACE/* for each --allow-repo".into(),
            Error::AllowCheckedWithoutRepo => "add --repo WORKSPACE/SLUG for each repository the build may touch".into(),
            Error::Consume(_) => {
                "consume only files the run was given in a directory of its own (Jenkins \
                 withCredentials, TeamCity temporary files); drop --consume-secret-files for a \
                 read-only mount"
                    .into()
            }
            Error::AuditLog { .. } => {
                "give a path in a writable directory (with export, not `-`: its broker has no stderr)".into()
            }
        }
    }

    /// Everything that stops a run before a child starts is something to fix
    /// in the set-up: exit 2, as `check` does.
    pub fn exit_code(&self) -> Exit {
        Exit::Usage
    }

    /// The stable problem code this error has in a JSON report.
    pub fn code(&self) -> ProblemCode {
        ProblemCode::Configuration
    }
}

/// A command line clap rejected: clap's own message (it names the argument),
/// a hint where we know the usual mistake, and for `check --format json` the
/// documented JSON report, so a CI job archiving stdout gets an object too.
pub fn usage(error: &clap::Error, args: &[std::ffi::OsString]) -> Exit {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = error.print();
        return Exit::Success;
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
            ProblemCode::Configuration,
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
    Exit::Usage
}

/// Writes a report (check's, scrub's) to stdout through the redactor. A
/// reader that stopped early (`| head -1`, a broken pipe) is not an error of
/// ours; any other failure (a full disk) is, so the report is never lost
/// without a word: the caller prints it and exits 2.
pub fn write_report(text: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    let mut bytes = crate::redact::redact_own(text.as_bytes()).into_owned();
    if !text.is_empty() && !text.ends_with('\n') {
        bytes.push(b'\n');
    }
    match out.write_all(&bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(format!(
            "cannot write the report to stdout: {}",
            crate::fsutil::io_reason(&e)
        )),
    }
}

/// Prints an error line and, when there is one, its hint: the format every
/// error of every command has (`bbinject: error: …` then `hint: …`).
pub fn print_error(message: &str, hint: Option<&str>) {
    crate::redact::eprint_line(&format!("bbinject: error: {message}"));
    if let Some(hint) = hint {
        crate::redact::eprint_line(&format!("hint: {hint}"));
    }
}

/// Prints a warning and its hint.
pub fn print_warning(message: &str, hint: &str) {
    crate::redact::eprint_line(&format!("bbinject: warning: {message}"));
    crate::redact::eprint_line(&format!("hint: {hint}"));
}

/// Prints something the user should know that is not an error.
pub fn print_note(message: &str) {
    crate::redact::eprint_line(&format!("bbinject: note: {message}"));
}

/// Prints `error` the one way errors are printed: a line, then a hint, both
/// through the redactor.
pub fn print(error: &Error) {
    print_error(&error.to_string(), Some(&error.hint()));
}

/// What resolution noticed about the credentials (file permissions, a
/// username where the email belongs…), for runs without a preflight report.
pub fn print_credential_warnings(set: &crate::credential::CredentialSet) {
    let text: String = set
        .credentials()
        .flat_map(|c| &c.warnings)
        .map(|w| {
            let problem = crate::bitbucket::Problem::warning(w.code, &w.message, &w.hint);
            format!("bbinject: {}", problem.render())
        })
        .collect();
    let _ = std::io::stderr()
        .lock()
        .write_all(&crate::redact::redact_own(text.as_bytes()));
}

/// Prints a preflight report's problems on stderr (exec and export; `check`
/// prints its report on stdout).
pub fn print_problems(report: &crate::bitbucket::Report) {
    let text: String = report
        .problems
        .iter()
        .map(|p| format!("bbinject: preflight {}", p.render()))
        .collect();
    let _ = std::io::stderr()
        .lock()
        .write_all(&crate::redact::redact_own(text.as_bytes()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_read_without_the_os_error_number() {
        let e = Error::BrokerSetup(std::io::Error::from_raw_os_error(30));
        let text = e.to_string();
        assert!(!text.contains("os error"), "{text}");
        // Error 30 is EROFS on Unix (Windows: ERROR_READ_FAULT).
        if cfg!(unix) {
            assert_eq!(text, "cannot set up the broker: Read-only file system");
        }
    }

    #[test]
    fn configuration_errors_exit_2() {
        let e = Error::Resolve(ResolveError::NoCredential);
        assert_eq!(e.exit_code(), Exit::Usage);
        assert!(e.hint().contains("BITBUCKET_API_TOKEN"));
    }
}
