//! Requests to the Bitbucket REST API and the OAuth token endpoint, and the
//! parsing of their bodies. No interpretation here: `diagnosis` decides what a
//! reply means. It never follows a redirect and never logs a header or body.

use serde::Deserialize;

use super::endpoint::Endpoint;
use super::http::{self, HttpSettings, Reply, TransportError};
use super::report::Identity;
use crate::credential::RepoRef;
use crate::secret::Secret;

/// How one request authenticates.
pub enum Auth<'a> {
    Basic { user: &'a str, password: &'a Secret },
    Bearer(&'a Secret),
}

impl Auth<'_> {
    /// reqwest marks both headers sensitive, so they never appear in its `Debug`.
    pub fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::Basic { user, password } => request.basic_auth(user, Some(password.expose())),
            Auth::Bearer(token) => request.bearer_auth(token.expose()),
        }
    }
}

pub async fn get(
    settings: &HttpSettings,
    client: &reqwest::Client,
    url: &str,
    auth: &Auth<'_>,
) -> Result<Reply, TransportError> {
    http::send(settings, || {
        auth.apply(client.get(url).header("accept", "application/json"))
    })
    .await
}

pub fn repository_url(api: &Endpoint, repo: &RepoRef) -> String {
    api.join(&format!("repositories/{}/{}", repo.workspace, repo.slug))
}

/// `POST` to the OAuth token endpoint with `grant_type=client_credentials`.
pub async fn exchange(
    settings: &HttpSettings,
    client: &reqwest::Client,
    token_url: &Endpoint,
    client_id: &str,
    client_secret: &Secret,
) -> Result<Reply, TransportError> {
    let url = token_url.to_string();
    http::send(settings, || {
        client
            .post(&url)
            .basic_auth(client_id, Some(client_secret.expose()))
            .form(&[("grant_type", "client_credentials")])
    })
    .await
}

/// The bearer token in a token endpoint reply, with its lifetime
/// (`expires_in`); the reply body is wiped.
pub fn take_access_token(reply: &mut Reply) -> Result<super::oauth::Bearer, TokenReplyProblem> {
    #[derive(Deserialize)]
    struct TokenReply {
        access_token: Option<String>,
        /// Seconds, as a number or a string of digits; anything else (a
        /// negative, a float, an absurd size) is a lifetime we do not know.
        expires_in: Option<serde_json::Value>,
    }
    let parsed = serde_json::from_slice::<TokenReply>(&reply.body);
    zeroize::Zeroize::zeroize(&mut reply.body);
    let parsed = parsed.map_err(|e| {
        if e.to_string().contains("duplicate field") {
            TokenReplyProblem::Unreadable("two access_token (or expires_in) fields")
        } else {
            TokenReplyProblem::Unreadable("a body that is not a JSON token reply")
        }
    })?;
    let access_token = parsed
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or(TokenReplyProblem::Missing)?;
    // Validated like any other secret: a line break or NUL would be stored and
    // break every later answer to git (and could inject a helper field).
    let token = Secret::new(access_token);
    if let Some(c) = token
        .expose()
        .chars()
        .find(|c| c.is_whitespace() || c.is_control())
    {
        return Err(TokenReplyProblem::Unusable(if matches!(c, '\n' | '\r') {
            "a line break"
        } else if c.is_control() {
            "a control character"
        } else {
            "whitespace"
        }));
    }
    Ok(super::oauth::Bearer {
        token,
        lifetime: parsed
            .expires_in
            .as_ref()
            .and_then(lifetime_secs)
            .map(std::time::Duration::from_secs),
        minted_at: std::time::SystemTime::now(),
    })
}

/// `expires_in` as seconds: a whole number, a string of digits, or a
/// non-negative float (rounded down); at most ten years. Anything else is an
/// unknown lifetime (the token is then renewed only when git reports it
/// rejected).
fn lifetime_secs(value: &serde_json::Value) -> Option<u64> {
    const MAX: u64 = 10 * 365 * 24 * 3600;
    let secs = match value {
        serde_json::Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0 && *f <= MAX as f64)
                .map(|f| f as u64)
        })?,
        serde_json::Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (secs <= MAX).then_some(secs)
}

/// Why a token endpoint's 200 gave no usable token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenReplyProblem {
    /// No `access_token` (or an empty one).
    Missing,
    /// Not a token reply we can read: this (never the body itself).
    Unreadable(&'static str),
    /// An `access_token` holding this (never shown itself).
    Unusable(&'static str),
}

/// `{"error": "invalid_client", "error_description": "…"}` from the token endpoint.
pub fn oauth_error(reply: &Reply) -> Option<String> {
    #[derive(Deserialize)]
    struct OauthError {
        error: String,
        error_description: Option<String>,
    }
    let e: OauthError = serde_json::from_slice(&reply.body).ok()?;
    Some(match e.error_description {
        Some(d) => format!("{}: {d}", e.error),
        None => e.error,
    })
}

/// The interesting parts of Bitbucket's `{"type":"error","error":{…}}` body.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ErrorBody {
    pub message: Option<String>,
    pub detail: Option<String>,
    pub required: Vec<String>,
    pub granted: Vec<String>,
}

