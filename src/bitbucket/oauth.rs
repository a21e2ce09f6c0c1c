//! OAuth client-credentials tokens: what the token endpoint gave (the bearer
//! token and its lifetime) and a [`TokenMinter`] that asks for a new one, for
//! the broker to renew a token before it expires (ARCHITECTURE.md §4).
//!
//! Bitbucket's client-credentials grant returns no refresh token (since May
//! 2026): renewing means exchanging the client id and secret again. This
//! module never keeps a token itself and never logs one; a failure is told by
//! its class (client rejected, server error, unreachable), never with the body.

use std::time::{Duration, SystemTime};

use super::api;
use super::endpoint::Endpoint;
use super::http::{self, HttpSettings};
use crate::secret::Secret;

/// A bearer token from the token endpoint.
pub struct Bearer {
    pub token: Secret,
    /// `expires_in` of the reply (Bitbucket: 7200 s), if it said.
    pub lifetime: Option<Duration>,
    /// When the reply came, to compute its expiry.
    pub minted_at: SystemTime,
}

impl Bearer {
    /// When it expires, if the endpoint said.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.lifetime.and_then(|l| self.minted_at.checked_add(l))
    }
}

/// Why a renewal failed, by class: the one-line refusal git's user sees.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("the token endpoint {host} rejected the OAuth client (HTTP {status})")]
    Rejected { host: String, status: u16 },
    #[error("the token endpoint {host} failed (HTTP {status})")]
    Server { host: String, status: u16 },
    #[error("the token endpoint {host} is unreachable ({reason})")]
    Unreachable { host: String, reason: String },
    #[error("the token endpoint {host} answered without an access_token")]
    NoToken { host: String },
    #[error("the token endpoint {host} answered with {what}")]
    Unreadable { host: String, what: &'static str },
    #[error("the token endpoint {host} answered with an access_token holding {what}; refused")]
    BadToken { host: String, what: &'static str },
    #[error("cannot set up the HTTP client for the token endpoint: {0}")]
    Client(String),
}

/// Exchanges a client id and secret for bearer tokens, as often as asked.
pub struct TokenMinter {
    settings: HttpSettings,
    /// Built at the first renewal: most builds end before their token does.
    client: tokio::sync::OnceCell<reqwest::Client>,
    url: Endpoint,
    client_id: String,
    client_secret: Secret,
}

impl TokenMinter {
    pub fn new(
        settings: HttpSettings,
        url: Endpoint,
        client_id: String,
        client_secret: Secret,
    ) -> Self {
        Self {
            settings,
            client: tokio::sync::OnceCell::new(),
            url,
            client_id,
            client_secret,
        }
    }

    pub async fn mint(&self) -> Result<Bearer, MintError> {
        let host = self.url.host().to_owned();
        let client = self
            .client
            .get_or_try_init(|| async { http::build_client(&self.settings) })
            .await
            .map_err(|e| MintError::Client(e.to_string()))?;
        let reply = api::exchange(
            &self.settings,
            client,
            &self.url,
            &self.client_id,
            &self.client_secret,
        )
        .await;
        match reply {
            Ok(mut reply) if reply.status == 200 => {
                api::take_access_token(&mut reply).map_err(|problem| match problem {
                    api::TokenReplyProblem::Missing => MintError::NoToken { host },
                    api::TokenReplyProblem::Unreadable(what) => {
                        MintError::Unreadable { host, what }
                    }
                    api::TokenReplyProblem::Unusable(what) => MintError::BadToken { host, what },
                })
            }
            Ok(reply) if matches!(reply.status, 400 | 401 | 403) => Err(MintError::Rejected {
                host,
                status: reply.status,
            }),
            Ok(reply) => Err(MintError::Server {
                host,
                status: reply.status,
            }),
            Err(e) => Err(MintError::Unreachable {
                host,
                reason: e.detail().to_owned(),
            }),
        }
    }
}

/// When to renew a token of `lifetime`: 5 minutes before it expires, or a
/// tenth of its lifetime for tokens shorter than 50 minutes.
pub fn renewal_margin(lifetime: Duration) -> Duration {
    const MARGIN: Duration = Duration::from_secs(5 * 60);
    MARGIN.min(lifetime / 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_five_minutes_or_a_tenth_of_a_short_lifetime() {
        assert_eq!(
            renewal_margin(Duration::from_secs(7200)),
            Duration::from_secs(300)
        );
        assert_eq!(
            renewal_margin(Duration::from_secs(3000)),
            Duration::from_secs(300)
        );
        assert_eq!(
            renewal_margin(Duration::from_secs(600)),
            Duration::from_secs(60)
        );
        assert_eq!(
            renewal_margin(Duration::from_secs(4)),
            Duration::from_millis(400)
        );
    }
}
