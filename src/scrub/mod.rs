//! `bbinject scrub`: finds Bitbucket credentials already embedded in git
//! repositories and git config (remote and submodule URLs, `insteadOf` rules,
//! `http.extraHeader` Authorization lines, `~/.git-credentials`), reports them
//! with a masked preview, and rewrites them clean.
//!
//! - [`discover`]: which files (repository, worktrees, submodules, global,
//!   and the files they include), by a bounded walk;
//! - [`read`]: git's own parser on the bytes we hold;
//! - [`detect`]: what in them is a credential (pure, table-tested, fuzzed);
//! - [`write`]: the edit, made under git's `F.lock` protocol.
//!
//! Writing is a surgical text edit instead of `git config --unset` /
//! `--rename-section`: those would need the old value (the secret) on git's
//! command line, where any process can read it. Each edit replaces exactly the
//! `scheme://userinfo@` prefix, or drops the one header line, so comments and
//! everything else stay byte for byte; before the rename, git re-parses the
//! result and every entry but the edited ones must be as it was. A file is
//! edited only from the content read while holding its lock, so a concurrent
//! git writer loses nothing. Files included from outside the paths given are
//! reported, never edited. No report, log or error contains a value.

pub mod detect;
pub mod discover;
pub mod read;
pub mod write;

use std::path::{Path, PathBuf};

use serde::Serialize;
use zeroize::Zeroizing;

use crate::cli::{Format, ScrubArgs};
use crate::credential::Environment;
use crate::error::Exit;
use crate::secret::Secret;
use detect::{Detected, Edit, Hosts, SecretKind};

#[derive(Debug, thiserror::Error)]
pub enum ScrubError {
    #[error("{path}: no such file or directory")]
    NoSuchPath { path: String },
    #[error("{path}: not a git repository (no .git, and not a bare repository)")]
    NotARepository { path: String },
    #[error("{path}: cannot be read: {reason}")]
    Unreadable { path: String, reason: String },
    #[error(
        "{path}: is not UTF-8 text (the first bad byte is at offset {offset}); nothing was changed"
    )]
    NotUtf8 { path: String, offset: usize },
    #[error("{path}: more than 200000 entries under it; the walk was stopped")]
    TooLarge { path: String },
    #[error("{path}: another process is writing it ({lock} exists); nothing was changed")]
    Locked { path: String, lock: String },
    #[error("{path}: cannot be written ({reason}); nothing was changed")]
    Unwritable { path: String, reason: String },
    #[error("{path}: the rewritten file did not check out ({reason}); nothing was changed")]
    Verification { path: String, reason: String },
    #[error(
        "{path}: holds a credential but is included from {from}, outside the paths given; it was not changed"
    )]
    Outside { path: String, from: String },
}

