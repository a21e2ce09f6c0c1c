//! The broker's audit trail: one JSON object per decision (`--audit-log`),
//! and the tally behind the one-line summary at the end of a run. A record
//! says when, what was decided and why, through which front door, for which
//! origin and repository, with which credential (name and fingerprint), and
//! which process asked (pid, uid, executable). It never holds a secret, a
//! capability, or the asking process's command line or environment (those
//! may hold other secrets).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use super::policy::Refusal;
use super::protocol::{Request, Want};
use super::transport::User;

/// Where the records go: a file opened for appending (created 0600), or
/// stderr; and how many records could not be written.
pub struct AuditLog {
    target: Target,
    /// Records that could not be written (a full disk, a closed stderr, a
    /// log that could not be opened again).
    lost: std::sync::atomic::AtomicU64,
}

enum Target {
    /// The file, and its path: a log deleted or replaced under us (`git clean
    /// -fdx` in the workspace) is opened again at the path.
    File {
        path: PathBuf,
        file: Mutex<std::fs::File>,
    },
    Stderr,
}

impl AuditLog {
    /// `-` is stderr; anything else a file, appended to: created `0600` when
    /// new, and refused when it is a link, a FIFO or another special file,
    /// another user's, or open to other users (`sys::open_private_append`).
    /// The error is a clause naming why.
    pub fn open(target: &Path) -> Result<Self, String> {
        let target = if target == Path::new("-") {
            Target::Stderr
        } else {
            Target::File {
                path: target.to_path_buf(),
                file: Mutex::new(crate::sys::open_private_append(target)?),
            }
        };
        Ok(Self {
            target,
            lost: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Appends one record as one line, in one write. Every field passes
    /// through the redaction of our own output first: a path or user name
    /// that holds a secret in play is masked, as in the build log.
    pub fn record(&self, decision: &Decision<'_>) {
        if let Ok(line) = serde_json::to_vec(&Record::from(decision)) {
            self.write(line);
        }
    }

    /// Records a request that could not be read (`reason`: a kebab-case
    /// code; `detail`: why, without any of the request's bytes).
    pub fn record_unreadable(&self, peer: &Peer, reason: &'static str, detail: &str) {
        let record = Unreadable {
            time: rfc3339_now(),
            decision: "refused",
            reason,
            detail: detail.to_owned(),
            process: Process::from(peer),
        };
        if let Ok(line) = serde_json::to_vec(&record) {
            self.write(line);
        }
    }

    fn write(&self, line: Vec<u8>) {
        let mut line = crate::redact::redact_own(&line).into_owned();
        line.push(b'\n');
        let written = match &self.target {
            Target::File { path, file } => match file.lock() {
                Ok(mut file) => reopen_if_moved(path, &mut file)
                    .and_then(|()| file.write_all(&line).map_err(|e| e.to_string())),
                Err(_) => Err("the log's lock was poisoned".to_owned()),
            },
            Target::Stderr => std::io::stderr()
                .lock()
                .write_all(&line)
                .map_err(|e| e.to_string()),
        };
        if let Err(reason) = written {
            let before = self.lost.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if before == 0 {
                tracing::warn!(
                    "an audit record could not be written ({reason}); records are being lost, \
                     and the run will fail at its end"
                );
            }
        }
    }

    /// How many records could not be written.
    pub fn lost(&self) -> u64 {
        self.lost.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Flushes a file to disk.
    pub fn sync(&self) {
        if let Target::File { file, .. } = &self.target
            && let Ok(file) = file.lock()
        {
            let _ = file.sync_all();
        }
    }
}

/// Opens the log again when the file we hold was deleted, or the path now
/// names another file: records go where the path says, never into an
/// unlinked inode. The new file passes the same checks as at start.
fn reopen_if_moved(path: &Path, file: &mut std::fs::File) -> Result<(), String> {
    let held = file.metadata().map_err(|e| e.to_string())?;
    let current = std::fs::symlink_metadata(path).ok();
    let moved = crate::sys::unlinked(&held)
        || current.is_none_or(|now| !crate::sys::same_file(&held, &now));
    if moved {
        *file = crate::sys::open_private_append(path)
            .map_err(|reason| format!("it was deleted or replaced, and {reason}"))?;
        tracing::warn!(
            "the audit log {} was deleted or replaced during the run; writing to it anew",
            path.display()
        );
    }
    Ok(())
}

/// The process that asked, from the socket's peer credentials: the front
/// door (a `bbinject` started by git), and its parent (the git that wants
/// the credential).
pub struct Peer {
    pid: Option<u32>,
    user: User,
    exe: Option<PathBuf>,
    parent_pid: Option<u32>,
    parent_exe: Option<PathBuf>,
}

impl Peer {
    /// Executables and parent from the platform layer (Linux: `/proc`;
    /// Windows: the process itself and a snapshot; elsewhere unknown).
    pub fn of(peer: &super::transport::Peer) -> Self {
        let pid = peer.pid;
        let parent_pid = pid.and_then(crate::sys::parent_pid);
        Self {
            pid,
            user: peer.user.clone(),
            exe: pid.and_then(crate::sys::process_exe),
            parent_pid,
            parent_exe: parent_pid.and_then(crate::sys::process_exe),
        }
    }
}

/// One decision, as the server made it.
pub struct Decision<'a> {
    pub request: &'a Request,
    pub granted: bool,
    pub refusal: Option<&'a Refusal>,
    /// The repository the request's path names, as the broker read it.
    pub repository: Option<&'a crate::credential::RepoRef>,
    /// The credential's name and fingerprint, when the request was routed to one.
    pub credential: Option<(&'a str, &'a str)>,
    pub peer: &'a Peer,
}

#[derive(Serialize)]
struct Record<'a> {
    time: String,
    decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    front: &'static str,
    want: &'static str,
    protocol: &'a str,
    host: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    repository: Option<String>,
    /// Shown as a fingerprint when it looks like a token (`https://TOKEN@…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<&'a str>,
    #[serde(flatten)]
    process: Process<'a>,
}

/// Which process asked, as a record shows it.
#[derive(Serialize)]
struct Process<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<u32>,
    /// Windows: the user's SID.
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exe: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_exe: Option<String>,
}

impl<'a> From<&'a Peer> for Process<'a> {
    fn from(peer: &'a Peer) -> Self {
        Process {
            pid: peer.pid,
            uid: match peer.user {
                User::Uid(uid) => Some(uid),
                User::Sid(_) => None,
            },
            sid: match &peer.user {
                User::Sid(sid) => Some(sid),
                User::Uid(_) => None,
            },
            exe: peer.exe.as_ref().map(|p| p.display().to_string()),
            parent_pid: peer.parent_pid,
            parent_exe: peer.parent_exe.as_ref().map(|p| p.display().to_string()),
        }
    }
}

