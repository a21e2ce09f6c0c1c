//! Who gets an answer: the allow-list of origins and the per-request decision.
//!
//! Hosts are compared exactly (lower-cased, with the port when not the
//! default), so `bitbucket.org.evil.com`, `evilbitbucket.org` and
//! `bitbucket.org:8443` do not match `bitbucket.org`. The scheme must be the
//! one the origin was allowed with: `https`, or `http` only for a loopback
//! host named explicitly (`--git-url http://127.0.0.1:8080`). Pure decisions:
//! it never touches a secret or a socket, and a refusal ([`Refusal`]) never
//! names a value, only hosts, paths and usernames.

use crate::bitbucket::{Endpoint, EndpointError};
use crate::credential::{RepoPattern, RepoRef, Scope, UnsafePath, normalised_repository};

/// Why the broker gives no credential: one line for the person reading the
/// build log, sent to the front door as the answer's reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the capability does not match this broker")]
    Capability,
    #[error(
        "this broker belongs to a running `bbinject exec` and ends with its command; \
         `bbinject export --revoke` ends only a broker started by `bbinject export`"
    )]
    NotRevocable,
    #[error(
        "{protocol}://{host} is allowed only over {allowed}:// (a credential is never sent over plain http)"
    )]
    Scheme {
        protocol: String,
        host: String,
        allowed: String,
    },
    #[error("host {host} is not on the allow-list ({allowed}); add it with --host if it is yours")]
    Host { host: String, allowed: String },
    #[error("no configured credential matches {0}")]
    NoCredentialFor(RepoRef),
    #[error(
        "git did not say which repository (credential.useHttpPath is off) and no credential \
         serves every repository"
    )]
    NoRepository,
    #[error("the OAuth consumer has no token")]
    NoToken,
    /// The OAuth token expired (or was rejected) and minting a new one failed.
    #[error("{0}")]
    Renewal(String),
    #[error(
        "the URL names user {asked}, but this credential's git username is {expected}; \
         remove `{asked}@` from the URL"
    )]
    Username { asked: String, expected: String },
    #[error("--max-uses {0} reached; no more credentials from this broker")]
    UsedUp(u32),
    #[error("{0} is not in --allow-repo (the repositories this build may touch)")]
    RepoNotAllowed(String),
    #[error("{repo} is not in the `allow:` list of credential `{credential}`")]
    RepoNotAllowedForCredential { repo: String, credential: String },
    #[error(
        "git did not say which repository, and with --allow-repo set the broker answers only \
         for a named one (keep credential.useHttpPath on, or put the path in the URL)"
    )]
    NoRepositoryWithAllowList,
    #[error("{0}")]
    UnsafePath(UnsafePath),
    #[error("the command this broker served has exited; it answers no one any more")]
    Ended,
    #[error(
        "the path git sent ({0}) does not name a repository as WORKSPACE/SLUG (ASCII letters, \
         digits, `-`, `_` and `.`)"
    )]
    NotARepository(String),
    #[error(
        "the host {0} is not in the form git and curl agree on (a lower-case name, a dotted \
         IPv4 address or a bracketed IPv6 address, and an optional port)"
    )]
    UnsafeHost(String),
}

impl Refusal {
    /// A stable, kebab-case name for the audit log.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Capability => "capability-mismatch",
            Refusal::NotRevocable => "not-revocable",
            Refusal::Scheme { .. } => "scheme-not-allowed",
            Refusal::Host { .. } => "host-not-allowed",
            Refusal::NoCredentialFor(_) => "no-credential-for-repository",
            Refusal::NoRepository => "no-repository",
            Refusal::NoToken => "no-token",
            Refusal::Renewal(_) => "token-renewal-failed",
            Refusal::Username { .. } => "username-mismatch",
            Refusal::UsedUp(_) => "max-uses-reached",
            Refusal::RepoNotAllowed(_) => "repository-not-allowed",
            Refusal::RepoNotAllowedForCredential { .. } => "repository-not-allowed-for-credential",
            Refusal::NoRepositoryWithAllowList => "no-repository-with-allow-list",
            Refusal::UnsafePath(_) => "path-not-canonical",
            Refusal::Ended => "broker-ended",
            Refusal::NotARepository(_) => "path-names-no-repository",
            Refusal::UnsafeHost(_) => "host-not-canonical",
        }
    }
}

