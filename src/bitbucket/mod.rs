//! Everything that talks to Bitbucket Cloud: the HTTP client, the REST API
//! probe, the git `info/refs` probe and the preflight report built from them
//! (ARCHITECTURE.md §3).
//!
//! Requests carry credentials only in `Authorization` headers marked
//! sensitive, never in URLs. Text that comes back from a server is scrubbed of
//! every printable form of the secret before it can reach a report or a log.

mod api;
mod diagnosis;
mod endpoint;
mod git_probe;
mod http;
mod oauth;
mod preflight;
mod report;

pub use endpoint::{
    Endpoint, EndpointError, Endpoints, check_host_only as endpoint_check_host_only,
    is_loopback_host,
};

/// The built-in endpoint URLs (Bitbucket Cloud).
pub mod endpoint_defaults {
    pub const API: &str = super::endpoint::DEFAULT_API_URL;
    pub const GIT: &str = super::endpoint::DEFAULT_GIT_URL;
    pub const TOKEN: &str = super::endpoint::DEFAULT_TOKEN_URL;
}
pub use http::{HttpError, HttpSettings, PROXY_VARIABLES};
pub use oauth::{Bearer, MintError, TokenMinter, renewal_margin};
pub use preflight::Preflight;
pub use report::{
    CredentialSummary, Identity, Problem, ProblemCode, RepoResult, Report, Severity, Verdict,
};

/// What a build needs to do with a repository.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Deserialize,
    serde::Serialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Need {
    /// clone and fetch (`git-upload-pack`)
    #[default]
    Read,
    /// push as well (`git-receive-pack`)
    Write,
}

impl Need {
    pub fn as_str(self) -> &'static str {
        match self {
            Need::Read => "read",
            Need::Write => "write",
        }
    }
}
