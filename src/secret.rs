//! The one secret type of the crate.
//!
//! A [`Secret`] owns a credential value from the moment it is read until it is
//! dropped (then zeroized). It has no `Display`, its `Debug` prints
//! `[REDACTED]`, it is never `Serialize`, and the only way to see the value is
//! [`Secret::expose`], called at the single line that must send it somewhere.
//! Nothing in this module may log, format or copy the value into a `String`
//! that outlives the call.

use std::fmt;

use secrecy::{ExposeSecret, SecretBox};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A credential value: an API token, access token, app password or OAuth secret.
pub struct Secret(SecretBox<String>);

impl Secret {
    /// Takes ownership of `value` without copying it (the `String` buffer is moved,
    /// and zeroized over its whole capacity on drop).
    pub fn new(value: String) -> Self {
        Self(SecretBox::new(Box::new(value)))
    }

    /// The value itself. Call it only where the value leaves the process on purpose
    /// (an `Authorization` header, the broker's answer).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn len(&self) -> usize {
        self.expose().len()
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    /// A short, stable, non-reversible name for the value, e.g. `sha256:1f2e3d4c5b6a`,
    /// so two runs can be compared in logs without printing the secret.
    pub fn fingerprint(&self) -> String {
        format!("sha256:{}", short_digest(self.expose()))
    }

    /// Constant-time comparison against bytes presented by a peer.
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        self.expose().as_bytes().ct_eq(other).into()
    }

    pub fn starts_with(&self, prefix: &str) -> bool {
        self.expose().starts_with(prefix)
    }
}

/// The first 6 bytes of `value`'s SHA-256, in hex: the body of a fingerprint.
fn short_digest(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Prefixes of credentials that turn up where a user name belongs (the
/// GitHub habit of `https://TOKEN@host/…`): Atlassian's, and the common ones
/// of other forges and clouds a build may also hold.
const TOKEN_PREFIXES: &[&str] = &[
    "ATBB",
    "ATATT",
    "ATCTT",
    "ghp_",
    "gho_",
    "ghs_",
    "ghu_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "AKIA",
    "npm_",
];

/// A user name at least this long is treated as a credential: Bitbucket user
/// names are at most 30 characters, its tokens and app passwords longer.
const TOKEN_LIKE_LEN: usize = 32;

/// Whether `value`, found where a user name belongs, is probably a secret.
pub fn looks_like_a_token(value: &str) -> bool {
    value.len() >= TOKEN_LIKE_LEN || TOKEN_PREFIXES.iter().any(|p| value.starts_with(p))
}

/// A user name as it may be shown or recorded: itself, or — when it looks
/// like a credential — `token-shaped-user-sha256:…`, its fingerprint.
pub fn shown_user(value: &str) -> String {
    if looks_like_a_token(value) {
        format!("token-shaped-user-sha256:{}", short_digest(value))
    } else {
        value.to_owned()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAKE: &str = "FAKE-not-a-real-token/with+plus=";

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new(FAKE.to_owned());
        let shown = format!("{secret:?} {:#?}", secret);
        assert!(!shown.contains("FAKE"), "{shown}");
        assert!(shown.contains("[REDACTED]"));
    }

    #[test]
    fn fingerprint_is_short_stable_and_not_the_value() {
        let a = Secret::new(FAKE.to_owned());
        let b = Secret::new(FAKE.to_owned());
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), "sha256:".len() + 12);
        assert!(!a.fingerprint().contains("FAKE"));
        assert_ne!(
            a.fingerprint(),
            Secret::new("other".to_owned()).fingerprint()
        );
    }

    #[test]
    fn user_names_that_look_like_tokens_are_shown_as_fingerprints() {
        let token = format!("ATCTT3x{}", "A".repeat(185));
        let shown = shown_user(&token);
        assert!(shown.starts_with("token-shaped-user-sha256:"), "{shown}");
        assert!(!shown.contains("ATCTT") && shown.len() < 40);
        assert_eq!(shown_user("ghp_short"), shown_user("ghp_short"));
        assert!(shown_user("ghp_short").starts_with("token-shaped"));
        for name in [
            "x-token-auth",
            "x-bitbucket-api-token-auth",
            "jdoe",
            "alice",
        ] {
            assert_eq!(shown_user(name), name);
        }
    }

    #[test]
    fn constant_time_eq_matches_only_the_exact_value() {
        let secret = Secret::new(FAKE.to_owned());
        assert!(secret.ct_eq(FAKE.as_bytes()));
        assert!(!secret.ct_eq(b"FAKE"));
        assert!(!secret.ct_eq(b""));
    }
}
