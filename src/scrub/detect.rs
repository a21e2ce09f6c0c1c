//! What counts as a Bitbucket credential in git config and credentials files:
//! config keys parsed once into section / subsection / name, URL userinfo
//! found by text, `extraHeader` Authorization values decoded. Pure functions
//! over what git's parser or a file gave us; no I/O. It must never put a
//! secret into a `location`, `host` or `preview`, which are printed.

use base64::Engine as _;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::broker::policy::normalise_host;
use crate::credential::{API_TOKEN_GIT_USERNAME, Kind, STATIC_USERNAMES, TOKEN_GIT_USERNAME};

/// A config key as git prints it in `--list`: `section[.subsection].name`.
/// The section and name have no dots; everything between them is the
/// subsection (which may hold dots, as URLs do).
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigKey<'a> {
    /// Lower case, as git normalises it.
    pub section: String,
    pub subsection: Option<&'a str>,
    /// Lower case, as git normalises it.
    pub name: String,
}

impl<'a> ConfigKey<'a> {
    /// `None` for text that is not a key (no dot, or an empty section or name).
    pub fn parse(key: &'a str) -> Option<Self> {
        let first = key.find('.')?;
        let last = key.rfind('.')?;
        let (section, name) = (&key[..first], &key[last + 1..]);
        if section.is_empty() || name.is_empty() {
            return None;
        }
        Some(Self {
            section: section.to_ascii_lowercase(),
            subsection: (first < last).then(|| &key[first + 1..last]),
            name: name.to_ascii_lowercase(),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    AppPassword,
    ApiToken,
    AccessToken,
    Unknown,
}

impl SecretKind {
    pub fn classify(username: Option<&str>, secret: &str) -> Self {
        match (Kind::from_prefix(secret), username) {
            (Some(Kind::AppPassword), _) => SecretKind::AppPassword,
            (Some(Kind::ApiToken), _) | (None, Some(API_TOKEN_GIT_USERNAME)) => {
                SecretKind::ApiToken
            }
            (Some(Kind::AccessToken), _) | (None, Some(TOKEN_GIT_USERNAME)) => {
                SecretKind::AccessToken
            }
            _ => SecretKind::Unknown,
        }
    }

    pub fn advice(self) -> &'static str {
        match self {
            SecretKind::AppPassword => {
                "an app password: app passwords were removed on 2026-07-28; revoke it (Personal settings > App passwords) and use an API token"
            }
            SecretKind::ApiToken => {
                "an API token: revoke it at id.atlassian.com > Security > API tokens, since it sat in a file"
            }
            SecretKind::AccessToken => {
                "an access token: revoke it under Repository (or Project/Workspace) settings > Access tokens, since it sat in a file"
            }
            SecretKind::Unknown => {
                "a password or token: revoke it (an app password stopped working on 2026-07-28 anyway)"
            }
        }
    }
}

/// A secret kept only to mask it in our own output and to edit it away.
pub struct SecretText(pub Zeroizing<String>);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// How a finding is removed from the text that holds it.
#[derive(Debug)]
pub enum Edit {
    /// Replace this exact text (a URL prefix with userinfo) everywhere in the file.
    Replace { from: SecretText, to: String },
    /// Drop the `extraHeader` line(s) carrying this value.
    DropHeader(SecretText),
    /// Drop line `n` (0-based) of a credentials file.
    DropLine(usize),
}

/// One credential found in one text.
#[derive(Debug)]
pub struct Detected {
    /// The config key (userinfo masked), or `line N` in a credentials file.
    pub location: String,
    pub host: String,
    pub kind: SecretKind,
    pub secret: SecretText,
    pub edit: Edit,
}

/// Credentials in the authority of a URL, found by text, not by a URL parser,
/// so the rewritten URL differs from the original in the userinfo only.
pub struct UrlCredentials {
    /// `https://user:secret@host:port`
    pub with: String,
    /// `https://user@host:port`, or without the user for a static token username.
    pub without: String,
    /// `https://user:****@host:port`: what may be shown.
    pub masked: String,
    pub host: String,
    pub username: Option<String>,
    pub secret: Zeroizing<String>,
}

pub fn url_credentials(url: &str) -> Option<UrlCredentials> {
    let scheme_end = url.find("://")?;
    let scheme = &url[..scheme_end];
    if !scheme.eq_ignore_ascii_case("https") && !scheme.eq_ignore_ascii_case("http") {
        return None;
    }
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let at = authority.rfind('@')?;
    let (userinfo, hostport) = (&authority[..at], &authority[at + 1..]);
    let (user, password) = userinfo.split_once(':')?;
    if password.is_empty() {
        return None;
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let username = Some(decode(user)).filter(|u| !u.is_empty());
    let keep_user = username
        .as_deref()
        .is_some_and(|u| !STATIC_USERNAMES.contains(&u));
    let without = if keep_user {
        format!("{scheme}://{user}@{hostport}")
    } else {
        format!("{scheme}://{hostport}")
    };
    Some(UrlCredentials {
        with: url[..scheme_end + 3 + authority_end].to_owned(),
        masked: format!("{scheme}://{user}:****@{hostport}"),
        without,
        host: normalise_host(scheme, hostport),
        username,
        secret: Zeroizing::new(decode(password)),
    })
}

/// `text` with the userinfo password of every URL in it shown as `****`.
pub fn mask_userinfo(text: &str) -> String {
    match url_credentials(text) {
        Some(c) => format!("{}{}", c.masked, &text[c.with.len()..]),
        None => text.to_owned(),
    }
}

/// `ATBB… (32 chars)` for long values, only the length for short ones.
pub fn preview(secret: &str) -> String {
    let chars = secret.chars().count();
    if chars >= 16 {
        format!(
            "{}… ({chars} chars)",
            secret.chars().take(4).collect::<String>()
        )
    } else {
        format!("({chars} chars)")
    }
}

/// Hosts whose credentials are scrubbed: exact names, like the broker's allow-list.
pub struct Hosts(Vec<String>);

impl Hosts {
    /// `bitbucket.org` and each `--host` (`host`, `host:port` or a URL),
    /// normalised as the broker normalises them.
    pub fn new(extra: &[String]) -> Self {
        let mut hosts = vec!["bitbucket.org".to_owned()];
        for h in extra {
            let (scheme, rest) = h.split_once("://").unwrap_or(("https", h));
            let hostport = rest.split('/').next().unwrap_or(rest);
            hosts.push(normalise_host(scheme, hostport));
        }
        Self(hosts)
    }

    pub fn contains(&self, host: &str) -> bool {
        self.0.iter().any(|h| h == host)
    }
}

/// The credentials among config entries `(key, value)` as git listed them.
pub fn in_config(entries: &[(String, Zeroizing<String>)], hosts: &Hosts) -> Vec<Detected> {
    let mut found = Vec::new();
    for (key, value) in entries {
        let Some(parsed) = ConfigKey::parse(key) else {
            continue;
        };
        let masked_key = || mask_userinfo_in_key(key, &parsed);
        match (
            parsed.section.as_str(),
            parsed.subsection,
            parsed.name.as_str(),
        ) {
            ("remote", Some(_), "url" | "pushurl") | ("submodule", Some(_), "url") => {
                if let Some(c) = url_credentials(value).filter(|c| hosts.contains(&c.host)) {
                    found.push(url_finding(masked_key(), c));
                }
            }
            ("url", Some(base), "insteadof" | "pushinsteadof") => {
                if let Some(c) = url_credentials(base).filter(|c| hosts.contains(&c.host)) {
                    found.push(url_finding(masked_key(), c));
                }
            }
            ("http", scope, "extraheader") => {
                if let Some(d) = header_finding(masked_key(), scope, value, hosts) {
                    found.push(d);
                }
            }
            _ => {}
        }
    }
    found
}

/// The key as it may be shown: a subsection URL's password masked.
fn mask_userinfo_in_key(key: &str, parsed: &ConfigKey<'_>) -> String {
    match parsed.subsection {
        Some(sub) => format!("{}.{}.{}", parsed.section, mask_userinfo(sub), parsed.name),
        None => key.to_owned(),
    }
}

fn url_finding(location: String, c: UrlCredentials) -> Detected {
    Detected {
        location,
        host: c.host,
        kind: SecretKind::classify(c.username.as_deref(), &c.secret),
        secret: SecretText(c.secret),
        edit: Edit::Replace {
            from: SecretText(Zeroizing::new(c.with)),
            to: c.without,
        },
    }
}

fn header_finding(
    location: String,
    scope: Option<&str>,
    value: &str,
    hosts: &Hosts,
) -> Option<Detected> {
    let credential = value
        .trim()
        .split_once(':')
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case("authorization"))
        .map(|(_, rest)| rest.trim())?;
    let host = match scope {
        // Unscoped: sent to every host, Bitbucket included.
        None => "every host".to_owned(),
        Some(scope) => {
            let (scheme, rest) = scope.split_once("://")?;
            let host = normalise_host(scheme, rest.split('/').next().unwrap_or_default());
            if !hosts.contains(&host) {
                return None;
            }
            host
        }
    };
    let (scheme, token) = credential.split_once(' ').unwrap_or(("", credential));
    let token = token.trim();
    let kind = if scheme.eq_ignore_ascii_case("basic") {
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(token)
                .unwrap_or_default(),
        );
        let decoded = Zeroizing::new(String::from_utf8_lossy(&decoded).into_owned());
        match decoded.split_once(':') {
            Some((user, password)) => SecretKind::classify(Some(user), password),
            None => SecretKind::classify(None, &decoded),
        }
    } else {
        SecretKind::classify(None, token)
    };
    let secret = Zeroizing::new(token.to_owned());
    Some(Detected {
        location,
        host,
        kind,
        secret: SecretText(secret),
        edit: Edit::DropHeader(SecretText(Zeroizing::new(value.to_owned()))),
    })
}

/// The credentials in a `~/.git-credentials` text, one URL per line.
pub fn in_credentials(text: &str, hosts: &Hosts) -> Vec<Detected> {
    text.lines()
        .enumerate()
        .filter_map(|(n, line)| {
            let c = url_credentials(line.trim()).filter(|c| hosts.contains(&c.host))?;
            Some(Detected {
                location: format!("line {}", n + 1),
                host: c.host,
                kind: SecretKind::classify(c.username.as_deref(), &c.secret),
                secret: SecretText(c.secret),
                edit: Edit::DropLine(n),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(pairs: &[(&str, &str)]) -> Vec<(String, Zeroizing<String>)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Zeroizing::new((*v).to_owned())))
            .collect()
    }

    #[test]
    fn keys_split_into_section_subsection_and_name() {
        let cases = [
            ("http.extraheader", Some(("http", None, "extraheader"))),
            ("url.insteadof", Some(("url", None, "insteadof"))),
            (
                "url.https://u:p@bitbucket.org/.insteadof",
                Some(("url", Some("https://u:p@bitbucket.org/"), "insteadof")),
            ),
            ("remote.a.b.url", Some(("remote", Some("a.b"), "url"))),
            ("HTTP.ExtraHeader", Some(("http", None, "extraheader"))),
            ("remote..url", Some(("remote", Some(""), "url"))),
            ("nodot", None),
            (".x", None),
            ("x.", None),
            ("", None),
            (".", None),
        ];
        for (key, expected) in cases {
            let parsed = ConfigKey::parse(key);
            let got = parsed
                .as_ref()
                .map(|k| (k.section.as_str(), k.subsection, k.name.as_str()));
            assert_eq!(got, expected, "{key:?}");
        }
    }

    #[test]
    fn unscoped_and_subsectionless_keys_are_found_without_panicking() {
        let hosts = Hosts::new(&[]);
        let found = in_config(
            &entries(&[
                (
                    "http.extraheader",
                    "Authorization: Bearer ATCTT3xFAKEFAKEFAKE",
                ),
                ("url.insteadof", "https://u:p@bitbucket.org/"),
                (
                    "url.https://u:ATBBFAKEFAKEFAKEFAKE@bitbucket.org/.insteadof",
                    "bb:",
                ),
                ("remote.url", "https://u:p@bitbucket.org/x"),
                ("http.https://bitbucket.org/.extraheader", "X-Other: 1"),
            ]),
            &hosts,
        );
        let got: Vec<(&str, &str)> = found
            .iter()
            .map(|d| (d.location.as_str(), d.host.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("http.extraheader", "every host"),
                (
                    "url.https://u:****@bitbucket.org/.insteadof",
                    "bitbucket.org"
                ),
            ]
        );
        assert!(found.iter().all(|d| !d.location.contains("FAKE")));
    }

    #[test]
    fn url_credentials_keep_everything_but_the_secret() {
        let cases = [
            (
                "https://jdoe:ATBBFAKE@bitbucket.org/acme/app.git",
                "https://jdoe@bitbucket.org",
                "bitbucket.org",
            ),
            (
                "https://x-token-auth:FAKE%2Fx@BitBucket.ORG:443/a/b",
                "https://BitBucket.ORG:443",
                "bitbucket.org",
            ),
            (
                "http://u:FAKE@[::1]:7990/scm/x.git",
                "http://u@[::1]:7990",
                "[::1]:7990",
            ),
            (
                "https://x-bitbucket-api-token-auth:FAKE@bitbucket.org",
                "https://bitbucket.org",
                "bitbucket.org",
            ),
        ];
        for (url, without, host) in cases {
            let c = url_credentials(url).unwrap_or_else(|| panic!("{url}"));
            assert_eq!(
                (c.without.as_str(), c.host.as_str()),
                (without, host),
                "{url}"
            );
            assert!(url.starts_with(&c.with));
            assert!(!c.masked.contains("FAKE"), "{}", c.masked);
        }
        assert_eq!(
            url_credentials("https://x-token-auth:FAKE%2Fx@bitbucket.org/x")
                .map(|c| c.secret.to_string()),
            Some("FAKE/x".into())
        );
        for none in [
            "https://jdoe@bitbucket.org/x",
            "git@bitbucket.org:acme/x.git",
            "ssh://u:p@bitbucket.org/x",
            "https://bitbucket.org/a@b",
        ] {
            assert!(url_credentials(none).is_none(), "{none}");
        }
    }

    #[test]
    fn a_short_secret_in_a_key_is_masked_too() {
        assert_eq!(
            mask_userinfo("https://u:p@bitbucket.org/"),
            "https://u:****@bitbucket.org/"
        );
        assert_eq!(
            mask_userinfo("https://bitbucket.org/"),
            "https://bitbucket.org/"
        );
    }

    #[test]
    fn hosts_match_exactly() {
        let hosts = Hosts::new(&["[::1]:7990".into(), "https://git.example.com/".into()]);
        for (host, expected) in [
            ("bitbucket.org", true),
            ("[::1]:7990", true),
            ("[::1]", false),
            ("bitbucket.org:8443", false),
            ("git.example.com", true),
            ("bitbucket.org.evil.com", false),
            ("evilbitbucket.org", false),
        ] {
            assert_eq!(hosts.contains(host), expected, "{host}");
        }
    }

    #[test]
    fn previews_never_show_more_than_a_prefix_of_long_values() {
        assert_eq!(preview("ATBBFAKEFAKEFAKEFAKE1234"), "ATBB… (24 chars)");
        assert_eq!(preview("hunter2"), "(7 chars)");
    }

    #[test]
    fn kinds_come_from_prefixes_and_usernames() {
        assert_eq!(SecretKind::classify(None, "ATBBx"), SecretKind::AppPassword);
        assert_eq!(
            SecretKind::classify(Some("x-token-auth"), "abc"),
            SecretKind::AccessToken
        );
        assert_eq!(
            SecretKind::classify(Some("x-bitbucket-api-token-auth"), "abc"),
            SecretKind::ApiToken
        );
        assert_eq!(
            SecretKind::classify(Some("jdoe"), "hunter2"),
            SecretKind::Unknown
        );
    }
}
