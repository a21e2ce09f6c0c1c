//! The detached broker (`bbinject broker`, started by `bbinject export`): the
//! hand-off that carries the secrets to it over its stdin, and its life —
//! serve until `--ttl`, the last `--max-uses` answer, a revocation or a
//! signal, then remove the runtime directory.
//!
//! The hand-off is the broker protocol's own `key=value` format, encoded into
//! one buffer allocated at its final size and wiped on drop; it never goes
//! through argv, the environment or a file. The parent creates the runtime
//! directory where *its* `XDG_RUNTIME_DIR`/`TMPDIR` say (the broker starts with
//! an empty environment) and hands it over. The broker reports a start-up
//! failure on its stdout (`error <reason>`), so the parent can say why; it
//! never prints a value.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

use super::policy::{AllowList, Origin};
use super::protocol::{ProtocolError, encode_lines, parse_lines};
use super::renew::{RenewalSpec, SecretSpec};
use super::server::{Broker, Limits, Vault, VaultEntry};
use super::transport::Endpoint;
use crate::credential::{RepoPattern, Scope};
use crate::error::Exit;
use crate::secret::Secret;

/// The largest hand-off a detached broker accepts.
pub const MAX_HANDOFF_BYTES: usize = 1024 * 1024;

/// What `export` hands the detached broker. No `Debug`: it holds secrets.
pub struct Handoff {
    pub capability: Secret,
    pub runtime_dir: PathBuf,
    pub origins: Vec<Origin>,
    pub max_uses: Option<u32>,
    pub ttl: Duration,
    pub entries: Vec<VaultEntry>,
    /// `--allow-repo` (empty: any repository).
    pub allow_repos: Vec<RepoPattern>,
    /// `--audit-log`, an absolute path.
    pub audit_log: Option<PathBuf>,
}

impl Handoff {
    /// One `key=value` line per field; an entry starts at `entry=<git username>`
    /// and owns the `scope=`, `name=`, `fingerprint=`, `allow=` and
    /// `password=` lines after it.
    pub fn encode(&self) -> Result<Zeroizing<String>, ProtocolError> {
        let runtime_dir = self
            .runtime_dir
            .to_str()
            .ok_or(ProtocolError::BadValue("runtime_dir"))?;
        let origins: Vec<String> = self
            .origins
            .iter()
            .map(|o| format!("{}://{}", o.scheme, o.host))
            .collect();
        let max_uses = self.max_uses.map(|n| n.to_string());
        let ttl = self.ttl.as_millis().min(u128::from(u64::MAX)).to_string();
        let scopes: Vec<Vec<String>> = self
            .entries
            .iter()
            .map(|e| e.scopes.iter().map(Scope::to_string).collect())
            .collect();
        let allows: Vec<Vec<String>> = self
            .entries
            .iter()
            .map(|e| e.allow.iter().map(ToString::to_string).collect())
            .collect();
        let allow_repos: Vec<String> = self.allow_repos.iter().map(ToString::to_string).collect();
        // How each entry's secret is renewed (no secret among these).
        let renewals: Vec<Vec<(&str, String)>> = self
            .entries
            .iter()
            .map(|e| renewal_lines(&e.secret))
            .collect::<Result<_, _>>()?;
        let audit_log = match &self.audit_log {
            Some(path) => Some(path.to_str().ok_or(ProtocolError::BadValue("audit_log"))?),
            None => None,
        };
        let mut lines: Vec<(&str, &str)> = vec![
            ("capability", self.capability.expose()),
            ("runtime_dir", runtime_dir),
            ("ttl_ms", &ttl),
        ];
        if let Some(max_uses) = &max_uses {
            lines.push(("max_uses", max_uses));
        }
        lines.extend(origins.iter().map(|o| ("origin", o.as_str())));
        lines.extend(allow_repos.iter().map(|r| ("allow_repo", r.as_str())));
        if let Some(path) = audit_log {
            lines.push(("audit_log", path));
        }
        for (((entry, scopes), allow), renewal) in
            self.entries.iter().zip(&scopes).zip(&allows).zip(&renewals)
        {
            lines.push(("entry", &entry.git_username));
            lines.push(("name", &entry.name));
            lines.push(("fingerprint", &entry.fingerprint));
            lines.extend(scopes.iter().map(|s| ("scope", s.as_str())));
            lines.extend(allow.iter().map(|a| ("allow", a.as_str())));
            if let Some(password) = &entry.secret.initial {
                lines.push(("password", password.expose()));
            }
            lines.extend(renewal.iter().map(|(k, v)| (*k, v.as_str())));
            if let RenewalSpec::Mint { client_secret, .. } = &entry.secret.renewal {
                lines.push(("client_secret", client_secret.expose()));
            }
        }
        encode_lines(&lines)
    }

