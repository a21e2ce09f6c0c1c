//! Keeps each vault entry's secret current while a build runs
//! (ARCHITECTURE.md §4, "Long builds"):
//!
//! - an OAuth consumer's bearer token is re-minted (client-credentials grant
//!   again: Bitbucket gives no refresh token) when it is within a margin of its
//!   expiry, or after git's `erase` said it was rejected; concurrent requests
//!   wait for the one exchange;
//! - a secret read from a file is read again when the file changes (device,
//!   inode, size, mtime or ctime: an atomic-rename rotation changes the inode),
//!   checked on each request, validated exactly as at start; an invalid new
//!   value keeps the last good one, with one warning.
//!
//! A renewed value's every printable form joins the redaction patterns
//! *before* it is handed to anyone. This module never decides who may have a
//! secret (that is the server's policy) and never logs a value.

use std::time::{Duration, SystemTime};

use tokio::sync::Mutex;

use crate::bitbucket::{TokenMinter, renewal_margin};
use crate::credential::{Kind, SecretFile};
use crate::secret::Secret;

/// How an entry's secret is renewed.
pub enum Renewal {
    /// From the environment or inline in a config: it never changes.
    Fixed,
    /// From a file: read again when it changes.
    File { file: SecretFile, kind: Kind },
    /// An OAuth consumer's bearer token: minted again before it expires.
    Mint(Box<TokenMinter>),
}

/// What a request is given.
pub struct Served {
    pub password: Secret,
    /// When it stops working (OAuth tokens), in seconds since the epoch, for
    /// git's `password_expiry_utc`.
    pub expiry_utc: Option<u64>,
}

/// Why nothing can be served.
#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    #[error("the OAuth consumer has no token")]
    NoToken,
    #[error("the OAuth token expired and a new one could not be minted: {0}")]
    Mint(#[from] crate::bitbucket::MintError),
    /// A renewal failed moments ago: its outcome is reused, not tried again
    /// by every request queued behind it.
    #[error("the OAuth token expired and a new one could not be minted: {0}")]
    MintFailedRecently(String),
}

/// The longest a renewal may take, retries included: well within the front
/// door's wait for an answer (`client::FRONT_DOOR_TIMEOUT`), so a token
/// endpoint that never answers costs a request a refusal or the still-valid
/// token, never a front door that gives up.
pub const RENEWAL_DEADLINE: Duration = Duration::from_secs(20);

/// After a failed renewal, requests within this long reuse its outcome.
const FAILURE_HOLD: Duration = Duration::from_secs(10);

/// A file's identity and version (`sys::FileStamp`), if it exists now.
fn stamp_of(file: &SecretFile) -> Option<crate::sys::FileStamp> {
    std::fs::metadata(&file.path)
        .ok()
        .map(|m| crate::sys::file_stamp(&m))
}

struct State {
    current: Option<Secret>,
    expires_at: Option<SystemTime>,
    lifetime: Option<Duration>,
    /// The file as last read (a rotation changes it).
    stamp: Option<crate::sys::FileStamp>,
    /// git said the current OAuth token was rejected: mint before serving.
    stale: bool,
    /// The last failed renewal: when, and why (reused for `FAILURE_HOLD`).
    failed: Option<(std::time::Instant, String)>,
    warned_invalid: bool,
    warned_rejected: bool,
}

/// One entry's secret, kept current.
pub struct Live {
    /// Held across a re-mint, so concurrent requests wait for its result
    /// instead of each exchanging (no stampede).
    state: Mutex<State>,
    renewal: Renewal,
    /// The credential's name, for log lines.
    name: String,
    /// The usernames its secret may be sent with, for the redaction forms.
    usernames: Vec<String>,
}

impl Live {
    /// `initial` is the value read at start (for OAuth: the token the preflight
    /// got, with its lifetime).
    pub fn new(
        name: String,
        usernames: Vec<String>,
        initial: Option<Secret>,
        bearer_lifetime: Option<(SystemTime, Duration)>,
        renewal: Renewal,
    ) -> Self {
        let stamp = match &renewal {
            Renewal::File { file, .. } => stamp_of(file),
            _ => None,
        };
        Self {
            state: Mutex::new(State {
                current: initial,
                expires_at: bearer_lifetime.and_then(|(at, l)| at.checked_add(l)),
                lifetime: bearer_lifetime.map(|(_, l)| l),
                stamp,
                stale: false,
                failed: None,
                warned_invalid: false,
                warned_rejected: false,
            }),
            renewal,
            name,
            usernames,
        }
    }