/// The repository a request names, read once from its path: the value the
/// broker routes by, checks against every allow-list and writes to the audit
/// log. A path that would need normalising is refused.
pub fn request_repository(path: Option<&str>) -> Result<Option<RepoRef>, Refusal> {
    let Some(path) = path else { return Ok(None) };
    Ok(normalised_repository(path)
        .map_err(Refusal::UnsafePath)?
        .map(|(workspace, slug)| RepoRef { workspace, slug }))
}

/// `Ok` if `repo` is one `allow` covers (or there is no list).
pub fn check_allowed(allow: &[RepoPattern], repo: Option<&RepoRef>) -> Result<(), Refusal> {
    if allow.is_empty() {
        return Ok(());
    }
    let repo = repo.ok_or(Refusal::NoRepositoryWithAllowList)?;
    if allow.iter().any(|p| p.matches(&repo.workspace, &repo.slug)) {
        Ok(())
    } else {
        Err(Refusal::RepoNotAllowed(repo.to_string()))
    }
}

/// The one host parser of both front doors (git's helper field and the host
/// of an askpass prompt): `host` exactly as git wrote it, accepted only in
/// the form git, curl and the allow-list all read the same way — ASCII
/// letters, digits, `-`, `_` and `.` in non-empty labels (no trailing dot,
/// no IDN to map), a canonical dotted IPv4 address when the last label is
/// numeric (no `127.1`, `0x7f.1` or `2130706433` shorthand), or a bracketed
/// IPv6 address; then an optional port of 1–65535 without leading zeros.
/// Returns the host normalised by [`normalise_host`]; `None` otherwise.
pub fn parse_host(scheme: &str, host: &str) -> Option<String> {
    if host.is_empty() || host.len() > 262 {
        return None;
    }
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (literal, after) = rest.split_once(']')?;
        literal.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (None, port)
    } else {
        match host.split_once(':') {
            Some((name, port)) => (Some(name), Some(port)),
            None => (Some(host), None),
        }
    };
    if let Some(port) = port {
        let canonical = port.parse::<u16>().ok().filter(|p| *p > 0)?;
        if canonical.to_string() != port {
            return None;
        }
    }
    if let Some(name) = name {
        let labels: Vec<&str> = name.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if name.len() > 253 || !labels.iter().all(label_ok) {
            return None;
        }
        let last = labels.last()?;
        let numeric =
            last.bytes().all(|b| b.is_ascii_digit()) || last.to_ascii_lowercase().starts_with("0x");
        if numeric {
            let ip = name.parse::<std::net::Ipv4Addr>().ok()?;
            if ip.to_string() != name {
                return None;
            }
        }
    }
    Some(normalise_host(scheme, host))
}

/// The one host normaliser, for the broker, the helper, askpass and scrub:
/// lower case, and without the scheme's default port (`:443` for https,
/// `:80` for http), so `BitBucket.ORG:443` is `bitbucket.org` while
/// `bitbucket.org:8443` stays another origin. IPv6 literals keep their brackets.
pub fn normalise_host(scheme: &str, host: &str) -> String {
    let host = host.to_ascii_lowercase();
    let default = match scheme.to_ascii_lowercase().as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => return host,
    };
    match host.strip_suffix(default) {
        Some(bare) if !bare.is_empty() && !bare.ends_with(':') => bare.to_owned(),
        _ => host,
    }
}

/// `scheme://host[:port]`, as git names it in credential requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    /// Lower-case host, with `:port` unless it is the scheme's default.
    pub host: String,
}

impl Origin {
    pub fn from_endpoint(endpoint: &Endpoint) -> Self {
        let url = endpoint.url();
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        };
        Self {
            scheme: url.scheme().to_owned(),
            host,
        }
    }

    /// The host without its port (`[::1]` for IPv6): what an SSH URL names.
    pub fn hostname(&self) -> &str {
        match self.host.rfind(':') {
            Some(at) if !self.host[at..].contains(']') => &self.host[..at],
            _ => &self.host,
        }
    }

    /// `https://bitbucket.org`, the key of git's URL-scoped config.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }
}

#[derive(Clone, Debug, Default)]
pub struct AllowList {
    origins: Vec<Origin>,
}

