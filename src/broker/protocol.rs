//! The broker's wire format: `key=value` lines ended by an empty line, like
//! git's credential protocol, over a Unix socket. One request, one answer,
//! then the connection closes. Parsing is bounded and never panics: a peer is
//! untrusted until its capability checks out.

use std::collections::BTreeMap;

use crate::secret::Secret;

/// The most a request or an answer may be.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// Which front door asks, and for what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// askpass `Username for …` prompt: the username only.
    Username,
    /// askpass `Password for …` prompt, or a helper `get`: the password.
    Password,
    /// `bbinject export --revoke`: end the broker now.
    Revoke,
    /// A helper `erase`: the server rejected the credential git was given.
    Erase,
}

/// A request from a front door. `Debug` hides the capability.
pub struct Request {
    pub capability: Secret,
    pub protocol: String,
    pub host: String,
    pub path: Option<String>,
    pub username: Option<String>,
    pub want: Want,
    /// `helper` may override a URL username; `askpass` may not.
    pub from_helper: bool,
    /// With [`Want::Erase`]: the fingerprint of the password git says was
    /// rejected (never the password itself).
    pub rejected: Option<String>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("protocol", &self.protocol)
            .field("host", &self.host)
            .field("path", &self.path)
            .field("username", &self.username)
            .field("want", &self.want)
            .field("from_helper", &self.from_helper)
            .field("rejected", &self.rejected)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("message larger than {MAX_MESSAGE_BYTES} bytes")]
    TooLarge,
    #[error("message is not UTF-8")]
    NotUtf8,
    #[error("line without `=`")]
    NoEquals,
    #[error("missing `{0}`")]
    Missing(&'static str),
    #[error("bad value for `{0}`")]
    BadValue(&'static str),
    #[error("value with a line break or NUL")]
    BadCharacter,
    /// A value we were about to send has a line break or NUL: named by its
    /// key (ours), never shown.
    #[error("the value of `{0}` has a line break or NUL")]
    BadCharacterIn(String),
}

/// Parses `key=value` lines up to the first empty line (or the end), in
/// order; a key may repeat. At most `max` bytes.
pub fn parse_lines(raw: &[u8], max: usize) -> Result<Vec<(String, String)>, ProtocolError> {
    if raw.len() > max {
        return Err(ProtocolError::TooLarge);
    }
    let text = std::str::from_utf8(raw).map_err(|_| ProtocolError::NotUtf8)?;
    let mut lines = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let (key, value) = line.split_once('=').ok_or(ProtocolError::NoEquals)?;
        if value.contains('\0') || key.contains('\0') {
            return Err(ProtocolError::BadCharacter);
        }
        lines.push((key.to_owned(), value.to_owned()));
    }
    Ok(lines)
}

/// Parses a message into fields (the last of a repeated key wins).
pub fn parse_fields(raw: &[u8]) -> Result<BTreeMap<String, String>, ProtocolError> {
    Ok(parse_lines(raw, MAX_MESSAGE_BYTES)?.into_iter().collect())
}

/// Encodes `key=value` lines and the closing empty line into one buffer
/// allocated at its final size: no reallocation leaves a copy of a secret
/// behind, and the buffer is wiped on drop.
pub fn encode_lines(lines: &[(&str, &str)]) -> Result<zeroize::Zeroizing<String>, ProtocolError> {
    let mut len = 1;
    for (key, value) in lines {
        if key.contains(['\n', '\r', '\0', '=']) {
            return Err(ProtocolError::BadCharacter);
        }
        if value.contains(['\n', '\r', '\0']) {
            return Err(ProtocolError::BadCharacterIn((*key).to_owned()));
        }
        len += key.len() + value.len() + 2;
    }
    let mut out = zeroize::Zeroizing::new(String::with_capacity(len));
    for (key, value) in lines {
        out.push_str(key);
        out.push('=');
        out.push_str(value);
        out.push('\n');
    }
    out.push('\n');
    Ok(out)
}