pub fn error_body(body: &[u8]) -> ErrorBody {
    #[derive(Deserialize)]
    struct Envelope {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        message: Option<String>,
        detail: Option<serde_json::Value>,
    }
    let Ok(envelope) = serde_json::from_slice::<Envelope>(body) else {
        return ErrorBody::default();
    };
    let mut parsed = ErrorBody {
        message: envelope.error.message,
        ..ErrorBody::default()
    };
    let strings = |v: Option<&serde_json::Value>| -> Vec<String> {
        v.and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    match envelope.error.detail {
        Some(serde_json::Value::String(s)) => parsed.detail = Some(s),
        Some(serde_json::Value::Object(map)) => {
            parsed.required = strings(map.get("required"));
            parsed.granted = strings(map.get("granted"));
        }
        _ => {}
    }
    parsed
}

pub fn identity(body: &[u8]) -> Option<Identity> {
    #[derive(Deserialize)]
    struct User {
        username: Option<String>,
        display_name: Option<String>,
        account_id: Option<String>,
        uuid: Option<String>,
        nickname: Option<String>,
    }
    let u: User = serde_json::from_slice(body).ok()?;
    Some(Identity {
        username: u.username.or(u.nickname),
        display_name: u.display_name,
        account_id: u.account_id,
        uuid: u.uuid,
    })
}

pub fn is_private(body: &[u8]) -> Option<bool> {
    #[derive(Deserialize)]
    struct Repository {
        is_private: Option<bool>,
    }
    serde_json::from_slice::<Repository>(body).ok()?.is_private
}

/// `x-oauth-scopes: a, b c` as a list.
pub fn scopes(reply: &Reply) -> Option<Vec<String>> {
    let header = reply.header("x-oauth-scopes")?;
    Some(
        header
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::fixture;

    #[test]
    fn error_bodies_from_real_bitbucket_parse() {
        let scopes = error_body(&fixture("error-403-insufficient-scopes.json"));
        assert_eq!(scopes.required, ["account"]);
        assert_eq!(scopes.granted, ["team"]);
        let gone = error_body(&fixture("error-410-change-2770.json"));
        assert_eq!(
            gone.message.as_deref(),
            Some("CHANGE-2770 - Functionality has been deprecated")
        );
        assert_eq!(
            gone.detail.as_deref(),
            Some("Please read the changelog entry for more details.")
        );
        assert_eq!(
            error_body(&fixture("error-429-body.txt")),
            ErrorBody::default()
        );
    }

    #[test]
    fn user_and_repository_bodies_parse() {
        let id = identity(&fixture("user.json")).expect("user");
        assert!(id.display_name.is_some());
        assert_eq!(is_private(&fixture("repository.json")), Some(false));
    }

    #[test]
    fn token_reply_yields_the_token_and_is_wiped() {
        let mut reply = Reply {
            status: 200,
            headers: Default::default(),
            body: fixture("oauth-client-credentials-token.json"),
            attempts: 1,
        };
        let bearer = take_access_token(&mut reply).expect("token");
        assert_eq!(bearer.token.expose(), "REDACTED-ACCESS-TOKEN");
        assert_eq!(bearer.lifetime, Some(std::time::Duration::from_secs(7200)));
        assert!(reply.body.iter().all(|b| *b == 0));
        let error = Reply {
            body: fixture("oauth-token-error-invalid-grant.json"),
            ..reply
        };
        assert_eq!(
            oauth_error(&error).as_deref(),
            Some("invalid_grant: Unsupported grant type: None")
        );
    }

    #[test]
    fn a_minted_token_with_a_line_break_or_nul_is_refused_and_wiped() {
        let token = "ATCTT3xFAKE".to_owned() + &"t".repeat(181);
        for (injected, what) in [
            (format!("{token}\\nquit=1"), "a line break"),
            (format!("{token}\\r\\n"), "a line break"),
            (format!("{token}\\u0000x"), "a control character"),
            (format!("{token} x"), "whitespace"),
        ] {
            let mut reply = Reply {
                status: 200,
                headers: Default::default(),
                body: format!(r#"{{"access_token": "{injected}", "expires_in": 7200}}"#)
                    .into_bytes(),
                attempts: 1,
            };
            assert_eq!(
                take_access_token(&mut reply).err(),
                Some(TokenReplyProblem::Unusable(what)),
                "{injected:?}"
            );
            assert!(reply.body.iter().all(|b| *b == 0));
        }
        for (body, lifetime) in [
            (
                r#"{"access_token": "ATCTT3xFAKE-t", "expires_in": -1}"#,
                None,
            ),
            (
                r#"{"access_token": "ATCTT3xFAKE-t", "expires_in": 1e30}"#,
                None,
            ),
            (
                r#"{"access_token": "ATCTT3xFAKE-t", "expires_in": "7200"}"#,
                Some(7200),
            ),
            (
                r#"{"access_token": "ATCTT3xFAKE-t", "expires_in": 7200.5}"#,
                Some(7200),
            ),
            (
                r#"{"access_token": "ATCTT3xFAKE-t", "expires_in": null}"#,
                None,
            ),
        ] {
            let mut reply = Reply {
                status: 200,
                headers: Default::default(),
                body: body.as_bytes().to_vec(),
                attempts: 1,
            };
            let bearer = take_access_token(&mut reply).expect(body);
            assert_eq!(bearer.lifetime.map(|l| l.as_secs()), lifetime, "{body}");
        }
        let mut twice = Reply {
            status: 200,
            headers: Default::default(),
            body: br#"{"access_token": "ATCTT3xFAKE-a", "access_token": "ATCTT3xFAKE-b"}"#.to_vec(),
            attempts: 1,
        };
        assert_eq!(
            take_access_token(&mut twice).err(),
            Some(TokenReplyProblem::Unreadable(
                "two access_token (or expires_in) fields"
            ))
        );
        let mut empty = Reply {
            status: 200,
            headers: Default::default(),
            body: br#"{"access_token": ""}"#.to_vec(),
            attempts: 1,
        };
        assert_eq!(
            take_access_token(&mut empty).err(),
            Some(TokenReplyProblem::Missing)
        );
    }
}