impl AllowList {
    /// An allow-list handed over to a detached broker.
    pub fn from_origins(origins: Vec<Origin>) -> Self {
        Self { origins }
    }

    pub fn new(git_url: &Endpoint) -> Self {
        Self {
            origins: vec![Origin::from_endpoint(git_url)],
        }
    }

    /// Adds a `--host`: `host`, `host:port` or a URL (`https://…`, or
    /// `http://` for a loopback host).
    pub fn add(&mut self, value: &str) -> Result<(), EndpointError> {
        crate::bitbucket::endpoint_check_host_only("--host", value)?;
        let url = if value.contains("://") {
            value.to_owned()
        } else {
            format!("https://{value}")
        };
        let origin = Origin::from_endpoint(&Endpoint::parse("--host", &url)?);
        if !self.origins.contains(&origin) {
            self.origins.push(origin);
        }
        Ok(())
    }

    pub fn origins(&self) -> &[Origin] {
        &self.origins
    }

    /// `Ok` if git may get a credential for `protocol://host`.
    pub fn check(&self, protocol: &str, host: &str) -> Result<(), Refusal> {
        let host = normalise_host(protocol, host);
        match self.origins.iter().find(|o| o.host == host) {
            Some(o) if o.scheme == protocol => Ok(()),
            Some(o) => Err(Refusal::Scheme {
                protocol: protocol.to_owned(),
                host,
                allowed: o.scheme.clone(),
            }),
            None => Err(Refusal::Host {
                host,
                allowed: self
                    .origins
                    .iter()
                    .map(Origin::url)
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}

/// The entry among `scopes` lists for a request's repository: routed by
/// repository when it names one, otherwise an entry without `match:` (the
/// only credential of an environment-variable run).
pub fn credential_for(scopes: &[&[Scope]], repo: Option<&RepoRef>) -> Result<usize, Refusal> {
    if let Some(repo) = repo {
        return crate::credential::route(scopes.iter().copied(), repo)
            .ok_or_else(|| Refusal::NoCredentialFor(repo.clone()));
    }
    scopes
        .iter()
        .position(|s| s.contains(&Scope::Any))
        .ok_or(Refusal::NoRepository)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(git_url: &str) -> AllowList {
        AllowList::new(&Endpoint::parse("--git-url", git_url).expect("url"))
    }

    #[test]
    fn hosts_are_normalised_one_way() {
        for (scheme, host, expected) in [
            ("https", "BitBucket.ORG:443", "bitbucket.org"),
            ("https", "bitbucket.org:8443", "bitbucket.org:8443"),
            ("http", "127.0.0.1:80", "127.0.0.1"),
            ("http", "127.0.0.1:8080", "127.0.0.1:8080"),
            ("https", "[::1]:443", "[::1]"),
            ("https", "[::1]:7990", "[::1]:7990"),
            ("https", ":443", ":443"),
            ("ssh", "bitbucket.org:22", "bitbucket.org:22"),
        ] {
            assert_eq!(normalise_host(scheme, host), expected, "{scheme} {host}");
        }
        // The helper (git's field) and askpass (a URL) agree.
        let helper = crate::broker::client::parse_helper_input(
            b"protocol=https\nhost=BitBucket.org:443\n\n",
        )
        .expect("parse")
        .expect("query");
        let prompt = crate::broker::client::parse_prompt(
            "Password for 'https://x-token-auth@BitBucket.org:443/a/b.git': ",
        )
        .expect("prompt");
        // The helper refuses what the prompt parser refuses.
        for host in ["127.1", "bitbucket.org.", "ｂitbucket.org"] {
            let input = format!("protocol=https\nhost={host}\n\n");
            assert!(
                crate::broker::client::parse_helper_input(input.as_bytes()).is_err(),
                "{host}"
            );
        }
        assert_eq!(
            (helper.host.as_str(), prompt.host.as_str()),
            ("bitbucket.org", "bitbucket.org")
        );
    }

    #[test]
    fn hosts_are_accepted_only_in_the_form_everyone_reads_alike() {
        for (host, expected) in [
            ("bitbucket.org", Some("bitbucket.org")),
            ("BitBucket.ORG:443", Some("bitbucket.org")),
            ("127.0.0.1:8080", Some("127.0.0.1:8080")),
            ("[::1]:7990", Some("[::1]:7990")),
            ("[::ffff:127.0.0.1]", Some("[::ffff:127.0.0.1]")),
            ("git_server.internal", Some("git_server.internal")),
            ("1password.com", Some("1password.com")),
        ] {
            assert_eq!(parse_host("https", host).as_deref(), expected, "{host}");
        }
        for host in [
            "",
            "bitbucket.org.",
            ".bitbucket.org",
            "bitbucket..org",
            "127.1",
            "2130706433",
            "0x7f.0.0.1",
            "127.0.0.01",
            "example.0x7f",
            "ｂitbucket.org",
            "bitbücket.org",
            "bitbucket.org\\acme",
            "bitbucket.org#x",
            "bitbucket.org/x",
            "user@bitbucket.org",
            "bitbucket.org:",
            "bitbucket.org:0",
            "bitbucket.org:0443",
            "bitbucket.org:65536",
            "bitbucket.org:443:443",
            "[::1",
            "[::1]x",
            "[fe80::1%25eth0]",
            "[::1]:",
            "bitbucket org",
            "bitbucket.org\u{1b}[2K",
        ] {
            assert_eq!(parse_host("https", host), None, "{host:?}");
        }
    }

    #[test]
    fn only_the_exact_host_and_scheme_are_allowed() {
        let list = allow("https://bitbucket.org");
        let cases = [
            ("https", "bitbucket.org", true),
            ("https", "BitBucket.ORG", true),
            ("https", "bitbucket.org.evil.com", false),
            ("https", "evilbitbucket.org", false),
            ("https", "bitbucket.org:8443", false),
            ("https", "api.bitbucket.org", false),
            ("https", "bitbucket.org.", false),
            ("http", "bitbucket.org", false),
            ("https", "", false),
        ];
        for (protocol, host, expected) in cases {
            assert_eq!(
                list.check(protocol, host).is_ok(),
                expected,
                "{protocol}://{host}"
            );
        }
    }

    #[test]
    fn plain_http_only_for_a_loopback_host_named_explicitly() {
        let list = allow("http://127.0.0.1:8080");
        assert!(list.check("http", "127.0.0.1:8080").is_ok());
        assert!(list.check("http", "127.0.0.1:8081").is_err());
        assert!(list.check("http", "127.0.0.1").is_err());
        assert!(list.check("http", "localhost:8080").is_err());
        let mut list = allow("https://bitbucket.org");
        assert!(
            list.add("http://bitbucket.org").is_err(),
            "http to a remote host"
        );
        assert!(list.add("http://localhost:7990").is_ok());
        // One host, or an error: never a pattern or a path silently dropped.
        for bad in [
            "*.bitbucket.org",
            "https://*.example.com",
            "git.example.com/path?q",
            "https://git.example.com/x",
        ] {
            assert!(
                matches!(list.add(bad), Err(EndpointError::NotAHost { .. })),
                "{bad}"
            );
        }
        assert!(list.add("https://git.example.com/").is_ok());
        assert!(list.add("bitbucket.example.com").is_ok());
        assert!(list.check("https", "bitbucket.example.com").is_ok());
        assert!(list.check("http", "localhost:7990").is_ok());
    }

    #[test]
    fn the_origin_url_is_what_git_config_scopes_by() {
        assert_eq!(
            allow("https://bitbucket.org/").origins()[0].url(),
            "https://bitbucket.org"
        );
        assert_eq!(
            allow("http://127.0.0.1:9/").origins()[0].url(),
            "http://127.0.0.1:9"
        );
        assert_eq!(
            allow("https://[::1]:8443").origins()[0].url(),
            "https://[::1]:8443"
        );
    }

    #[test]
    fn paths_name_repositories() {
        let repo = |p| {
            request_repository(Some(p))
                .expect("canonical")
                .map(|r| r.to_string())
        };
        assert_eq!(repo("acme/app.git"), Some("acme/app".into()));
        assert_eq!(repo("/acme/app.git/info/refs"), Some("acme/app".into()));
        assert_eq!(repo("acme"), None);
        assert_eq!(request_repository(None), Ok(None));
        assert!(matches!(
            request_repository(Some("evil/x.git/info/refs?/../../../../acme/app.git")),
            Err(Refusal::UnsafePath(_))
        ));
    }
}