    pub fn decode(raw: &[u8]) -> Result<Self, ProtocolError> {
        let mut capability = None;
        let mut runtime_dir = None;
        let mut ttl = None;
        let mut max_uses = None;
        let mut origins = Vec::new();
        let mut allow_repos = Vec::new();
        let mut audit_log = None;
        let mut entries: Vec<VaultEntry> = Vec::new();
        for (key, value) in parse_lines(raw, MAX_HANDOFF_BYTES)? {
            match key.as_str() {
                "capability" => capability = Some(Secret::new(value)),
                "runtime_dir" => runtime_dir = Some(PathBuf::from(value)),
                "ttl_ms" => {
                    let ms = value
                        .parse()
                        .map_err(|_| ProtocolError::BadValue("ttl_ms"))?;
                    ttl = Some(Duration::from_millis(ms));
                }
                "max_uses" => {
                    max_uses = Some(
                        value
                            .parse()
                            .map_err(|_| ProtocolError::BadValue("max_uses"))?,
                    );
                }
                "origin" => {
                    let (scheme, host) = value
                        .split_once("://")
                        .ok_or(ProtocolError::BadValue("origin"))?;
                    origins.push(Origin {
                        scheme: scheme.to_owned(),
                        host: host.to_owned(),
                    });
                }
                "allow_repo" => allow_repos.push(
                    RepoPattern::parse(&value)
                        .map_err(|_| ProtocolError::BadValue("allow_repo"))?,
                ),
                "audit_log" => audit_log = Some(PathBuf::from(value)),
                "entry" => entries.push(VaultEntry {
                    scopes: Vec::new(),
                    git_username: value,
                    secret: SecretSpec::fixed(None),
                    usernames: Vec::new(),
                    name: String::new(),
                    fingerprint: String::new(),
                    allow: Vec::new(),
                }),
                "name" => {
                    entries
                        .last_mut()
                        .ok_or(ProtocolError::Missing("entry"))?
                        .name = value;
                }
                "fingerprint" => {
                    entries
                        .last_mut()
                        .ok_or(ProtocolError::Missing("entry"))?
                        .fingerprint = value;
                }
                "allow" => {
                    let pattern =
                        RepoPattern::parse(&value).map_err(|_| ProtocolError::BadValue("allow"))?;
                    entries
                        .last_mut()
                        .ok_or(ProtocolError::Missing("entry"))?
                        .allow
                        .push(pattern);
                }
                "scope" => {
                    let scope = Scope::parse(&value).ok_or(ProtocolError::BadValue("scope"))?;
                    entries
                        .last_mut()
                        .ok_or(ProtocolError::Missing("entry"))?
                        .scopes
                        .push(scope);
                }
                "password" => {
                    let entry = entries.last_mut().ok_or(ProtocolError::Missing("entry"))?;
                    if entry.secret.initial.is_some() {
                        return Err(ProtocolError::BadValue("password"));
                    }
                    entry.secret.initial = Some(Secret::new(value));
                }
                key @ ("minted_ms" | "lifetime_ms" | "secret_file" | "secret_file_label"
                | "kind" | "client_id" | "client_secret" | "token_url" | "ca_file"
                | "timeout_ms" | "deadline_ms" | "retries") => {
                    let entry = entries.last_mut().ok_or(ProtocolError::Missing("entry"))?;
                    renewal_field(&mut entry.secret, key, value)?;
                }
                _ => return Err(ProtocolError::BadValue("key")),
            }
        }
        if entries.is_empty() {
            return Err(ProtocolError::Missing("entry"));
        }
        Ok(Self {
            capability: capability.ok_or(ProtocolError::Missing("capability"))?,
            runtime_dir: runtime_dir.ok_or(ProtocolError::Missing("runtime_dir"))?,
            origins,
            max_uses,
            ttl: ttl.ok_or(ProtocolError::Missing("ttl_ms"))?,
            entries,
            allow_repos,
            audit_log,
        })
    }
}