impl ScrubError {
    pub fn hint(&self) -> &'static str {
        match self {
            ScrubError::NoSuchPath { .. } | ScrubError::NotARepository { .. } => {
                "give the path of a work tree, a bare repository or a worktree (default: the current directory)"
            }
            ScrubError::Unreadable { .. } => {
                "run scrub as the user who owns the repository, or fix the file so `git config --list --file FILE` reads it"
            }
            ScrubError::NotUtf8 { .. } => {
                "scrub edits only UTF-8 config files; save the file as UTF-8 (git reads it either way) and run scrub again"
            }
            ScrubError::TooLarge { .. } => "scrub the submodules' repositories one by one",
            ScrubError::Locked { .. } | ScrubError::Unwritable { .. } => {
                "nothing was lost: every file was either rewritten whole or left as it was; run scrub again when the file is free"
            }
            ScrubError::Verification { .. } => {
                "nothing was changed: the credential is written in a form scrub does not edit (an escaped character in it, say); remove it with an editor, then revoke it"
            }
            ScrubError::Outside { .. } => {
                "remove the credential from that file by hand (or run scrub on the repository it belongs to), then revoke it"
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Check,
    DryRun,
    Fix,
}

/// What a file is, for detection and editing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileKind {
    Config,
    Credentials,
}

struct Target {
    path: PathBuf,
    kind: FileKind,
    /// The config that includes this file, when it was found that way.
    included_from: Option<PathBuf>,
    editable: bool,
}

/// One credential found in one file.
#[derive(Debug, Serialize)]
pub struct Finding {
    pub file: PathBuf,
    /// The config key (a URL's password shown as `****`), or `line N` in a credentials file.
    pub location: String,
    pub host: String,
    pub kind: SecretKind,
    /// `ATBB… (32 chars)`; never the value.
    pub preview: String,
    pub message: String,
    /// `fix` mode: whether the file no longer holds it; otherwise null.
    pub removed: Option<bool>,
    #[serde(skip)]
    detected: Detected,
}

impl Finding {
    fn new(file: &Path, detected: Detected) -> Self {
        Self {
            file: file.to_path_buf(),
            location: detected.location.clone(),
            host: detected.host.clone(),
            kind: detected.kind,
            preview: detect::preview(&detected.secret.0),
            message: detected.kind.advice().into(),
            removed: None,
            detected,
        }
    }
}

/// Reads `path` whole as UTF-8 (not under a lock: for reporting only).
fn read_text(path: &Path) -> Result<Zeroizing<String>, ScrubError> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| ScrubError::Unreadable {
        path: path.display().to_string(),
        reason: e.kind().to_string(),
    })?);
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        Err(e) => Err(ScrubError::NotUtf8 {
            path: path.display().to_string(),
            offset: e.valid_up_to(),
        }),
    }
}

fn detect_in(
    text: &str,
    kind: FileKind,
    path: &Path,
    hosts: &Hosts,
) -> Result<Vec<Detected>, ScrubError> {
    match kind {
        FileKind::Config => {
            let entries = read::entries(text).map_err(|reason| ScrubError::Unreadable {
                path: path.display().to_string(),
                reason,
            })?;
            Ok(detect::in_config(&entries, hosts))
        }
        FileKind::Credentials => Ok(detect::in_credentials(text, hosts)),
    }
}

/// What a config must list after `edits`: every entry as before, minus the
/// dropped headers, with replaced text replaced in keys and values.
fn expected_after(before: &[read::Entry], edits: &[&Edit]) -> Vec<read::Entry> {
    // Every intermediate copy may hold a value: each is wiped when dropped.
    let replace = |s: &str| {
        let mut acc = Zeroizing::new(s.to_owned());
        for edit in edits {
            if let Edit::Replace { from, to } = edit
                && !from.0.is_empty()
            {
                acc = Zeroizing::new(acc.replace(from.0.as_str(), to));
            }
        }
        acc
    };
    before
        .iter()
        .filter(|(k, v)| {
            let header = detect::ConfigKey::parse(k).is_some_and(|k| k.name == "extraheader");
            !(header
                && edits
                    .iter()
                    .any(|e| matches!(e, Edit::DropHeader(h) if h.0.trim() == v.trim())))
        })
        .map(|(k, v)| (replace(k).to_string(), replace(v)))
        .collect()
}

/// Fixes one file under its lock; returns what was found in the locked content.
fn fix_file(target: &Target, hosts: &Hosts) -> Result<Vec<Detected>, ScrubError> {
    let lock = write::Lock::acquire(&target.path)?;
    let text = lock.content()?;
    let found = detect_in(&text, target.kind, &target.path, hosts)?;
    if found.is_empty() {
        return Ok(found);
    }
    let edits: Vec<&Edit> = found.iter().map(|d| &d.edit).collect();
    let new_text = Zeroizing::new(write::edited(&text, &edits));
    match target.kind {
        FileKind::Config => {
            let before = read::entries(&text).map_err(|reason| ScrubError::Unreadable {
                path: target.path.display().to_string(),
                reason,
            })?;
            let expected = expected_after(&before, &edits);
            lock.commit(&new_text, |written| {
                let text = read_text(written).map_err(|e| e.to_string())?;
                let after = read::entries(&text)?;
                let left = detect::in_config(&after, hosts).len();
                if left > 0 {
                    return Err(format!("{left} credential(s) would remain"));
                }
                // Values other than the removed credentials (another host's
                // token, say) are compared in wiped buffers, never copied out.
                if after != expected {
                    return Err("an entry other than a credential would have changed".into());
                }
                Ok(())
            })?;
        }
        FileKind::Credentials => {
            let dropped = found.len();
            let lines_before = text.lines().count();
            lock.commit(&new_text, |_| {
                let left = detect::in_credentials(&new_text, hosts).len();
                let lines_after = new_text.lines().count();
                if left > 0 || lines_after + dropped != lines_before {
                    return Err("a line other than a credential would have changed".into());
                }
                Ok(())
            })?;
        }
    }
    Ok(found)
}

