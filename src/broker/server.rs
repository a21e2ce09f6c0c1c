//! The broker server: listening where [`super::transport`] says (a Unix
//! socket in a fresh `0700` directory, or a Windows named pipe), answering
//! front doors concurrently (git `--jobs N` asks N at once).
//!
//! A peer of another user, or one that sends garbage, gets the connection
//! closed (a transport failure). A well-formed request that policy refuses
//! gets an answer saying why, and one log line. Answers and refusals are
//! logged at info level with host, path and use count, never the secret.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::policy::{self, AllowList, Refusal};
use super::protocol::{Answer, MAX_MESSAGE_BYTES, Request, Want};
use super::renew::{Live, MintSettings, RenewalSpec, SecretSpec};
use super::transport::{self, Connection, Endpoint, Listener, User};
use crate::bitbucket::Bearer;
use crate::credential::{CredentialSet, RestAuth, Scope};
use crate::credential::{RepoPattern, RepoRef};
use crate::secret::Secret;

/// How long a front door may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One credential as the broker needs it: which repositories it serves, and
/// what git gets. `secret` has no value for an OAuth consumer whose token
/// could not be fetched (it is minted on the first request then).
pub struct VaultEntry {
    pub scopes: Vec<Scope>,
    pub git_username: String,
    pub secret: SecretSpec,
    /// The usernames its secret may be sent with (for masking a renewed value).
    pub usernames: Vec<String>,
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
    /// Takes the secrets out of `set`: each OAuth consumer's git password is
    /// the bearer token it was exchanged for (minted again with `mint` before
    /// it expires); a secret read from a file is read again when it changes.
    pub fn from_set(set: CredentialSet, bearers: Vec<Option<Bearer>>, mint: &MintSettings) -> Self {
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
                let usernames = credential
                    .usernames()
                    .iter()
                    .map(|u| (*u).to_owned())
                    .collect();
                let secret = match credential.rest_auth() {
                    RestAuth::Exchange {
                        client_id,
                        client_secret,
                    } => SecretSpec {
                        minted: bearer
                            .as_ref()
                            .and_then(|b| b.lifetime.map(|l| (b.minted_at, l))),
                        initial: bearer.map(|b| b.token),
                        renewal: RenewalSpec::Mint {
                            http: mint.http.clone(),
                            url: mint.token_url.clone(),
                            client_id: client_id.to_owned(),
                            client_secret: Secret::new(client_secret.expose().to_owned()),
                        },
                    },
                    _ => {
                        let kind = credential.kind();
                        let file = credential.secret_file.clone();
                        SecretSpec {
                            initial: Some(credential.into_secret()),
                            minted: None,
                            renewal: match file {
                                Some(file) => RenewalSpec::File { file, kind },
                                None => RenewalSpec::Fixed,
                            },
                        }
                    }
                };
                VaultEntry {
                    scopes,
                    git_username,
                    secret,
                    usernames,
                    name,
                    fingerprint,
                    allow,
                }
            })
            .collect();
        Self { entries }
    }

    fn route(&self, repo: Option<&RepoRef>) -> Result<usize, Refusal> {
        let scopes: Vec<&[Scope]> = self.entries.iter().map(|e| e.scopes.as_slice()).collect();
        policy::credential_for(&scopes, repo)
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
    /// Each entry's secret, kept current (same order as `vault.entries`).
    live: Vec<Live>,
    limits: Limits,
    capability: Secret,
    /// The user bbinject runs as: the only one answered.
    user: User,
    uses: AtomicU32,
    /// Told when the broker should end (revoked, or used up when detached).
    stop: tokio::sync::Notify,
    audit: Option<super::audit::AuditLog>,
    tally: std::sync::Mutex<super::audit::Tally>,
    /// Set when the command it served has exited: every request is refused.
    ended: std::sync::atomic::AtomicBool,
}

