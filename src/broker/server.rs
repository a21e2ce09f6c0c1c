//! The broker server: a Unix socket in a fresh `0700` runtime directory,
//! answering front doors concurrently (git `--jobs N` asks N at once).
//!
//! A peer with another uid, or one that sends garbage, gets the connection
//! closed (a transport failure). A well-formed request that policy refuses
//! gets an answer saying why, and one log line. Answers and refusals are
//! logged at info level with host, path and use count, never the secret.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};

use super::policy::{self, AllowList, Refusal};
use super::protocol::{Answer, MAX_MESSAGE_BYTES, Request, Want};
use crate::credential::RepoPattern;
use crate::credential::{CredentialSet, Scope};
use crate::secret::Secret;

/// How long a front door may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Unix socket paths are limited to 108 bytes; stay well clear.
const MAX_SOCKET_PATH: usize = 100;

/// One credential as the broker needs it: which repositories it serves, and
/// what git gets. `password` is `None` for an OAuth consumer whose token could
/// not be fetched.
pub struct VaultEntry {
    pub scopes: Vec<Scope>,
    pub git_username: String,
    pub password: Option<Secret>,
    /// The credential's name and fingerprint, for the audit log.
    pub name: String,
    pub fingerprint: String,
    /// Config `allow:` of this credential (empty: no limit of its own).
    pub allow: Vec<RepoPattern>,
}

/// The secrets the broker hands out.
pub struct Vault {
    pub entries: Vec<VaultEntry>,
}

impl Vault {
    /// Takes the secrets out of `set` (each OAuth consumer's git password is
    /// the bearer token it was exchanged for).
    pub fn from_set(set: CredentialSet, bearers: Vec<Option<Secret>>) -> Self {
        let mut bearers = bearers.into_iter();
        let entries = set
            .into_entries()
            .into_iter()
            .map(|(scopes, credential)| {
                let bearer = bearers.next().flatten();
                let git_username = credential.git_username().to_owned();
                let name = credential.name.clone();
                let fingerprint = credential.fingerprint();
                let allow = credential.allow.clone();
                let password = match credential.kind() {
                    crate::credential::Kind::OauthClientCredentials => bearer,
                    _ => Some(credential.into_secret()),
                };
                VaultEntry {
                    scopes,
                    git_username,
                    password,
                    name,
                    fingerprint,
                    allow,
                }
            })
            .collect();
        Self { entries }
    }

    fn route(&self, path: Option<&str>) -> Result<usize, Refusal> {
        let scopes: Vec<&[Scope]> = self.entries.iter().map(|e| e.scopes.as_slice()).collect();
        policy::credential_for(&scopes, path)
    }
}

/// The fresh private directory holding the socket and the askpass link;
/// removed when dropped, on every exit path that unwinds.
pub struct RuntimeDir {
    path: PathBuf,
    /// `false` once handed to another process, which removes it.
    owned: bool,
}