/// A request that could not be read: refused (the connection closed) and
/// recorded, with only what is known of it.
#[derive(Serialize)]
struct Unreadable<'a> {
    time: String,
    decision: &'static str,
    reason: &'static str,
    detail: String,
    #[serde(flatten)]
    process: Process<'a>,
}

impl<'a> From<&'a Decision<'a>> for Record<'a> {
    fn from(d: &'a Decision<'a>) -> Self {
        let r = d.request;
        Record {
            time: rfc3339_now(),
            // git's `erase` is a report, not a request for the credential.
            decision: match (d.granted, d.refusal, r.want) {
                (_, None, Want::Erase) => "noted",
                (true, _, _) => "granted",
                (false, _, _) => "refused",
            },
            reason: d.refusal.map(Refusal::code),
            detail: d.refusal.map(ToString::to_string),
            front: if r.from_helper { "helper" } else { "askpass" },
            want: match r.want {
                Want::Username => "username",
                Want::Password => "password",
                Want::Revoke => "revoke",
                Want::Erase => "erase",
            },
            protocol: &r.protocol,
            host: &r.host,
            path: r.path.as_deref(),
            repository: d.repository.map(ToString::to_string),
            username: r.username.as_deref().map(crate::secret::shown_user),
            credential: d.credential.map(|(name, _)| name),
            fingerprint: d.credential.map(|(_, fp)| fp),
            process: Process::from(d.peer),
        }
    }
}

/// What the broker answered, per repository, for the summary line.
#[derive(Default)]
pub struct Tally {
    granted: BTreeMap<String, u32>,
    refused: Vec<String>,
}

impl Tally {
    pub fn count(
        &mut self,
        request: &Request,
        repository: Option<&crate::credential::RepoRef>,
        refusal: Option<&Refusal>,
    ) {
        if request.want != Want::Password {
            return;
        }
        let repo = repository
            .map(ToString::to_string)
            .unwrap_or_else(|| request.host.clone());
        match refusal {
            None => *self.granted.entry(repo).or_default() += 1,
            Some(refusal) => self.refused.push(format!("{repo}: {}", refusal.code())),
        }
    }

    /// `credential answered 5× for acme/app, acme/lib; refused 1× (acme/other: repository-not-allowed)`
    pub fn summary(&self) -> String {
        let answered: u32 = self.granted.values().sum();
        let mut line = if answered == 0 {
            "credential answered 0×".to_owned()
        } else {
            format!(
                "credential answered {answered}× for {}",
                self.granted.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        };
        if !self.refused.is_empty() {
            let mut reasons = self.refused.clone();
            reasons.dedup();
            line.push_str(&format!(
                "; refused {}× ({})",
                self.refused.len(),
                reasons.join(", ")
            ));
        }
        line
    }
}

/// Now as `2026-12-01T00:41:05.123Z` (UTC), without a date crate.
fn rfc3339_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        now.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn request(path: Option<&str>) -> Request {
        Request {
            capability: Secret::new("FAKEFAKE-capability".into()),
            protocol: "https".into(),
            host: "bitbucket.org".into(),
            path: path.map(str::to_owned),
            username: None,
            want: Want::Password,
            from_helper: true,
            rejected: None,
        }
    }

