//! The git probe: the first request git itself makes for a clone or a push,
//! `GET {git-url}/{workspace}/{slug}.git/info/refs?service=…`, with the
//! username and password git will be given. It catches what the REST API
//! cannot: the email used as git username, a missing repository scope. It
//! never fetches more than the advertisement and never logs what it sent.

use super::api::Auth;
use super::endpoint::Endpoint;
use super::http::{self, HttpSettings, Reply, TransportError};
use crate::credential::RepoRef;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    UploadPack,
    ReceivePack,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Service::UploadPack => "git-upload-pack",
            Service::ReceivePack => "git-receive-pack",
        }
    }
}

pub fn info_refs_url(git: &Endpoint, repo: &RepoRef, service: Service) -> String {
    git.join(&format!(
        "{}/{}.git/info/refs?service={}",
        repo.workspace,
        repo.slug,
        service.as_str()
    ))
}

pub async fn info_refs(
    settings: &HttpSettings,
    client: &reqwest::Client,
    git: &Endpoint,
    repo: &RepoRef,
    service: Service,
    auth: &Auth<'_>,
) -> Result<Reply, TransportError> {
    let url = info_refs_url(git, repo, service);
    http::send(settings, || {
        auth.apply(client.get(&url).header(
            "user-agent",
            concat!("git/2 (bbinject/", env!("CARGO_PKG_VERSION"), ")"),
        ))
    })
    .await
}

/// The Git LFS probe: an empty download batch,
/// `POST {git-url}/{workspace}/{slug}.git/info/lfs/objects/batch`, with the
/// credential git-lfs will be given (it asks git's helpers too).
pub async fn lfs_batch(
    settings: &HttpSettings,
    client: &reqwest::Client,
    git: &Endpoint,
    repo: &RepoRef,
    auth: &Auth<'_>,
) -> Result<Reply, TransportError> {
    let url = git.join(&format!(
        "{}/{}.git/info/lfs/objects/batch",
        repo.workspace, repo.slug
    ));
    http::send(settings, || {
        auth.apply(
            client
                .post(&url)
                .header("accept", "application/vnd.git-lfs+json")
                .header("content-type", "application/vnd.git-lfs+json")
                .header(
                    "user-agent",
                    concat!("git-lfs/3 (bbinject/", env!("CARGO_PKG_VERSION"), ")"),
                )
                .body(r#"{"operation":"download","transfers":["basic"],"objects":[]}"#),
        )
    })
    .await
}

/// A smart-HTTP server answers with `application/x-git-<service>-advertisement`;
/// anything else (an HTML login page) means the URL is not a git endpoint.
pub fn is_advertisement(reply: &Reply, service: Service) -> bool {
    reply.header("content-type").is_some_and(|ct| {
        ct.starts_with(&format!("application/x-{}-advertisement", service.as_str()))
    })
}