/// How often a secret file is looked at for a rotation between requests, so
/// a new value is masked before the build can print it (not only when git
/// next asks). One `stat` per file and interval.
const WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// A running broker; stops accepting when dropped.
pub struct Broker {
    task: tokio::task::JoinHandle<()>,
    /// Watches secret files for rotations (when any entry has one).
    watcher: Option<tokio::task::JoinHandle<()>>,
    state: Arc<State>,
}

impl Broker {
    /// Listens at `endpoint` and serves on the current tokio runtime.
    pub fn start(
        endpoint: &Endpoint,
        mut vault: Vault,
        limits: Limits,
        capability: Secret,
        audit: Option<super::audit::AuditLog>,
    ) -> std::io::Result<Self> {
        let live = vault
            .entries
            .iter_mut()
            .map(|entry| {
                let spec = std::mem::replace(&mut entry.secret, SecretSpec::fixed(None));
                spec.start(entry.name.clone(), std::mem::take(&mut entry.usernames))
            })
            .collect();
        let mut listener = Listener::bind(endpoint)?;
        let state = Arc::new(State {
            vault,
            live,
            limits,
            capability,
            user: listener.user(),
            uses: AtomicU32::new(0),
            stop: tokio::sync::Notify::new(),
            audit,
            tally: std::sync::Mutex::new(super::audit::Tally::default()),
            ended: std::sync::atomic::AtomicBool::new(false),
        });
        let watcher = state.live.iter().any(Live::watches_a_file).then(|| {
            let watched = state.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(WATCH_INTERVAL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    for live in &watched.live {
                        live.refresh_file().await;
                    }
                }
            })
        });
        let serving = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok(stream) => stream,
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
        Ok(Self {
            task,
            watcher,
            state,
        })
    }

    /// The command this broker served has exited: stop accepting, and refuse
    /// whatever was already accepted (a process the command left behind gets
    /// nothing, even while its output is still drained).
    pub fn end(&self) {
        self.state.ended.store(true, Ordering::SeqCst);
        self.task.abort();
        if let Some(watcher) = &self.watcher {
            watcher.abort();
        }
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

    /// How many audit records could not be written.
    pub fn audit_records_lost(&self) -> u64 {
        self.state.audit.as_ref().map_or(0, |a| a.lost())
    }

    /// Resolves when the broker was revoked, or (detached) used up.
    pub async fn stopped(&self) {
        self.state.stop.notified().await;
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(watcher) = &self.watcher {
            watcher.abort();
        }
    }
}