/// The hand-off lines that say how an entry's secret is renewed, except the
/// client secret (written by the caller, borrowed, never copied).
fn renewal_lines(spec: &SecretSpec) -> Result<Vec<(&'static str, String)>, ProtocolError> {
    let mut lines = Vec::new();
    if let Some((at, lifetime)) = spec.minted {
        let at = at
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| ProtocolError::BadValue("minted_ms"))?;
        lines.push(("minted_ms", at.as_millis().to_string()));
        lines.push(("lifetime_ms", lifetime.as_millis().to_string()));
    }
    match &spec.renewal {
        RenewalSpec::Fixed => {}
        RenewalSpec::File { file, kind } => {
            let path = file
                .path
                .to_str()
                .ok_or(ProtocolError::BadValue("secret_file"))?;
            lines.push(("secret_file", path.to_owned()));
            lines.push(("secret_file_label", file.label.clone()));
            lines.push(("kind", kind.as_str().to_owned()));
        }
        RenewalSpec::Mint {
            http,
            url,
            client_id,
            ..
        } => {
            lines.push(("client_id", client_id.clone()));
            lines.push(("token_url", url.to_string()));
            lines.push(("timeout_ms", http.timeout.as_millis().to_string()));
            lines.push(("deadline_ms", http.deadline.as_millis().to_string()));
            lines.push(("retries", http.retries.to_string()));
            if let Some(ca) = &http.ca_file {
                let ca = ca.to_str().ok_or(ProtocolError::BadValue("ca_file"))?;
                lines.push(("ca_file", ca.to_owned()));
            }
        }
    }
    Ok(lines)
}

/// Applies one renewal line of the hand-off to `spec`. A file's path comes
/// before its label and kind; an OAuth client's id before its other lines.
fn renewal_field(spec: &mut SecretSpec, key: &str, value: String) -> Result<(), ProtocolError> {
    let number = |name: &'static str| {
        value
            .parse::<u64>()
            .map_err(|_| ProtocolError::BadValue(name))
    };
    match (key, &mut spec.renewal) {
        ("minted_ms", _) => {
            let at = std::time::UNIX_EPOCH
                .checked_add(Duration::from_millis(number("minted_ms")?))
                .ok_or(ProtocolError::BadValue("minted_ms"))?;
            let lifetime = spec.minted.map_or(Duration::ZERO, |(_, l)| l);
            spec.minted = Some((at, lifetime));
        }
        ("lifetime_ms", _) => {
            let lifetime = Duration::from_millis(number("lifetime_ms")?);
            let (at, _) = spec.minted.ok_or(ProtocolError::Missing("minted_ms"))?;
            spec.minted = Some((at, lifetime));
        }
        ("secret_file", RenewalSpec::Fixed) => {
            spec.renewal = RenewalSpec::File {
                file: crate::credential::SecretFile {
                    path: PathBuf::from(value),
                    label: String::new(),
                },
                kind: crate::credential::Kind::AccessToken,
            };
        }
        ("secret_file_label", RenewalSpec::File { file, .. }) => file.label = value,
        ("kind", RenewalSpec::File { kind, .. }) => {
            *kind = crate::credential::Kind::from_name(&value)
                .ok_or(ProtocolError::BadValue("kind"))?;
        }
        ("client_id", RenewalSpec::Fixed) => {
            spec.renewal = RenewalSpec::Mint {
                http: crate::bitbucket::HttpSettings::default(),
                url: crate::bitbucket::Endpoint::parse(
                    "--token-url",
                    crate::bitbucket::endpoint_defaults::TOKEN,
                )
                .map_err(|_| ProtocolError::BadValue("token_url"))?,
                client_id: value,
                client_secret: Secret::new(String::new()),
            };
        }
        ("client_secret", RenewalSpec::Mint { client_secret, .. }) => {
            *client_secret = Secret::new(value);
        }
        ("token_url", RenewalSpec::Mint { url, .. }) => {
            *url = crate::bitbucket::Endpoint::parse("--token-url", &value)
                .map_err(|_| ProtocolError::BadValue("token_url"))?;
        }
        ("timeout_ms", RenewalSpec::Mint { http, .. }) => {
            http.timeout = Duration::from_millis(number("timeout_ms")?);
        }
        ("deadline_ms", RenewalSpec::Mint { http, .. }) => {
            http.deadline = Duration::from_millis(number("deadline_ms")?);
        }
        ("retries", RenewalSpec::Mint { http, .. }) => {
            http.retries = u32::try_from(number("retries")?)
                .map_err(|_| ProtocolError::BadValue("retries"))?;
        }
        ("ca_file", RenewalSpec::Mint { http, .. }) => http.ca_file = Some(PathBuf::from(value)),
        _ => return Err(ProtocolError::BadValue("renewal")),
    }
    Ok(())
}