impl Request {
    pub fn encode(&self) -> Result<zeroize::Zeroizing<String>, ProtocolError> {
        let mut lines = vec![
            ("capability", self.capability.expose()),
            ("protocol", self.protocol.as_str()),
            ("host", self.host.as_str()),
        ];
        if let Some(path) = &self.path {
            lines.push(("path", path));
        }
        if let Some(username) = &self.username {
            lines.push(("username", username));
        }
        if let Some(rejected) = &self.rejected {
            lines.push(("rejected", rejected));
        }
        let want = match self.want {
            Want::Username => "username",
            Want::Password => "password",
            Want::Revoke => "revoke",
            Want::Erase => "erase",
        };
        lines.push(("want", want));
        lines.push((
            "front",
            if self.from_helper {
                "helper"
            } else {
                "askpass"
            },
        ));
        encode_lines(&lines)
    }

    pub fn decode(raw: &[u8]) -> Result<Self, ProtocolError> {
        let mut fields = parse_fields(raw)?;
        let mut take = |key: &'static str| fields.remove(key);
        let capability = take("capability").ok_or(ProtocolError::Missing("capability"))?;
        let protocol = take("protocol").ok_or(ProtocolError::Missing("protocol"))?;
        let host = take("host").ok_or(ProtocolError::Missing("host"))?;
        let want = match take("want").as_deref() {
            Some("username") => Want::Username,
            Some("password") => Want::Password,
            Some("revoke") => Want::Revoke,
            Some("erase") => Want::Erase,
            Some(_) => return Err(ProtocolError::BadValue("want")),
            None => return Err(ProtocolError::Missing("want")),
        };
        let from_helper = match take("front").as_deref() {
            Some("helper") => true,
            Some("askpass" | "revoke") => false,
            _ => return Err(ProtocolError::BadValue("front")),
        };
        Ok(Self {
            capability: Secret::new(capability),
            protocol,
            host,
            path: take("path").filter(|p| !p.is_empty()),
            username: take("username").filter(|u| !u.is_empty()),
            rejected: take("rejected").filter(|r| !r.is_empty()),
            want,
            from_helper,
        })
    }
}

/// The broker's answer.
pub enum Answer {
    Granted {
        username: String,
        /// Absent when only the username was wanted.
        password: Option<Secret>,
        /// When the password stops working (seconds since the epoch), for
        /// git's `password_expiry_utc`: OAuth tokens only.
        expiry_utc: Option<u64>,
        /// Something the front door should print on stderr (e.g. a username override).
        warning: Option<String>,
    },
    Refused {
        reason: String,
    },
    /// The broker accepted a revocation and is ending.
    Revoked,
    /// The broker took note of an `erase`.
    Noted,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Granted { username, .. } => f
                .debug_struct("Granted")
                .field("username", username)
                .finish_non_exhaustive(),
            Answer::Refused { reason } => {
                f.debug_struct("Refused").field("reason", reason).finish()
            }
            Answer::Revoked => f.write_str("Revoked"),
            Answer::Noted => f.write_str("Noted"),
        }
    }
}

impl Answer {
    pub fn encode(&self) -> Result<zeroize::Zeroizing<String>, ProtocolError> {
        let mut lines = Vec::new();
        let expiry = match self {
            Answer::Granted { expiry_utc, .. } => expiry_utc.map(|e| e.to_string()),
            _ => None,
        };
        match self {
            Answer::Granted {
                username,
                password,
                warning,
                ..
            } => {
                lines.push(("status", "ok"));
                lines.push(("username", username.as_str()));
                if let Some(password) = password {
                    lines.push(("password", password.expose()));
                }
                if let Some(expiry) = &expiry {
                    lines.push(("expiry_utc", expiry.as_str()));
                }
                if let Some(warning) = warning {
                    lines.push(("warning", warning.as_str()));
                }
            }
            Answer::Refused { reason } => {
                lines.push(("status", "refused"));
                lines.push(("reason", reason.as_str()));
            }
            Answer::Revoked => lines.push(("status", "revoked")),
            Answer::Noted => lines.push(("status", "noted")),
        }
        encode_lines(&lines)
    }