    /// Whether this entry's secret comes from a file that may be rotated.
    pub fn watches_a_file(&self) -> bool {
        matches!(self.renewal, Renewal::File { .. })
    }

    /// Between requests: reads a rotated secret file, so its new value is
    /// masked as soon as it exists (not only when git next asks).
    pub async fn refresh_file(&self) {
        if let Renewal::File { file, kind } = &self.renewal {
            let mut state = self.state.lock().await;
            self.reread_if_changed(&mut state, file, *kind);
        }
    }

    /// The secret to hand out now, renewed first if it must be.
    pub async fn serve(&self) -> Result<Served, RenewError> {
        let mut state = self.state.lock().await;
        match &self.renewal {
            Renewal::Fixed => {}
            Renewal::File { file, kind } => self.reread_if_changed(&mut state, file, *kind),
            Renewal::Mint(minter) => self.mint_if_due(&mut state, minter).await?,
        }
        let password = state.current.as_ref().ok_or(RenewError::NoToken)?;
        Ok(Served {
            password: Secret::new(password.expose().to_owned()),
            expiry_utc: state
                .expires_at
                .and_then(|at| at.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
        })
    }

    /// git's `erase`: the server rejected what we gave (`rejected` is the
    /// fingerprint of that password, when git sent it). An OAuth token that is
    /// still the current one is marked stale, so the next request mints a new
    /// one; a fixed secret is never dropped (one 401 must not end the build),
    /// only warned about once.
    pub async fn rejected(&self, rejected: Option<&str>, origin: &str) {
        let mut state = self.state.lock().await;
        let is_current = match (&state.current, rejected) {
            (Some(current), Some(fingerprint)) => current.fingerprint() == fingerprint,
            // Without a password git still said "rejected": assume ours.
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !is_current {
            return;
        }
        match &self.renewal {
            Renewal::Mint(_) => {
                state.stale = true;
                tracing::info!(
                    credential = %self.name,
                    "{origin} rejected the OAuth token; the next request mints a new one"
                );
            }
            Renewal::Fixed | Renewal::File { .. } => {
                if !state.warned_rejected {
                    state.warned_rejected = true;
                    tracing::warn!(
                        credential = %self.name,
                        "{origin} rejected credential `{}` (git erased it); it is still served: \
                         check that it is valid and may reach this repository (bbinject check --repo)",
                        self.name
                    );
                }
            }
        }
    }

    fn reread_if_changed(&self, state: &mut State, file: &SecretFile, kind: Kind) {
        let stamp = stamp_of(file);
        if stamp.is_none() || stamp == state.stamp {
            // Unchanged, or gone for a moment mid-rotation: keep serving.
            return;
        }
        state.stamp = stamp;
        match crate::credential::reread_secret(file, kind) {
            Ok(fresh) => {
                if state
                    .current
                    .as_ref()
                    .is_some_and(|c| c.expose() == fresh.expose())
                {
                    return;
                }
                self.publish(&fresh);
                tracing::info!(
                    credential = %self.name,
                    fingerprint = %fresh.fingerprint(),
                    "{} changed: serving its new value",
                    file.label
                );
                state.current = Some(fresh);
                state.warned_invalid = false;
            }
            Err(e) => {
                if !state.warned_invalid {
                    state.warned_invalid = true;
                    tracing::warn!(
                        credential = %self.name,
                        "{} changed, but {e}; still serving its last good value",
                        file.label
                    );
                }
            }
        }
    }

    async fn mint_if_due(&self, state: &mut State, minter: &TokenMinter) -> Result<(), RenewError> {
        let now = SystemTime::now();
        let due = match (state.expires_at, state.lifetime) {
            (Some(at), Some(lifetime)) => now
                .checked_add(renewal_margin(lifetime))
                .is_none_or(|soon| soon >= at),
            _ => false,
        };
        if !(due || state.stale || state.current.is_none()) {
            return Ok(());
        }
        // Still valid now (checked again after a failed exchange, which may
        // have taken long enough for it to expire).
        let still_valid = |state: &State| {
            !state.stale
                && state.current.is_some()
                && state.expires_at.is_none_or(|at| SystemTime::now() < at)
        };
        if let Some((when, why)) = &state.failed
            && when.elapsed() < FAILURE_HOLD
        {
            if still_valid(state) {
                return Ok(());
            }
            let why = why.clone();
            state.current = None;
            return Err(RenewError::MintFailedRecently(why));
        }
        match minter.mint().await {
            Ok(bearer) => {
                self.publish(&bearer.token);
                tracing::info!(
                    credential = %self.name,
                    lifetime_secs = bearer.lifetime.map(|l| l.as_secs()),
                    "minted a new OAuth token"
                );
                state.expires_at = bearer.expires_at();
                state.lifetime = bearer.lifetime;
                state.current = Some(bearer.token);
                state.stale = false;
                state.failed = None;
                Ok(())
            }
            Err(e) => {
                state.failed = Some((std::time::Instant::now(), e.to_string()));
                if still_valid(state) {
                    tracing::warn!(
                        credential = %self.name,
                        "{e}; serving the current OAuth token until it expires"
                    );
                    return Ok(());
                }
                // Never serve a token past its expiry, or one git reported rejected.
                state.current = None;
                Err(RenewError::Mint(e))
            }
        }
    }

    /// Masks every form of `fresh` in all output from now on.
    fn publish(&self, fresh: &Secret) {
        let usernames: Vec<&str> = self.usernames.iter().map(String::as_str).collect();
        if !crate::redact::add_secret(fresh, &usernames) {
            tracing::warn!(
                credential = %self.name,
                "the renewed secret is shorter than {} bytes and is not masked in output",
                crate::redact::MIN_SECRET_LEN
            );
        }
    }
}

/// Where an OAuth consumer's tokens are minted again: the token endpoint and
/// the HTTP settings of the run.
pub struct MintSettings {
    pub http: crate::bitbucket::HttpSettings,
    pub token_url: crate::bitbucket::Endpoint,
}

/// How to renew, as `exec` and `export` know it before a broker starts (and
/// as the hand-off carries it to a detached broker).
pub enum RenewalSpec {
    Fixed,
    File {
        file: SecretFile,
        kind: Kind,
    },
    Mint {
        http: crate::bitbucket::HttpSettings,
        url: crate::bitbucket::Endpoint,
        client_id: String,
        client_secret: Secret,
    },
}

/// An entry's secret before its broker starts: the value read at start (for
/// OAuth: the preflight's token and when it was minted, with its lifetime).
pub struct SecretSpec {
    pub initial: Option<Secret>,
    pub minted: Option<(SystemTime, Duration)>,
    pub renewal: RenewalSpec,
}

impl SecretSpec {
    pub fn fixed(secret: Option<Secret>) -> Self {
        Self {
            initial: secret,
            minted: None,
            renewal: RenewalSpec::Fixed,
        }
    }

    /// Makes the live secret (an OAuth consumer's HTTP client is built at its
    /// first renewal).
    pub fn start(self, name: String, usernames: Vec<String>) -> Live {
        let renewal = match self.renewal {
            RenewalSpec::Fixed => Renewal::Fixed,
            RenewalSpec::File { file, kind } => Renewal::File { file, kind },
            RenewalSpec::Mint {
                mut http,
                url,
                client_id,
                client_secret,
            } => {
                // A request waits for the renewal: it must end before the
                // front door stops waiting.
                http.deadline = http.deadline.min(RENEWAL_DEADLINE);
                Renewal::Mint(Box::new(TokenMinter::new(
                    http,
                    url,
                    client_id,
                    client_secret,
                )))
            }
        };
        Live::new(name, usernames, self.initial, self.minted, renewal)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::bitbucket::{Endpoint, HttpSettings};

    const ACCESS: Kind = Kind::AccessToken;

    fn file_live(path: &std::path::Path, initial: &str) -> Live {
        let file = SecretFile {
            path: path.to_path_buf(),
            label: "BITBUCKET_ACCESS_TOKEN_FILE=token".into(),
        };
        SecretSpec {
            initial: Some(Secret::new(initial.into())),
            minted: None,
            renewal: RenewalSpec::File { file, kind: ACCESS },
        }
        .start("env".into(), vec!["x-token-auth".into()])
    }

    /// Replaces `path` the way Kubernetes and Vault Agent do: a new file
    /// renamed over the old one (a new inode).
    fn rotate(path: &std::path::Path, content: &str) {
        let next = path.with_extension("next");
        std::fs::write(&next, content).expect("write");
        std::fs::rename(&next, path).expect("rename");
    }

    async fn served(live: &Live) -> String {
        live.serve()
            .await
            .expect("served")
            .password
            .expose()
            .to_owned()
    }

    #[tokio::test]
    async fn a_rotated_file_is_served_and_masked_and_a_bad_one_keeps_the_last_good_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "FAKE-rotation-token-A-000000\n").expect("write");
        let live = file_live(&path, "FAKE-rotation-token-A-000000");
        assert_eq!(served(&live).await, "FAKE-rotation-token-A-000000");

        rotate(&path, "FAKE-rotation-token-B-111111\n");
        assert_eq!(served(&live).await, "FAKE-rotation-token-B-111111");
        // Its forms joined the global patterns before it was handed out.
        let masked = crate::redact::redact_own(b"x FAKE-rotation-token-B-111111 y");
        assert_eq!(&*masked, b"x **** y");

        // An empty file, a short value, a missing file: the last good value stays.
        for bad in ["", "\n", "short"] {
            rotate(&path, bad);
            assert_eq!(
                served(&live).await,
                "FAKE-rotation-token-B-111111",
                "{bad:?}"
            );
        }
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(served(&live).await, "FAKE-rotation-token-B-111111");
        // A good value again is taken.
        rotate(&path, "FAKE-rotation-token-C-222222");
        assert_eq!(served(&live).await, "FAKE-rotation-token-C-222222");
    }

    #[tokio::test]
    async fn an_erase_never_drops_a_fixed_secret() {
        let live = SecretSpec::fixed(Some(Secret::new("FAKE-fixed-token-0000000".into())))
            .start("env".into(), vec![]);
        live.rejected(None, "https://bitbucket.org/acme/app").await;
        live.rejected(None, "https://bitbucket.org/acme/app").await;
        assert_eq!(served(&live).await, "FAKE-fixed-token-0000000");
    }

    /// A token endpoint that answers each exchange with a new token, counting.
    struct Endpoint_ {
        server: wiremock::MockServer,
        exchanges: Arc<AtomicU32>,
    }

    async fn token_endpoint(status: u16, expires_in: u64, delay: Duration) -> Endpoint_ {
        let server = wiremock::MockServer::start().await;
        let exchanges = Arc::new(AtomicU32::new(0));
        let counted = exchanges.clone();
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(move |_: &wiremock::Request| {
                let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
                wiremock::ResponseTemplate::new(status)
                    .set_delay(delay)
                    .set_body_json(serde_json::json!({
                        "access_token": format!("FAKE-minted-token-{n}-0000000000"),
                        "expires_in": expires_in,
                        "token_type": "bearer",
                    }))
            })
            .mount(&server)
            .await;
        Endpoint_ { server, exchanges }
    }

    fn minted_live(endpoint: &Endpoint_, minted_ago: Duration, lifetime: Duration) -> Live {
        minted_live_at(&endpoint.server.uri(), minted_ago, lifetime)
    }

    fn minted_live_at(url: &str, minted_ago: Duration, lifetime: Duration) -> Live {
        let _ = rustls::crypto::ring::default_provider().install_default();
        SecretSpec {
            initial: Some(Secret::new("FAKE-minted-token-0-0000000000".into())),
            minted: Some((SystemTime::now() - minted_ago, lifetime)),
            renewal: RenewalSpec::Mint {
                http: HttpSettings {
                    retries: 0,
                    ..HttpSettings::default()
                },
                url: Endpoint::parse("--token-url", url).expect("url"),
                client_id: "consumer".into(),
                client_secret: Secret::new("FAKE-client-secret-000000".into()),
            },
        }
        .start("oauth".into(), vec!["x-token-auth".into()])
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn twenty_requests_at_expiry_cause_one_exchange() {
        let endpoint = token_endpoint(200, 4, Duration::from_millis(200)).await;
        let live = Arc::new(minted_live(
            &endpoint,
            Duration::from_secs(10),
            Duration::from_secs(4),
        ));
        let asks: Vec<_> = (0..20)
            .map(|_| {
                let live = live.clone();
                tokio::spawn(async move { served(&live).await })
            })
            .collect();
        for ask in asks {
            assert_eq!(ask.await.expect("join"), "FAKE-minted-token-1-0000000000");
        }
        assert_eq!(endpoint.exchanges.load(Ordering::SeqCst), 1);
        // Fresh for 4 s: no exchange, and git is told when it expires.
        let again = live.serve().await.expect("served");
        assert_eq!(endpoint.exchanges.load(Ordering::SeqCst), 1);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("now")
            .as_secs();
        let expiry = again.expiry_utc.expect("expiry");
        assert!((now + 2..=now + 5).contains(&expiry), "{expiry} vs {now}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_erase_of_the_current_token_makes_the_next_request_mint() {
        let endpoint = token_endpoint(200, 7200, Duration::ZERO).await;
        let live = minted_live(&endpoint, Duration::ZERO, Duration::from_secs(7200));
        // An erase of some other password (an older token) changes nothing.
        let other = Secret::new("FAKE-some-other-token-000000".into()).fingerprint();
        live.rejected(Some(&other), "http://127.0.0.1/acme/app")
            .await;
        assert_eq!(served(&live).await, "FAKE-minted-token-0-0000000000");
        let current = Secret::new("FAKE-minted-token-0-0000000000".into()).fingerprint();
        live.rejected(Some(&current), "http://127.0.0.1/acme/app")
            .await;
        assert_eq!(served(&live).await, "FAKE-minted-token-1-0000000000");
        assert_eq!(endpoint.exchanges.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_renewal_ends_well_before_the_front_door_stops_waiting() {
        assert!(
            RENEWAL_DEADLINE + Duration::from_secs(5) <= super::super::client::FRONT_DOOR_TIMEOUT
        );
    }

    /// A token endpoint that never answers: the renewal gives up at its
    /// deadline, the still-valid token is served, and requests queued behind
    /// the failure reuse its outcome instead of each waiting out a renewal.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_silent_token_endpoint_costs_one_renewal_and_never_an_expired_token() {
        let endpoint = token_endpoint(200, 7200, Duration::from_secs(3600)).await;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let live_with = |minted_ago: Duration, lifetime: Duration| {
            Arc::new(
                SecretSpec {
                    initial: Some(Secret::new("FAKE-minted-token-0-0000000000".into())),
                    minted: Some((SystemTime::now() - minted_ago, lifetime)),
                    renewal: RenewalSpec::Mint {
                        http: HttpSettings {
                            retries: 3,
                            timeout: Duration::from_secs(60),
                            deadline: Duration::from_millis(600),
                            ..HttpSettings::default()
                        },
                        url: Endpoint::parse("--token-url", &endpoint.server.uri()).expect("url"),
                        client_id: "consumer".into(),
                        client_secret: Secret::new("FAKE-client-secret-000000".into()),
                    },
                }
                .start("oauth".into(), vec!["x-token-auth".into()]),
            )
        };
        // Due, not expired: five queued requests get the current token, after
        // one attempt.
        let due = live_with(Duration::from_secs(7100), Duration::from_secs(7200));
        let asks: Vec<_> = (0..5)
            .map(|_| {
                let live = due.clone();
                tokio::spawn(async move { served(&live).await })
            })
            .collect();
        for ask in asks {
            assert_eq!(ask.await.expect("join"), "FAKE-minted-token-0-0000000000");
        }
        assert_eq!(endpoint.exchanges.load(Ordering::SeqCst), 1);
        // A token that expires while the exchange hangs is not served after it.
        let expiring = live_with(Duration::from_millis(7_199_700), Duration::from_secs(7200));
        let error = expiring.serve().await.err().expect("refused").to_string();
        assert!(error.contains("could not be minted"), "{error}");
        // And the request right after reuses that failure: no second wait.
        let error = expiring.serve().await.err().expect("refused").to_string();
        assert!(error.contains("could not be minted"), "{error}");
        assert_eq!(endpoint.exchanges.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_failed_renewal_names_its_class_and_never_serves_an_expired_token() {
        for (status, expected) in [
            (401, "rejected the OAuth client (HTTP 401)"),
            (503, "failed (HTTP 503)"),
        ] {
            let endpoint = token_endpoint(status, 7200, Duration::ZERO).await;
            // Due (inside the margin) but not expired: the current token is kept.
            let due = minted_live(
                &endpoint,
                Duration::from_secs(7100),
                Duration::from_secs(7200),
            );
            assert_eq!(served(&due).await, "FAKE-minted-token-0-0000000000");
            // Expired: refused, with the class of failure.
            let expired = minted_live(
                &endpoint,
                Duration::from_secs(8000),
                Duration::from_secs(7200),
            );
            let error = expired.serve().await.err().expect("refused").to_string();
            assert!(error.contains(expected), "{status}: {error}");
            assert!(!error.contains("FAKE"), "{error}");
        }
        // A port nothing listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port");
        let unreachable = minted_live_at(
            &format!("http://{closed}"),
            Duration::from_secs(8000),
            Duration::from_secs(7200),
        );
        let error = unreachable
            .serve()
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(error.contains("is unreachable"), "{error}");
    }
}
