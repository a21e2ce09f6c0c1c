//! The URLs bbinject talks to, checked once: `https`, or plain `http` only for
//! a loopback host (tests and local mirrors), because git and HTTP clients send
//! Basic credentials over plain `http` without complaint. It must never accept
//! a URL with userinfo: credentials only come from the sources.

use std::net::IpAddr;

use url::Url;

pub const DEFAULT_API_URL: &str = "https://api.bitbucket.org/2.0";
pub const DEFAULT_GIT_URL: &str = "https://bitbucket.org";
pub const DEFAULT_TOKEN_URL: &str = "https://bitbucket.org/site/oauth2/access_token";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    #[error("{flag} `{value}` is not a URL")]
    NotAUrl { flag: &'static str, value: String },
    #[error("{flag} `{value}` uses {scheme}://; only https:// is allowed")]
    Scheme {
        flag: &'static str,
        value: String,
        scheme: String,
    },
    #[error("{flag} `{value}` uses plain http:// for a host that is not loopback")]
    PlainHttp { flag: &'static str, value: String },
    #[error("{flag} `{value}` must not contain a username or password")]
    Userinfo { flag: &'static str, value: String },
    #[error("{flag} `{value}` is not one host: a path, query or wildcard would be ignored")]
    NotAHost { flag: &'static str, value: String },
}

impl EndpointError {
    pub fn hint(&self) -> String {
        match self {
            EndpointError::PlainHttp { .. } | EndpointError::Scheme { .. } => {
                "use https://; plain http:// is accepted only for 127.0.0.1, ::1 or localhost"
                    .into()
            }
            EndpointError::NotAUrl { flag, .. } => {
                format!("give {flag} as a full URL, e.g. {}", example(flag))
            }
            EndpointError::Userinfo { .. } => {
                "credentials never go in URLs; bbinject reads them from BITBUCKET_* variables"
                    .into()
            }
            EndpointError::NotAHost { flag, .. } => format!(
                "give {flag} as host, host:port or https://host[:port], once per host (the broker \
                 compares hosts exactly: `*.example.com` would match nothing)"
            ),
        }
    }
}

/// A value as an error may echo it: whatever could be userinfo (everything
/// between the scheme and the last `@` of the authority, or before the last
/// `@` when there is no scheme) replaced by `***`, control characters
/// escaped, at most 200 characters. A URL that fails to parse may still hold
/// a password (`https://x:TOKEN@host:99999`).
fn shown_value(value: &str) -> String {
    let (scheme, rest) = match value.find("://") {
        Some(at) => value.split_at(at + 3),
        None => ("", value),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let masked = match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}***{}", &rest[at..]),
        None if scheme.is_empty() && value.contains('@') => {
            let at = value.rfind('@').unwrap_or(0);
            format!("***{}", &value[at..])
        }
        None => value.to_owned(),
    };
    crate::redact::printable(&masked)
        .chars()
        .take(200)
        .collect()
}

fn example(flag: &str) -> &'static str {
    match flag {
        "--api-url" => DEFAULT_API_URL,
        "--token-url" => DEFAULT_TOKEN_URL,
        _ => DEFAULT_GIT_URL,
    }
}

/// `value` as `--host` gives it: one host, with an optional scheme and port,
/// and nothing that would be dropped or read as a pattern (a path, query,
/// fragment, or `*`).
pub fn check_host_only(flag: &'static str, value: &str) -> Result<(), EndpointError> {
    let rest = value.split_once("://").map_or(value, |(_, rest)| rest);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '*']) {
        return Err(EndpointError::NotAHost {
            flag,
            value: shown_value(value),
        });
    }
    Ok(())
}

/// A checked base URL, without a trailing slash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint(Url);

impl Endpoint {
    pub fn parse(flag: &'static str, value: &str) -> Result<Self, EndpointError> {
        let shown = || shown_value(value);
        let url = Url::parse(value).map_err(|_| EndpointError::NotAUrl {
            flag,
            value: shown(),
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            // Never echo a URL that carries userinfo: it may be a password.
            let mut clean = url.clone();
            let _ = clean.set_username("");
            let _ = clean.set_password(None);
            return Err(EndpointError::Userinfo {
                flag,
                value: clean.to_string(),
            });
        }
        let host = url.host_str().ok_or_else(|| EndpointError::NotAUrl {
            flag,
            value: shown(),
        })?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback_host(host) => {}
            "http" => {
                return Err(EndpointError::PlainHttp {
                    flag,
                    value: shown(),
                });
            }
            other => {
                return Err(EndpointError::Scheme {
                    flag,
                    value: shown(),
                    scheme: other.to_owned(),
                });
            }
        }
        Ok(Self(url))
    }