impl RuntimeDir {
    /// Creates `bbi-XXXXXX` (mode 0700) under `$XDG_RUNTIME_DIR`, else the temp
    /// dir, else `/tmp` if those give a socket path that is too long.
    pub fn create() -> std::io::Result<Self> {
        let mut bases: Vec<PathBuf> = Vec::new();
        if let Some(xdg) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
            bases.push(PathBuf::from(xdg));
        }
        bases.push(std::env::temp_dir());
        bases.push(PathBuf::from("/tmp"));
        let mut last_error = std::io::Error::other("no usable runtime directory");
        for base in bases {
            // "<base>/bbi-XXXXXX/s" must fit.
            if base.as_os_str().len() + 14 > MAX_SOCKET_PATH || !base.is_dir() {
                continue;
            }
            match tempfile::Builder::new().prefix("bbi-").tempdir_in(&base) {
                Ok(dir) => {
                    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
                    return Ok(Self {
                        path: dir.keep(),
                        owned: true,
                    });
                }
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// Takes over a directory another bbinject process created for us (the
    /// detached broker's, made by `export` where the caller's
    /// `XDG_RUNTIME_DIR`/`TMPDIR` say). It must be ours alone: a real
    /// directory, owned by our uid, mode 0700, and empty.
    pub fn adopt(path: PathBuf) -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::symlink_metadata(&path)?;
        let private = meta.is_dir()
            && meta.uid() == rustix::process::getuid().as_raw()
            && meta.permissions().mode() & 0o777 == 0o700
            && std::fs::read_dir(&path)?.next().is_none();
        if !private {
            return Err(std::io::Error::other(format!(
                "{} is not a private empty directory of this user",
                path.display()
            )));
        }
        Ok(Self { path, owned: true })
    }

    /// Gives the directory up: another process removes it from now on.
    pub fn hand_over(mut self) -> PathBuf {
        self.owned = false;
        self.path.clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn socket(&self) -> PathBuf {
        self.path.join(super::SOCKET_NAME)
    }

    pub fn askpass(&self) -> PathBuf {
        self.path.join(super::ASKPASS_NAME)
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

pub struct Limits {
    pub allow: AllowList,
    /// Only a detached broker may be revoked; `exec`'s ends with its child.
    pub revocable: bool,
    pub max_uses: Option<u32>,
    /// A detached broker ends once `max_uses` passwords were handed out; the
    /// `exec` broker keeps refusing until its child ends.
    pub stop_when_used_up: bool,
    /// `--allow-repo`: the only repositories answered for (empty: any).
    pub allow_repos: Vec<RepoPattern>,
}

struct State {
    vault: Vault,
    limits: Limits,
    capability: Secret,
    uid: u32,
    uses: AtomicU32,
    /// Told when the broker should end (revoked, or used up when detached).
    stop: tokio::sync::Notify,
    audit: Option<super::audit::AuditLog>,
    tally: std::sync::Mutex<super::audit::Tally>,
}

/// A running broker; stops accepting when dropped.
pub struct Broker {
    task: tokio::task::JoinHandle<()>,
    state: Arc<State>,
}

impl Broker {
    /// Binds the socket in `dir` and serves on the current tokio runtime.
    pub fn start(
        dir: &RuntimeDir,
        vault: Vault,
        limits: Limits,
        capability: Secret,
        audit: Option<super::audit::AuditLog>,
    ) -> std::io::Result<Self> {
        let socket = dir.socket();
        let listener = UnixListener::bind(&socket)?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
        let state = Arc::new(State {
            vault,
            limits,
            capability,
            uid: rustix::process::getuid().as_raw(),
            uses: AtomicU32::new(0),
            stop: tokio::sync::Notify::new(),
            audit,
            tally: std::sync::Mutex::new(super::audit::Tally::default()),
        });
        let serving = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors, say: back off instead of spinning.
                        tracing::warn!(error = %e, "broker cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let state = serving.clone();
                tokio::spawn(async move { handle(stream, state).await });
            }
        });
        Ok(Self { task, state })
    }

    /// How many passwords were handed out.
    pub fn uses(&self) -> u32 {
        self.state.uses.load(Ordering::SeqCst)
    }

    /// One line summarising every decision so far, for the end of a run.
    pub fn summary(&self) -> String {
        self.state
            .tally
            .lock()
            .map(|t| t.summary())
            .unwrap_or_default()
    }

    /// Flushes the audit log to disk (at the end of a run).
    pub fn sync_audit(&self) {
        if let Some(audit) = &self.state.audit {
            audit.sync();
        }
    }

    /// Resolves when the broker was revoked, or (detached) used up.
    pub async fn stopped(&self) {
        self.state.stop.notified().await;
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(mut stream: UnixStream, state: Arc<State>) {
    let peer = match stream.peer_cred() {
        Ok(cred) if cred.uid() == state.uid => cred,
        Ok(cred) => {
            tracing::warn!(
                peer_uid = cred.uid(),
                "refused a connection from another user"
            );
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot identify the peer; closing");
            return;
        }
    };
    let mut raw = zeroize::Zeroizing::new(Vec::with_capacity(512));
    let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut chunk = [0u8; 1024];
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            raw.extend_from_slice(&chunk[..n]);
            if raw.len() > MAX_MESSAGE_BYTES || raw.ends_with(b"\n\n") {
                return Ok(());
            }
        }
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        tracing::debug!("front door sent no complete request; closing");
        return;
    }
    let request = match Request::decode(&raw) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "malformed broker request; closing");
            return;
        }
    };
    let (answer, entry, refusal) = evaluate(&state, &request);
    let entry = entry.map(|i| &state.vault.entries[i]);
    if let Ok(mut tally) = state.tally.lock() {
        tally.count(&request, refusal.as_ref());
    }
    if let Some(audit) = &state.audit {
        audit.record(&super::audit::Decision {
            request: &request,
            granted: matches!(answer, Answer::Granted { .. } | Answer::Revoked),
            refusal: refusal.as_ref(),
            credential: entry.map(|e| (e.name.as_str(), e.fingerprint.as_str())),
            // Read from /proc only when there is a log to write it to.
            peer: &super::audit::Peer::of(peer.pid(), peer.uid()),
        });
    }
    let path = request.path.as_deref().unwrap_or("");
    let uses = state.uses.load(Ordering::SeqCst);
    match &answer {
        Answer::Granted {
            password: Some(_), ..
        } => tracing::info!(
            host = %request.host, path, uses, "answered credential request"
        ),
        Answer::Granted { password: None, .. } => tracing::info!(
            host = %request.host, path, "answered username request"
        ),
        Answer::Refused { reason } => tracing::info!(
            host = %request.host, path, uses, reason = %reason, "refused credential request"
        ),
        Answer::Revoked => tracing::info!(uses, "revoked"),
    }
    if let Ok(encoded) = answer.encode() {
        let _ = stream.write_all(encoded.as_bytes()).await;
        let _ = stream.shutdown().await;
    }
}