#[derive(Serialize)]
struct ScrubReport<'a> {
    ok: bool,
    mode: Mode,
    findings: &'a [Finding],
    changed_files: Vec<String>,
    notes: &'a [String],
    errors: Vec<String>,
}

pub fn run(args: &ScrubArgs, env: &dyn Environment) -> Exit {
    let hosts = Hosts::new(&args.hosts);
    let mode = if args.check {
        Mode::Check
    } else if args.dry_run {
        Mode::DryRun
    } else {
        Mode::Fix
    };
    let mut targets: Vec<Target> = Vec::new();
    let mut roots: Vec<PathBuf> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut errors: Vec<ScrubError> = Vec::new();
    let add = |targets: &mut Vec<Target>, path: PathBuf, kind| {
        if !targets.iter().any(|t| t.path == path) {
            targets.push(Target {
                path,
                kind,
                included_from: None,
                editable: true,
            });
        }
    };
    let paths = if args.paths.is_empty() && !args.global {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    for path in &paths {
        match discover::repository(path) {
            Ok(repo) => {
                repo.configs
                    .into_iter()
                    .for_each(|c| add(&mut targets, c, FileKind::Config));
                roots.extend(repo.roots);
                notes.extend(repo.notes);
            }
            Err(e) => errors.push(e),
        }
    }
    if args.global {
        let global = discover::global(env);
        global
            .configs
            .into_iter()
            .for_each(|c| add(&mut targets, c, FileKind::Config));
        global
            .credentials
            .into_iter()
            .for_each(|c| add(&mut targets, c, FileKind::Credentials));
        roots.extend(global.roots);
    }
    // The files the configs include: git reads them as part of the config.
    let configs: Vec<PathBuf> = targets
        .iter()
        .filter(|t| t.kind == FileKind::Config)
        .map(|t| t.path.clone())
        .collect();
    for config in configs {
        match read::included_files(&config) {
            Ok(files) => {
                for file in files {
                    if targets.iter().any(|t| t.path == file) {
                        continue;
                    }
                    let editable = roots.iter().any(|r| file.starts_with(r));
                    targets.push(Target {
                        path: file,
                        kind: FileKind::Config,
                        included_from: Some(config.clone()),
                        editable,
                    });
                }
            }
            Err(reason) => errors.push(ScrubError::Unreadable {
                path: config.display().to_string(),
                reason,
            }),
        }
    }

    let mut findings: Vec<Finding> = Vec::new();
    let mut changed: Vec<String> = Vec::new();
    for target in &targets {
        let found = read_text(&target.path)
            .and_then(|text| detect_in(&text, target.kind, &target.path, &hosts));
        let found = match found {
            Ok(found) => found,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if found.is_empty() {
            continue;
        }
        if mode != Mode::Fix {
            findings.extend(found.into_iter().map(|d| Finding::new(&target.path, d)));
            continue;
        }
        if !target.editable {
            errors.push(ScrubError::Outside {
                path: target.path.display().to_string(),
                from: target
                    .included_from
                    .as_deref()
                    .unwrap_or(Path::new("?"))
                    .display()
                    .to_string(),
            });
            findings.extend(found.into_iter().map(|d| {
                let mut f = Finding::new(&target.path, d);
                f.removed = Some(false);
                f
            }));
            continue;
        }
        // Detect again under the lock, and report what was really there.
        match fix_file(target, &hosts) {
            Ok(locked) => {
                changed.push(target.path.display().to_string());
                findings.extend(locked.into_iter().map(|d| {
                    let mut f = Finding::new(&target.path, d);
                    f.removed = Some(true);
                    f
                }));
            }
            Err(e) => {
                errors.push(e);
                findings.extend(found.into_iter().map(|d| {
                    let mut f = Finding::new(&target.path, d);
                    f.removed = Some(false);
                    f
                }));
            }
        }
    }
    // Whatever we print next is masked with what we found.
    let secrets: Vec<Secret> = findings
        .iter()
        .map(|f| Secret::new(f.detected.secret.0.to_string()))
        .collect();
    let (patterns, _) =
        crate::redact::Patterns::for_secrets(secrets.iter().map(|s| (s, vec![], String::new())));
    crate::redact::set_global(patterns.map(std::sync::Arc::new));

    let ok = errors.is_empty() && (mode == Mode::Fix || findings.is_empty());
    let written = match args.format {
        Format::Json => {
            let report = ScrubReport {
                ok,
                mode,
                findings: &findings,
                changed_files: changed,
                notes: &notes,
                errors: errors.iter().map(ToString::to_string).collect(),
            };
            let text = serde_json::to_string_pretty(&report).unwrap_or_default();
            crate::error::write_report(&text)
        }
        Format::Text => {
            let text = text_report(
                &findings,
                mode,
                changed.len(),
                targets.len(),
                !errors.is_empty(),
            );
            crate::error::write_report(&text)
        }
    };
    for note in &notes {
        crate::error::print_note(note);
    }
    // One hint per kind of error, after the last error of that kind.
    for (i, e) in errors.iter().enumerate() {
        let hint = e.hint();
        let last_of_its_hint = errors[i + 1..].iter().all(|later| later.hint() != hint);
        crate::error::print_error(&e.to_string(), last_of_its_hint.then_some(hint));
    }
    if let Err(reason) = written {
        crate::error::print_error(&reason, Some("check where stdout goes (a full disk?)"));
        return Exit::Usage;
    }
    if !errors.is_empty() {
        Exit::Usage
    } else if mode == Mode::Check && !findings.is_empty() {
        Exit::Found
    } else {
        Exit::Success
    }
}

fn text_report(
    findings: &[Finding],
    mode: Mode,
    changed: usize,
    files: usize,
    failed: bool,
) -> String {
    let mut out = String::new();
    for f in findings {
        let verb = match (mode, f.removed) {
            (Mode::Fix, Some(true)) => "removed",
            (Mode::Fix, _) => "could NOT remove",
            (Mode::DryRun, _) => "would remove",
            (Mode::Check, _) => "found",
        };
        out.push_str(&format!(
            "{}: {}: {verb} a credential for {} ({}), {}\n",
            f.file.display(),
            f.location,
            f.host,
            f.preview,
            f.message
        ));
    }
    let n = findings.len();
    let gone = findings.iter().filter(|f| f.removed == Some(true)).count();
    match (n, mode) {
        // With errors, "none found" would claim more than was looked at.
        (0, _) if failed => {}
        (0, _) => out.push_str(&format!(
            "no Bitbucket credentials found in {files} file(s)\n"
        )),
        (n, Mode::Fix) if gone == n => out.push_str(&format!(
            "{n} credential(s) removed from {changed} file(s); revoke them, they were on disk\n"
        )),
        (n, Mode::Fix) => out.push_str(&format!(
            "{gone} of {n} credential(s) removed; see the errors below\n"
        )),
        (n, Mode::DryRun) => out.push_str(&format!(
            "{n} credential(s) would be removed; run without --dry-run to do it\n"
        )),
        (n, Mode::Check) => out.push_str(&format!(
            "{n} credential(s) found; run `bbinject scrub` to remove them\n"
        )),
    }
    out
}
