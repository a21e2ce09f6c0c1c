//! The stable codes a run ends with: the process exit status ([`Exit`])
//! and the problem codes of a preflight report ([`ProblemCode`]), with the
//! one exhaustive mapping between them. Their spellings are a public
//! interface (README "Exit codes" and "JSON output"): never renamed once
//! released. This module owns no text for people and depends on nothing else
//! in the crate.

use serde::Serialize;

/// What `bbinject` exits with. `check` and a failing preflight use 2–5;
/// `exec` otherwise passes the child's status through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
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
    /// `exec` on Windows: a child's exit code beyond 0–255 (an NTSTATUS such
    /// as `0xC000013A`), passed through whole by `main`.
    Status(i32),
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Found => 1,
            Exit::Usage => 2,
            Exit::CredentialRejected => 3,
            Exit::NotAllowed => 4,
            Exit::Unreachable => 5,
            Exit::CannotExecute => 126,
            Exit::CommandNotFound => 127,
            Exit::Child(code) => code,
            // Where a process status is one byte, its low byte.
            Exit::Status(code) => code.to_le_bytes()[0],
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(code: Exit) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

/// Every problem a preflight or credential resolution can report, serialized
/// as its stable kebab-case code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemCode {
    Configuration,
    NoCredentialForRepository,
    AppPasswordRemoved,
    CredentialRejected,
    GitCredentialRejected,
    GitUsernameIsEmail,
    TokenExpired,
    OauthExchangeFailed,
    AuthenticationNotProven,
    MissingScope,
    AuthMechanismNotAllowed,
    RepositoryNotFound,
    WriteNotAllowed,
    LfsUnavailable,
    Forbidden,
    RateLimited,
    BitbucketUnavailable,
    Unreachable,
    Timeout,
    TlsUntrusted,
    TlsNameMismatch,
    ProxyError,
    UnexpectedResponse,
    IdentityUnavailable,
    NotVerified,
    RestEmailMissing,
    LooksLikeAppPassword,
    LooksLikeApiToken,
    LooksLikeAccessToken,
    SecretLooksLikeLabel,
    SecretFilePermissions,
    AppPasswordDeprecated,
    UsernameIgnored,
    SshSubmoduleUrl,
    AllowRepoNotChecked,
}

impl ProblemCode {
    /// Every code, for tables and tests.
    pub const ALL: [ProblemCode; 35] = [
        ProblemCode::Configuration,
        ProblemCode::NoCredentialForRepository,
        ProblemCode::AppPasswordRemoved,
        ProblemCode::CredentialRejected,
        ProblemCode::GitCredentialRejected,
        ProblemCode::GitUsernameIsEmail,
        ProblemCode::TokenExpired,
        ProblemCode::OauthExchangeFailed,
        ProblemCode::AuthenticationNotProven,
        ProblemCode::MissingScope,
        ProblemCode::AuthMechanismNotAllowed,
        ProblemCode::RepositoryNotFound,
        ProblemCode::WriteNotAllowed,
        ProblemCode::LfsUnavailable,
        ProblemCode::Forbidden,
        ProblemCode::RateLimited,
        ProblemCode::BitbucketUnavailable,
        ProblemCode::Unreachable,
        ProblemCode::Timeout,
        ProblemCode::TlsUntrusted,
        ProblemCode::TlsNameMismatch,
        ProblemCode::ProxyError,
        ProblemCode::UnexpectedResponse,
        ProblemCode::IdentityUnavailable,
        ProblemCode::NotVerified,
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

    pub fn as_str(self) -> &'static str {
        match self {
            ProblemCode::Configuration => "configuration",
            ProblemCode::NoCredentialForRepository => "no-credential-for-repository",
            ProblemCode::AppPasswordRemoved => "app-password-removed",
            ProblemCode::CredentialRejected => "credential-rejected",
            ProblemCode::GitCredentialRejected => "git-credential-rejected",
            ProblemCode::GitUsernameIsEmail => "git-username-is-email",
            ProblemCode::TokenExpired => "token-expired",
            ProblemCode::OauthExchangeFailed => "oauth-exchange-failed",
            ProblemCode::AuthenticationNotProven => "authentication-not-proven",
            ProblemCode::MissingScope => "missing-scope",
            ProblemCode::AuthMechanismNotAllowed => "auth-mechanism-not-allowed",
            ProblemCode::RepositoryNotFound => "repository-not-found",
            ProblemCode::WriteNotAllowed => "write-not-allowed",
            ProblemCode::LfsUnavailable => "lfs-unavailable",
            ProblemCode::Forbidden => "forbidden",
            ProblemCode::RateLimited => "rate-limited",
            ProblemCode::BitbucketUnavailable => "bitbucket-unavailable",
            ProblemCode::Unreachable => "unreachable",
            ProblemCode::Timeout => "timeout",
            ProblemCode::TlsUntrusted => "tls-untrusted",
            ProblemCode::TlsNameMismatch => "tls-name-mismatch",
            ProblemCode::ProxyError => "proxy-error",
            ProblemCode::UnexpectedResponse => "unexpected-response",
            ProblemCode::IdentityUnavailable => "identity-unavailable",
            ProblemCode::NotVerified => "not-verified",
            ProblemCode::RestEmailMissing => "rest-email-missing",
            ProblemCode::LooksLikeAppPassword => "looks-like-app-password",
            ProblemCode::LooksLikeApiToken => "looks-like-api-token",
            ProblemCode::LooksLikeAccessToken => "looks-like-access-token",
            ProblemCode::SecretLooksLikeLabel => "secret-looks-like-label",
            ProblemCode::SecretFilePermissions => "secret-file-permissions",
            ProblemCode::AppPasswordDeprecated => "app-password-deprecated",
            ProblemCode::UsernameIgnored => "username-ignored",
            ProblemCode::SshSubmoduleUrl => "ssh-submodule-url",
            ProblemCode::AllowRepoNotChecked => "allow-repo-not-checked",
        }
    }