/// The answer to `request`, the vault entry it concerns (when routed), and the
/// refusal behind a refused answer.
fn evaluate(state: &State, request: &Request) -> (Answer, Option<usize>, Option<Refusal>) {
    let mut routed = None;
    match decide(state, request, &mut routed) {
        Ok(answer) => (answer, routed, None),
        Err(refusal) => (
            Answer::Refused {
                reason: refusal.to_string(),
            },
            routed,
            Some(refusal),
        ),
    }
}

fn decide(state: &State, request: &Request, routed: &mut Option<usize>) -> Result<Answer, Refusal> {
    let refuse = |refusal: Refusal| Err(refusal);
    if !state
        .capability
        .ct_eq(request.capability.expose().as_bytes())
    {
        return refuse(Refusal::Capability);
    }
    if request.want == Want::Revoke {
        if !state.limits.revocable {
            return refuse(Refusal::NotRevocable);
        }
        state.stop.notify_one();
        return Ok(Answer::Revoked);
    }
    state.limits.allow.check(&request.protocol, &request.host)?;
    policy::check_allowed(&state.limits.allow_repos, request.path.as_deref())?;
    let index = state.vault.route(request.path.as_deref())?;
    *routed = Some(index);
    let entry = &state.vault.entries[index];
    policy::check_allowed(&entry.allow, request.path.as_deref()).map_err(
        |refusal| match refusal {
            Refusal::RepoNotAllowed(repo) => Refusal::RepoNotAllowedForCredential {
                repo,
                credential: entry.name.clone(),
            },
            other => other,
        },
    )?;
    let username = entry.git_username.as_str();
    let Some(password) = &entry.password else {
        return refuse(Refusal::NoToken);
    };
    let mut warning = None;
    if let Some(asked) = &request.username
        && asked != username
    {
        if !request.from_helper {
            return refuse(Refusal::Username {
                asked: asked.clone(),
                expected: username.to_owned(),
            });
        }
        warning = Some(format!(
            "the URL names user {asked}; using this credential's git username {username} instead"
        ));
    }
    if request.want == Want::Username {
        return Ok(Answer::Granted {
            username: username.to_owned(),
            password: None,
            warning,
        });
    }
    let counted = state
        .uses
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            match state.limits.max_uses {
                Some(max) if n >= max => None,
                _ => Some(n + 1),
            }
        });
    if counted.is_err() {
        return refuse(Refusal::UsedUp(state.limits.max_uses.unwrap_or_default()));
    }
    if state.limits.stop_when_used_up
        && counted.is_ok_and(|before| Some(before + 1) == state.limits.max_uses)
    {
        // This was the last one: answer it, then end.
        state.stop.notify_one();
    }
    Ok(Answer::Granted {
        username: username.to_owned(),
        password: Some(Secret::new(password.expose().to_owned())),
        warning,
    })
}