/// Tells the parent one line on stdout: `ready <dir>` or `error <reason>`.
fn tell(line: &str) -> bool {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
}

fn fail(reason: &str) -> Exit {
    tell(&format!("error {reason}"));
    Exit::Usage
}

/// `bbinject broker`: reads the hand-off from stdin, serves until its TTL,
/// `--max-uses` or a revocation (or SIGTERM/SIGINT/SIGHUP), then removes its
/// directory.
pub async fn serve() -> Exit {
    // Its own session: the caller's terminal closing or Ctrl-C does not reach
    // it. (Windows: `export` starts it detached, in a new process group.)
    #[cfg(unix)]
    let _ = rustix::process::setsid();
    let mut raw = Zeroizing::new(Vec::new());
    if std::io::stdin()
        .lock()
        .take(MAX_HANDOFF_BYTES as u64 + 1)
        .read_to_end(&mut raw)
        .is_err()
    {
        return fail("cannot read the hand-off from stdin");
    }
    let handoff = match Handoff::decode(&raw) {
        Ok(handoff) => handoff,
        Err(e) => return fail(&format!("the hand-off is malformed: {e}")),
    };
    drop(raw);
    let Handoff {
        capability,
        runtime_dir,
        origins,
        max_uses,
        ttl,
        entries,
        allow_repos,
        audit_log,
    } = handoff;
    let shown = runtime_dir.display().to_string();
    let dir = match Endpoint::adopt(runtime_dir) {
        Ok(dir) => dir,
        Err(e) => return fail(&format!("cannot use the runtime directory {shown}: {e}")),
    };
    let audit = match &audit_log {
        Some(path) => match super::audit::AuditLog::open(path) {
            Ok(log) => Some(log),
            Err(e) => {
                return fail(&format!(
                    "cannot open the audit log {}: {e}",
                    path.display()
                ));
            }
        },
        None => None,
    };
    let settings = Limits {
        allow_repos,
        allow: AllowList::from_origins(origins),
        revocable: true,
        max_uses,
        stop_when_used_up: true,
    };
    let broker = match Broker::start(&dir, Vault { entries }, settings, capability, audit) {
        Ok(broker) => broker,
        Err(e) => return fail(&format!("cannot listen at {shown}: {e}")),
    };
    if !tell(&format!("ready {}", dir.handle().display())) {
        return Exit::Usage;
    }
    let ttl = tokio::time::sleep(ttl);
    tokio::select! {
        () = ttl => {}
        () = broker.stopped() => {}
        () = told_to_stop() => {}
    }
    broker.sync_audit();
    drop(broker);
    drop(dir);
    Exit::Success
}