    /// The exit code this problem implies as an error; `None` for codes that
    /// are only ever warnings.
    pub fn exit_code(self) -> Option<Exit> {
        match self {
            ProblemCode::Configuration => Some(Exit::Usage),
            ProblemCode::NoCredentialForRepository => Some(Exit::Usage),
            ProblemCode::AppPasswordRemoved => Some(Exit::CredentialRejected),
            ProblemCode::CredentialRejected => Some(Exit::CredentialRejected),
            ProblemCode::GitCredentialRejected => Some(Exit::CredentialRejected),
            ProblemCode::GitUsernameIsEmail => Some(Exit::CredentialRejected),
            ProblemCode::TokenExpired => Some(Exit::CredentialRejected),
            ProblemCode::OauthExchangeFailed => Some(Exit::CredentialRejected),
            ProblemCode::AuthenticationNotProven => Some(Exit::CredentialRejected),
            ProblemCode::MissingScope => Some(Exit::NotAllowed),
            ProblemCode::AuthMechanismNotAllowed => Some(Exit::NotAllowed),
            ProblemCode::RepositoryNotFound => Some(Exit::NotAllowed),
            ProblemCode::WriteNotAllowed => Some(Exit::NotAllowed),
            ProblemCode::LfsUnavailable => Some(Exit::NotAllowed),
            ProblemCode::Forbidden => Some(Exit::NotAllowed),
            ProblemCode::RateLimited => Some(Exit::Unreachable),
            ProblemCode::BitbucketUnavailable => Some(Exit::Unreachable),
            ProblemCode::Unreachable => Some(Exit::Unreachable),
            ProblemCode::Timeout => Some(Exit::Unreachable),
            ProblemCode::TlsUntrusted => Some(Exit::Unreachable),
            ProblemCode::TlsNameMismatch => Some(Exit::Unreachable),
            ProblemCode::ProxyError => Some(Exit::Unreachable),
            ProblemCode::UnexpectedResponse => Some(Exit::Unreachable),
            ProblemCode::IdentityUnavailable => None,
            ProblemCode::NotVerified => None,
            ProblemCode::RestEmailMissing => None,
            ProblemCode::LooksLikeAppPassword => None,
            ProblemCode::LooksLikeApiToken => None,
            ProblemCode::LooksLikeAccessToken => None,
            ProblemCode::SecretLooksLikeLabel => None,
            ProblemCode::SecretFilePermissions => None,
            ProblemCode::AppPasswordDeprecated => None,
            ProblemCode::UsernameIgnored => None,
            ProblemCode::SshSubmoduleUrl => None,
            ProblemCode::AllowRepoNotChecked => None,
        }
    }

    /// Codes that describe the credential itself (it was rejected), not one
    /// repository: reported once per credential however many repositories hit them.
    pub fn is_about_the_credential(self) -> bool {
        self.exit_code() == Some(Exit::CredentialRejected)
            && self != ProblemCode::AuthenticationNotProven
    }
}

impl std::fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialized_codes_are_the_documented_strings() {
        for code in ProblemCode::ALL {
            let json = serde_json::to_string(&code).expect("serialize");
            assert_eq!(json, format!("\"{}\"", code.as_str()), "{code:?}");
        }
        let mut seen = std::collections::HashSet::new();
        assert!(ProblemCode::ALL.iter().all(|c| seen.insert(c.as_str())));
    }

    #[test]
    fn exit_codes_are_the_documented_numbers() {
        let table = [
            (Exit::Success, 0),
            (Exit::Found, 1),
            (Exit::Usage, 2),
            (Exit::CredentialRejected, 3),
            (Exit::NotAllowed, 4),
            (Exit::Unreachable, 5),
            (Exit::CannotExecute, 126),
            (Exit::CommandNotFound, 127),
            (Exit::Child(0), 0),
            (Exit::Child(7), 7),
            (Exit::Child(143), 143),
            (Exit::Child(255), 255),
        ];
        for (code, number) in table {
            assert_eq!(code.code(), number, "{code:?}");
        }
    }
}