    pub fn decode(raw: &[u8]) -> Result<Self, ProtocolError> {
        let mut fields = parse_fields(raw)?;
        match fields.remove("status").as_deref() {
            Some("ok") => Ok(Answer::Granted {
                username: fields
                    .remove("username")
                    .ok_or(ProtocolError::Missing("username"))?,
                password: fields.remove("password").map(Secret::new),
                expiry_utc: match fields.remove("expiry_utc") {
                    Some(v) => Some(
                        v.parse()
                            .map_err(|_| ProtocolError::BadValue("expiry_utc"))?,
                    ),
                    None => None,
                },
                warning: fields.remove("warning"),
            }),
            Some("revoked") => Ok(Answer::Revoked),
            Some("noted") => Ok(Answer::Noted),
            Some("refused") => Ok(Answer::Refused {
                reason: fields.remove("reason").unwrap_or_else(|| "refused".into()),
            }),
            _ => Err(ProtocolError::BadValue("status")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        Request {
            capability: Secret::new("ab".repeat(32)),
            protocol: "https".into(),
            host: "bitbucket.org".into(),
            path: Some("acme/app.git".into()),
            username: None,
            want: Want::Password,
            from_helper: true,
            rejected: None,
        }
    }

    #[test]
    fn requests_and_answers_round_trip() {
        let encoded = request().encode().expect("encode");
        let decoded = Request::decode(encoded.as_bytes()).expect("decode");
        assert_eq!(decoded.host, "bitbucket.org");
        assert_eq!(decoded.path.as_deref(), Some("acme/app.git"));
        assert!(decoded.capability.ct_eq("ab".repeat(32).as_bytes()));
        let answer = Answer::Granted {
            username: "x-token-auth".into(),
            password: Some(Secret::new("FAKEFAKE".into())),
            expiry_utc: Some(1_800_000_000),
            warning: None,
        };
        let decoded = Answer::decode(answer.encode().expect("encode").as_bytes()).expect("decode");
        assert!(matches!(
            decoded,
            Answer::Granted { password: Some(p), expiry_utc: Some(1_800_000_000), .. }
                if p.expose() == "FAKEFAKE"
        ));
        let erase = Request {
            want: Want::Erase,
            rejected: Some("sha256:0123456789ab".into()),
            ..request()
        };
        let decoded = Request::decode(erase.encode().expect("encode").as_bytes()).expect("decode");
        assert_eq!(decoded.want, Want::Erase);
        assert_eq!(decoded.rejected.as_deref(), Some("sha256:0123456789ab"));
        let noted = Answer::decode(Answer::Noted.encode().expect("encode").as_bytes());
        assert!(matches!(noted, Ok(Answer::Noted)));
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        let cases: &[&[u8]] = &[
            b"",
            b"\n",
            b"capability\n",
            b"capability=x\nprotocol=https\nhost=h\nwant=everything\nfront=helper\n\n",
            b"capability=x\nprotocol=https\nhost=h\nwant=password\n\n",
            b"\xff\xfe=1\n",
            b"capability=a\0b\n",
        ];
        for raw in cases {
            assert!(Request::decode(raw).is_err(), "{raw:?}");
        }
        assert_eq!(
            Request::decode(&vec![b'a'; MAX_MESSAGE_BYTES + 1]).err(),
            Some(ProtocolError::TooLarge)
        );
        assert!(Answer::decode(b"status=maybe\n\n").is_err());
    }

    #[test]
    fn encoded_buffers_are_allocated_at_their_final_size() {
        let encoded = request().encode().expect("encode");
        assert_eq!(encoded.len(), encoded.capacity());
        let lines = parse_lines(b"a=1\na=2\nb=\n\nignored=1\n", 100).expect("parse");
        assert_eq!(lines.len(), 3);
        assert_eq!(parse_lines(b"a=1\n", 2), Err(ProtocolError::TooLarge));
        assert_eq!(
            encode_lines(&[("a=b", "c")]).err(),
            Some(ProtocolError::BadCharacter)
        );
    }

    #[test]
    fn values_with_line_breaks_cannot_be_smuggled_in() {
        let mut r = request();
        r.host = "bitbucket.org\npassword=x".into();
        assert_eq!(
            r.encode().err(),
            Some(ProtocolError::BadCharacterIn("host".into()))
        );
    }

    #[test]
    fn debug_hides_the_capability_and_the_password() {
        let shown = format!("{:?}", request());
        assert!(!shown.contains(&"ab".repeat(32)), "{shown}");
        let answer = Answer::Granted {
            username: "u".into(),
            password: Some(Secret::new("FAKEFAKE".into())),
            expiry_utc: None,
            warning: None,
        };
        assert!(!format!("{answer:?}").contains("FAKEFAKE"));
    }
}