/// Any signal whose default would end the broker without removing its socket
/// directory: SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM.
#[cfg(unix)]
async fn told_to_stop() {
    use tokio::signal::unix::{SignalKind, signal};
    let kinds = [
        SignalKind::terminate(),
        SignalKind::interrupt(),
        SignalKind::hangup(),
        SignalKind::quit(),
        SignalKind::user_defined1(),
        SignalKind::user_defined2(),
        SignalKind::alarm(),
    ];
    let mut streams = Vec::new();
    for kind in kinds {
        match signal(kind) {
            Ok(stream) => streams.push(stream),
            Err(_) => return std::future::pending().await,
        }
    }
    std::future::poll_fn(|cx| {
        for stream in &mut streams {
            if stream.poll_recv(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await;
}

/// Windows: a detached process has no console, so no console events; the
/// session ending (logoff, shutdown) is the one signal it gets.
#[cfg(windows)]
async fn told_to_stop() {
    let Ok(mut shutdown) = tokio::signal::windows::ctrl_shutdown() else {
        return std::future::pending().await;
    };
    shutdown.recv().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handoff() -> Handoff {
        Handoff {
            capability: Secret::new("ab".repeat(32)),
            runtime_dir: "/tmp/bbi-x".into(),
            origins: vec![Origin {
                scheme: "https".into(),
                host: "bitbucket.org".into(),
            }],
            max_uses: Some(3),
            ttl: Duration::from_secs(60),
            entries: vec![
                VaultEntry {
                    scopes: vec![Scope::Any],
                    git_username: "x-token-auth".into(),
                    secret: SecretSpec {
                        initial: Some(Secret::new("FAKEFAKE-one".into())),
                        minted: Some((
                            std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
                            Duration::from_secs(7200),
                        )),
                        renewal: RenewalSpec::Mint {
                            http: crate::bitbucket::HttpSettings {
                                timeout: Duration::from_secs(7),
                                deadline: Duration::from_secs(11),
                                ca_file: Some("/etc/ca.pem".into()),
                                ..Default::default()
                            },
                            url: crate::bitbucket::Endpoint::parse(
                                "--token-url",
                                "https://bitbucket.example/oauth",
                            )
                            .expect("url"),
                            client_id: "consumer-key".into(),
                            client_secret: Secret::new("FAKEFAKE-client-secret".into()),
                        },
                    },
                    usernames: vec![],
                    name: "env".into(),
                    fingerprint: "sha256:0123".into(),
                    allow: vec![RepoPattern::parse("acme/app").expect("pattern")],
                },
                VaultEntry {
                    scopes: vec![Scope::Workspace("acme".into())],
                    git_username: "jdoe".into(),
                    secret: SecretSpec {
                        initial: None,
                        minted: None,
                        renewal: RenewalSpec::File {
                            file: crate::credential::SecretFile {
                                path: "/run/secrets/bitbucket_api_token".into(),
                                label: "/run/secrets/bitbucket_api_token".into(),
                            },
                            kind: crate::credential::Kind::ApiToken,
                        },
                    },
                    usernames: vec![],
                    name: "partner".into(),
                    fingerprint: "sha256:4567".into(),
                    allow: vec![],
                },
            ],
            allow_repos: vec![RepoPattern::parse("acme/*").expect("pattern")],
            audit_log: Some("/var/log/bbinject.jsonl".into()),
        }
    }

    #[test]
    fn a_handoff_round_trips_in_one_exactly_sized_buffer() {
        let encoded = handoff().encode().expect("encode");
        assert_eq!(encoded.len(), encoded.capacity());
        let decoded = Handoff::decode(encoded.as_bytes()).expect("decode");
        assert_eq!(decoded.entries.len(), 2);
        assert_eq!(decoded.max_uses, Some(3));
        assert_eq!(decoded.runtime_dir, PathBuf::from("/tmp/bbi-x"));
        assert_eq!(decoded.origins[0].host, "bitbucket.org");
        let first = &decoded.entries[0].secret;
        assert!(
            first
                .initial
                .as_ref()
                .is_some_and(|p| p.expose() == "FAKEFAKE-one")
        );
        assert_eq!(
            first.minted,
            Some((
                std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
                Duration::from_secs(7200)
            ))
        );
        let RenewalSpec::Mint {
            http,
            url,
            client_id,
            client_secret,
        } = &first.renewal
        else {
            panic!("the OAuth renewal was lost");
        };
        assert_eq!(
            (http.timeout, http.deadline, http.ca_file.as_deref()),
            (
                Duration::from_secs(7),
                Duration::from_secs(11),
                Some(std::path::Path::new("/etc/ca.pem"))
            )
        );
        assert_eq!(url.to_string(), "https://bitbucket.example/oauth");
        assert_eq!(client_id, "consumer-key");
        assert_eq!(client_secret.expose(), "FAKEFAKE-client-secret");
        let second = &decoded.entries[1].secret;
        assert!(second.initial.is_none());
        assert!(matches!(
            &second.renewal,
            RenewalSpec::File { file, kind: crate::credential::Kind::ApiToken }
                if file.path == std::path::Path::new("/run/secrets/bitbucket_api_token")
        ));
        assert_eq!(
            decoded.entries[1].scopes,
            vec![Scope::Workspace("acme".into())]
        );
    }

    #[test]
    fn a_malformed_handoff_is_an_error() {
        for raw in [
            &b""[..],
            b"capability=x\nruntime_dir=/x\nttl_ms=1\n",
            b"capability=x\nruntime_dir=/x\nttl_ms=soon\nentry=u\n",
            b"capability=x\nruntime_dir=/x\nttl_ms=1\npassword=p\n",
            b"capability=x\nruntime_dir=/x\nttl_ms=1\nentry=u\npassword=a\npassword=b\n",
            b"capability=x\nruntime_dir=/x\nttl_ms=1\nentry=u\nscope=a/b/c\n",
            b"capability=x\nruntime_dir=/x\nttl_ms=1\nentry=u\nwhat=1\n",
        ] {
            assert!(
                Handoff::decode(raw).is_err(),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }
}
