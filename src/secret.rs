//! The one secret type of the crate.
//!
//! A [`Secret`] owns a credential value from the moment it is read until it is
//! dropped (then zeroized). It has no `Display`, its `Debug` prints
//! `[REDACTED]`, it is never `Serialize`, and the only way to see the value is
//! [`Secret::expose`], called at the single line that must send it somewhere.
//! Nothing in this module may log, format or copy the value into a `String`
//! that outlives the call.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::{ExposeSecret, SecretBox};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

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
        let digest = Sha256::digest(self.expose().as_bytes());
        let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }

    /// Constant-time comparison against bytes presented by a peer.
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        self.expose().as_bytes().ct_eq(other).into()
    }

    pub fn starts_with(&self, prefix: &str) -> bool {
        self.expose().starts_with(prefix)
    }

    /// The forms in which this secret could show up in text we print: raw,
    /// percent-encoded, JSON-escaped, base64 alone and base64 of `user:secret` for
    /// each username given. Used to scrub text that came from outside (a server's
    /// error message) before it reaches a log.
    pub fn printable_forms(&self, usernames: &[&str]) -> Vec<Zeroizing<String>> {
        let raw = self.expose();
        let mut forms = vec![
            Zeroizing::new(raw.to_owned()),
            Zeroizing::new(url::form_urlencoded::byte_serialize(raw.as_bytes()).collect()),
            Zeroizing::new(percent_encode_all_reserved(raw)),
            Zeroizing::new(BASE64.encode(raw.as_bytes())),
        ];
        if let Ok(json) = serde_json::to_string(raw) {
            forms.push(Zeroizing::new(json.trim_matches('"').to_owned()));
        }
        for user in usernames {
            let pair = Zeroizing::new(format!("{user}:{raw}"));
            forms.push(Zeroizing::new(BASE64.encode(pair.as_bytes())));
        }
        forms.retain(|f| !f.is_empty());
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        forms.dedup();
        forms
    }

    /// Replaces every printable form of the secret in `text` with `****`.
    pub fn scrub(&self, text: &str, usernames: &[&str]) -> String {
        let mut out = text.to_owned();
        for form in self.printable_forms(usernames) {
            if out.contains(form.as_str()) {
                out = out.replace(form.as_str(), "****");
            }
        }
        out
    }
}

/// RFC 3986 percent-encoding of everything but unreserved characters, the way
/// git and most HTTP clients encode userinfo.
fn percent_encode_all_reserved(raw: &str) -> String {
    const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(raw, UNRESERVED).to_string()
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
    fn constant_time_eq_matches_only_the_exact_value() {
        let secret = Secret::new(FAKE.to_owned());
        assert!(secret.ct_eq(FAKE.as_bytes()));
        assert!(!secret.ct_eq(b"FAKE"));
        assert!(!secret.ct_eq(b""));
    }

    #[test]
    fn scrub_removes_raw_encoded_and_base64_forms() {
        let secret = Secret::new(FAKE.to_owned());
        let basic = BASE64.encode(format!("alice:{FAKE}"));
        let text = format!(
            "raw {FAKE} pct {} b64 {} basic {basic}",
            percent_encode_all_reserved(FAKE),
            BASE64.encode(FAKE)
        );
        let scrubbed = secret.scrub(&text, &["alice"]);
        assert!(!scrubbed.contains("FAKE"), "{scrubbed}");
        assert!(!scrubbed.contains(&basic), "{scrubbed}");
        assert!(!scrubbed.contains(&BASE64.encode(FAKE)), "{scrubbed}");
        assert_eq!(scrubbed.matches("****").count(), 4, "{scrubbed}");
    }
}