async fn handle(mut stream: Connection, state: Arc<State>) {
    let peer = match transport::peer(&stream) {
        Ok(peer) if peer.user == state.user => peer,
        Ok(peer) => {
            tracing::warn!(
                peer = %peer.user,
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
    let unreadable = |reason: &'static str, detail: &str| {
        if let Some(audit) = &state.audit {
            audit.record_unreadable(&super::audit::Peer::of(&peer), reason, detail);
        }
    };
    if !matches!(read, Ok(Ok(()))) {
        tracing::debug!("front door sent no complete request; closing");
        unreadable(
            "incomplete-request",
            "the front door sent no complete request in time",
        );
        return;
    }
    if raw.is_empty() {
        // Connected and closed (a check that the broker is there): no request.
        return;
    }
    let request = match Request::decode(&raw) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "malformed broker request; closing");
            let code = match e {
                super::protocol::ProtocolError::TooLarge => "request-too-large",
                _ => "malformed-request",
            };
            unreadable(code, &format!("malformed broker request: {e}"));
            return;
        }
    };
    let (answer, routed, refusal) = evaluate(&state, &request).await;
    let entry = routed.entry.map(|i| &state.vault.entries[i]);
    if let Ok(mut tally) = state.tally.lock() {
        tally.count(&request, routed.repository.as_ref(), refusal.as_ref());
    }
    if let Some(audit) = &state.audit {
        audit.record(&super::audit::Decision {
            request: &request,
            granted: matches!(answer, Answer::Granted { .. } | Answer::Revoked),
            refusal: refusal.as_ref(),
            repository: routed.repository.as_ref(),
            credential: entry.map(|e| (e.name.as_str(), e.fingerprint.as_str())),
            // Looked up (/proc, process snapshot) only when there is a log.
            peer: &super::audit::Peer::of(&peer),
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
        Answer::Noted => {
            tracing::info!(host = %request.host, path, "git reported a rejected credential")
        }
    }
    if let Ok(encoded) = answer.encode() {
        let _ = stream.write_all(encoded.as_bytes()).await;
        let _ = stream.shutdown().await;
    }
}

/// What a request was found to concern, as far as the decision got: the
/// repository its path names (read once) and the vault entry it was routed to.
#[derive(Default)]
struct Routed {
    repository: Option<RepoRef>,
    entry: Option<usize>,
}

/// The answer to `request`, what it concerns, and the refusal behind a
/// refused answer.
async fn evaluate(state: &State, request: &Request) -> (Answer, Routed, Option<Refusal>) {
    let mut routed = Routed::default();
    match decide(state, request, &mut routed).await {
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

async fn decide(state: &State, request: &Request, routed: &mut Routed) -> Result<Answer, Refusal> {
    let refuse = |refusal: Refusal| Err(refusal);
    if !state
        .capability
        .ct_eq(request.capability.expose().as_bytes())
    {
        return refuse(Refusal::Capability);
    }
    if state.ended.load(Ordering::SeqCst) {
        return refuse(Refusal::Ended);
    }
    if request.want == Want::Revoke {
        if !state.limits.revocable {
            return refuse(Refusal::NotRevocable);
        }
        state.stop.notify_one();
        return Ok(Answer::Revoked);
    }
    state.limits.allow.check(&request.protocol, &request.host)?;
    // Read once: the same value is routed, checked and audited.
    routed.repository = policy::request_repository(request.path.as_deref())?;
    let repo = routed.repository.as_ref();
    // A path that names no repository is not a missing path: say which.
    let named = |refusal: Refusal| match (&refusal, repo, request.path.as_deref()) {
        (Refusal::NoRepository | Refusal::NoRepositoryWithAllowList, None, Some(path)) => {
            Refusal::NotARepository(path.chars().take(200).collect())
        }
        _ => refusal,
    };
    policy::check_allowed(&state.limits.allow_repos, repo).map_err(named)?;
    let index = state.vault.route(repo).map_err(named)?;
    routed.entry = Some(index);
    let entry = &state.vault.entries[index];
    policy::check_allowed(&entry.allow, repo).map_err(|refusal| match refusal {
        Refusal::RepoNotAllowed(repo) => Refusal::RepoNotAllowedForCredential {
            repo,
            credential: entry.name.clone(),
        },
        other => other,
    })?;
    let username = entry.git_username.as_str();
    let live = &state.live[index];
    if request.want == Want::Erase {
        let origin = match request.path.as_deref() {
            Some(path) => format!("{}://{}/{path}", request.protocol, request.host),
            None => format!("{}://{}", request.protocol, request.host),
        };
        live.rejected(request.rejected.as_deref(), &origin).await;
        return Ok(Answer::Noted);
    }
    let mut warning = None;
    if let Some(asked) = &request.username
        && asked != username
    {
        let asked = crate::secret::shown_user(asked);
        if !request.from_helper {
            return refuse(Refusal::Username {
                asked,
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
            expiry_utc: None,
            warning,
        });
    }
    // Renewed (re-minted, re-read) before it is counted and handed out.
    let served = live.serve().await.map_err(|e| match e {
        super::renew::RenewError::NoToken => Refusal::NoToken,
        renewal @ (super::renew::RenewError::Mint(_)
        | super::renew::RenewError::MintFailedRecently(_)) => Refusal::Renewal(renewal.to_string()),
    })?;
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
        password: Some(served.password),
        expiry_utc: served.expiry_utc,
        warning,
    })
}
