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
use super::server::{Broker, Limits, RuntimeDir, Vault, VaultEntry};
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
        for ((entry, scopes), allow) in self.entries.iter().zip(&scopes).zip(&allows) {
            lines.push(("entry", &entry.git_username));
            lines.push(("name", &entry.name));
            lines.push(("fingerprint", &entry.fingerprint));
            lines.extend(scopes.iter().map(|s| ("scope", s.as_str())));
            lines.extend(allow.iter().map(|a| ("allow", a.as_str())));
            if let Some(password) = &entry.password {
                lines.push(("password", password.expose()));
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
                    password: None,
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
                    if entry.password.is_some() {
                        return Err(ProtocolError::BadValue("password"));
                    }
                    entry.password = Some(Secret::new(value));
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
    // Its own session: the caller's terminal closing or Ctrl-C does not reach it.
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
    let dir = match RuntimeDir::adopt(runtime_dir) {
        Ok(dir) => dir,
        Err(e) => return fail(&format!("cannot use the runtime directory {shown}: {e}")),
    };
    let exe = match super::child_env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return fail(&format!("cannot find its own executable: {e}")),
    };
    if let Err(e) = std::os::unix::fs::symlink(&exe, dir.askpass()) {
        return fail(&format!("cannot create the askpass link in {shown}: {e}"));
    }
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
        Err(e) => return fail(&format!("cannot listen on a socket in {shown}: {e}")),
    };
    if !tell(&format!("ready {}", dir.path().display())) {
        return Exit::Usage;
    }
    let ttl = tokio::time::sleep(ttl);
    let signals = async {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = hup.recv() => {}
        }
    };
    tokio::select! {
        () = ttl => {}
        () = broker.stopped() => {}
        () = signals => {}
    }
    broker.sync_audit();
    drop(broker);
    drop(dir);
    Exit::Success
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
                    password: Some(Secret::new("FAKEFAKE-one".into())),
                    name: "env".into(),
                    fingerprint: "sha256:0123".into(),
                    allow: vec![RepoPattern::parse("acme/app").expect("pattern")],
                },
                VaultEntry {
                    scopes: vec![Scope::Workspace("acme".into())],
                    git_username: "jdoe".into(),
                    password: None,
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
        assert!(
            decoded.entries[0]
                .password
                .as_ref()
                .is_some_and(|p| p.expose() == "FAKEFAKE-one")
        );
        assert!(decoded.entries[1].password.is_none());
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