    /// `base` + `/` + `path` (path segments already safe).
    pub fn join(&self, path: &str) -> String {
        format!(
            "{}/{}",
            self.0.as_str().trim_end_matches('/'),
            path.trim_start_matches('/')
        )
    }

    pub fn host(&self) -> &str {
        self.0.host_str().unwrap_or_default()
    }

    pub fn url(&self) -> &Url {
        &self.0
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str().trim_end_matches('/'))
    }
}

/// `127.0.0.0/8`, `::1` and `localhost` (exactly; `localhost.evil.com` is not).
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The three places bbinject sends requests to.
#[derive(Clone, Debug)]
pub struct Endpoints {
    pub api: Endpoint,
    pub git: Endpoint,
    pub token: Endpoint,
}

impl Endpoints {
    pub fn parse(api: &str, git: &str, token: &str) -> Result<Self, EndpointError> {
        Ok(Self {
            api: Endpoint::parse("--api-url", api)?,
            git: Endpoint::parse("--git-url", git)?,
            token: Endpoint::parse("--token-url", token)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_and_http_only_on_loopback() {
        for ok in [
            "https://api.bitbucket.org/2.0",
            "https://bitbucket.org",
            "http://127.0.0.1:8080",
            "http://127.1.2.3/x",
            "http://[::1]:9000",
            "http://localhost:1234/2.0",
        ] {
            assert!(Endpoint::parse("--api-url", ok).is_ok(), "{ok}");
        }
        for (bad, expected) in [
            ("http://bitbucket.org", "not loopback"),
            ("http://localhost.evil.com", "not loopback"),
            ("http://127.0.0.1.nip.io", "not loopback"),
            ("ftp://bitbucket.org", "only https"),
            ("bitbucket.org", "not a URL"),
            ("", "not a URL"),
            ("https://user:FAKEFAKE@bitbucket.org", "must not contain"),
        ] {
            let err = Endpoint::parse("--git-url", bad).expect_err(bad);
            assert!(err.to_string().contains(expected), "{bad}: {err}");
            assert!(!err.to_string().contains("FAKEFAKE"), "{err}");
        }
    }

    #[test]
    fn no_error_echoes_what_could_be_a_password() {
        let token = format!("ATCTT3xFAKE{}", "p".repeat(181));
        for bad in [
            format!("https://x:{token}@bitbucket.org:99999"),
            format!("https://{token}@bitbucket.org:99999/x"),
            format!("http://x:{token}@bitbucket.org"),
            format!("ftp://x:{token}@bitbucket.org"),
            format!("x:{token}@bitbucket.org"),
            format!("https://x:{token}@bit bucket.org"),
            format!("https://a@b:{token}@bitbucket.org:0x"),
        ] {
            let err = Endpoint::parse("--git-url", &bad).expect_err(&bad);
            let shown = err.to_string();
            assert!(!shown.contains("FAKE"), "{shown}");
            assert!(!shown.contains(&token[20..40]), "{shown}");
        }
        let err = Endpoint::parse("--git-url", "https://bitbucket.org:99999").expect_err("port");
        assert!(
            err.to_string().contains("https://bitbucket.org:99999"),
            "{err}"
        );
        let err = Endpoint::parse("--git-url", "ftp://bitbucket\u{1b}[2K.org").expect_err("esc");
        assert!(!err.to_string().contains('\u{1b}'), "{err}");
    }

    #[test]
    fn join_handles_slashes() {
        let api = Endpoint::parse("--api-url", "https://api.bitbucket.org/2.0/").expect("ok");
        assert_eq!(api.join("/user"), "https://api.bitbucket.org/2.0/user");
        assert_eq!(api.to_string(), "https://api.bitbucket.org/2.0");
    }
}