    #[test]
    fn an_erase_is_noted_not_refused() {
        let mut req = request(Some("acme/app.git"));
        req.want = Want::Erase;
        req.rejected = Some("sha256:0123456789ab".into());
        let peer = Peer::of(&super::super::transport::Peer {
            pid: None,
            user: User::Uid(0),
        });
        let decision = Decision {
            request: &req,
            granted: false,
            refusal: None,
            repository: None,
            credential: Some(("env", "sha256:0123")),
            peer: &peer,
        };
        let json = serde_json::to_value(Record::from(&decision)).expect("json");
        assert_eq!(json["decision"], "noted");
        assert_eq!(json["want"], "erase");
        assert!(json["reason"].is_null());
    }

    #[test]
    fn a_record_names_the_decision_and_never_the_capability() {
        let mut req = request(Some("ACME/App.git"));
        let token = format!("ATCTT3xFAKE{}", "q".repeat(181));
        req.username = Some(token.clone());
        let repo = crate::credential::RepoRef::parse("acme/app").expect("repo");
        let refusal = Refusal::RepoNotAllowed("acme/app".into());
        let peer = Peer::of(&super::super::transport::Peer {
            pid: Some(std::process::id()),
            user: User::Uid(0),
        });
        let decision = Decision {
            request: &req,
            granted: false,
            refusal: Some(&refusal),
            repository: Some(&repo),
            credential: Some(("env", "sha256:0123")),
            peer: &peer,
        };
        let json = serde_json::to_value(Record::from(&decision)).expect("json");
        assert_eq!(json["decision"], "refused");
        assert_eq!(json["reason"], "repository-not-allowed");
        assert_eq!(json["repository"], "acme/app");
        assert_eq!(json["front"], "helper");
        assert_eq!(json["uid"], 0);
        if cfg!(any(target_os = "linux", windows)) {
            assert!(
                json["exe"].as_str().is_some_and(|e| !e.is_empty()),
                "{json}"
            );
        }
        // (A test process under wine has no Windows parent: sys's own test
        // checks the parent on Windows.)
        if cfg!(target_os = "linux") {
            assert!(json["parent_pid"].as_i64().is_some_and(|p| p > 0), "{json}");
            assert!(
                json["parent_exe"].as_str().is_some_and(|e| !e.is_empty()),
                "{json}"
            );
        }
        assert!(!json.to_string().contains("FAKEFAKE"));
        // A token where the user name belongs is recorded as its fingerprint.
        assert!(!json.to_string().contains(&token), "{json}");
        assert!(
            json["username"]
                .as_str()
                .is_some_and(|u| u.starts_with("token-shaped-user-sha256:")),
            "{json}"
        );
    }

    #[test]
    fn the_summary_counts_answers_per_repository_and_refusals() {
        let mut tally = Tally::default();
        let repo = |r: &str| crate::credential::RepoRef::parse(r).expect("repo");
        let req = request(Some("acme/app.git"));
        tally.count(&req, Some(&repo("acme/app")), None);
        tally.count(&req, Some(&repo("acme/app")), None);
        tally.count(&req, Some(&repo("acme/lib")), None);
        tally.count(
            &req,
            Some(&repo("acme/other")),
            Some(&Refusal::RepoNotAllowed("acme/other".into())),
        );
        assert_eq!(
            tally.summary(),
            "credential answered 3× for acme/app, acme/lib; refused 1× (acme/other: repository-not-allowed)"
        );
    }

    // Unix: on Windows a deleted or replaced log is not detected (sys::same_file).
    #[cfg(unix)]
    #[test]
    fn a_record_that_cannot_be_written_is_counted_and_a_deleted_log_is_opened_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).expect("open");
        let req = request(Some("acme/app.git"));
        let peer = Peer::of(&super::super::transport::Peer {
            pid: None,
            user: User::Uid(0),
        });
        let decision = Decision {
            request: &req,
            granted: true,
            refusal: None,
            repository: None,
            credential: None,
            peer: &peer,
        };
        log.record(&decision);
        // The build deletes it (`git clean -fdx`): the next record is at the path.
        std::fs::remove_file(&path).expect("rm");
        log.record(&decision);
        let text = std::fs::read_to_string(&path).expect("reopened");
        assert_eq!(text.lines().count(), 1, "{text}");
        assert_eq!(log.lost(), 0);
        // A log that cannot be written: counted.
        if let Target::File { file, .. } = &log.target {
            *file.lock().expect("lock") = std::fs::File::open(&path).expect("read-only");
        }
        log.record(&decision);
        log.record(&decision);
        assert_eq!(log.lost(), 2);
    }

    #[test]
    fn times_are_rfc3339_utc() {
        let t = rfc3339_now();
        assert_eq!(t.len(), 24, "{t}");
        assert!(
            t.starts_with("20") && t.ends_with('Z') && t.as_bytes()[10] == b'T',
            "{t}"
        );
    }
}
