//! `bbinject scrub`: finds Bitbucket credentials already embedded in git
//! repositories and git config (remote and submodule URLs, `insteadOf` rules,
//! `http.extraHeader` Authorization lines, `~/.git-credentials`), reports them
//! with a masked preview, and rewrites them clean.
//!
//! Reading uses git's own parser (`git config --file F --null --list`), so
//! includes, quoting and continuation lines are understood as git understands
//! them. Writing is a surgical text edit instead of `git config --unset` /
//! `--rename-section`: those would need the old value (the secret) on git's
//! command line, where any process can read it. Each edit replaces exactly the
//! `scheme://userinfo@` prefix, or drops the one header line, so comments and
//! everything else stay byte for byte. Files are written the way git writes
//! them: an exclusive `F.lock`, written, synced, re-parsed by git to prove the
//! result, then renamed over `F`. A concurrent git writer is detected, and a
//! crash leaves either the old file or the new one. No report, log or error
//! contains a value.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::cli::{Format, ScrubArgs};
use crate::credential::Environment;
use crate::error::ExitCode;
use crate::redact::eprint_line;
use crate::secret::Secret;

const STATIC_USERNAMES: [&str; 2] = ["x-token-auth", "x-bitbucket-api-token-auth"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    AppPassword,
    ApiToken,
    AccessToken,
    Unknown,
}

impl SecretKind {
    fn classify(username: Option<&str>, secret: &str) -> Self {
        if secret.starts_with("ATBB") {
            SecretKind::AppPassword
        } else if secret.starts_with("ATATT") || username == Some("x-bitbucket-api-token-auth") {
            SecretKind::ApiToken
        } else if secret.starts_with("ATCTT") || username == Some("x-token-auth") {
            SecretKind::AccessToken
        } else {
            SecretKind::Unknown
        }
    }

    fn advice(self) -> &'static str {
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

/// One credential found in one file.
#[derive(Debug, Serialize)]
pub struct Finding {
    pub file: PathBuf,
    /// The config key, or `line N` in a credentials file.
    pub location: String,
    pub host: String,
    pub kind: SecretKind,
    /// `ATBB… (32 chars)`; never the value.
    pub preview: String,
    pub message: String,
    #[serde(skip)]
    edit: Edit,
    #[serde(skip)]
    secret: SecretText,
}

/// The value, kept only to mask it in our own output.
struct SecretText(Zeroizing<String>);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

#[derive(Debug)]
enum Edit {
    /// Replace this exact text (a URL prefix with userinfo) everywhere in the file.
    Replace { from: SecretText, to: String },
    /// Drop the `extraHeader` line carrying this value.
    DropHeader(SecretText),
    /// Drop line `n` (0-based) of a credentials file.
    DropLine(usize),
}

/// Credentials in the authority of a URL, found by text, not by a URL parser,
/// so the rewritten URL differs from the original in the userinfo only.
struct UrlCredentials {
    /// `https://user:secret@host:port`
    with: String,
    /// `https://user@host:port`, or without the user for a static token username.
    without: String,
    host: String,
    username: Option<String>,
    secret: Zeroizing<String>,
}

fn url_credentials(url: &str) -> Option<UrlCredentials> {
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
    let host = host_of(hostport);
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
        without,
        host,
        username,
        secret: Zeroizing::new(decode(password)),
    })
}

/// `Host:port` or `[v6]:port` → lower-case host without port or brackets.
fn host_of(hostport: &str) -> String {
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        hostport.split(':').next().unwrap_or_default()
    };
    host.to_ascii_lowercase()
}

fn preview(secret: &str) -> String {
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
    pub fn new(extra: &[String]) -> Self {
        let mut hosts = vec!["bitbucket.org".to_owned()];
        for h in extra {
            let h = h.split("://").last().unwrap_or(h);
            let hostport = h.split('/').next().unwrap_or(h);
            hosts.push(host_of(hostport));
        }
        Self(hosts)
    }

    fn contains(&self, host: &str) -> bool {
        self.0.iter().any(|h| h == host)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScrubError {
    #[error("{path}: not a git repository (no .git, and not a bare repository)")]
    NotARepository { path: String },
    #[error("{path}: git cannot read it: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("{path}: another process is writing it ({lock} exists); nothing was changed")]
    Locked { path: String, lock: String },
    #[error("{path}: cannot be written ({reason}); nothing was changed")]
    Unwritable { path: String, reason: String },
    #[error("{path}: the rewritten file did not check out ({reason}); nothing was changed")]
    Verification { path: String, reason: String },
}

/// The config files of the repository at `path` (work tree, `.git` file of a
/// worktree or submodule, or bare repository), with submodules' and worktrees'.
fn repository_configs(path: &Path) -> Result<Vec<PathBuf>, ScrubError> {
    let dot_git = path.join(".git");
    let git_dir = if dot_git.is_dir() {
        dot_git
    } else if dot_git.is_file() {
        let text = std::fs::read_to_string(&dot_git).unwrap_or_default();
        let target = text
            .trim()
            .strip_prefix("gitdir:")
            .map(str::trim)
            .unwrap_or_default();
        path.join(target)
    } else if path.join("config").is_file() && path.join("HEAD").is_file() {
        path.to_path_buf()
    } else {
        return Err(ScrubError::NotARepository {
            path: path.display().to_string(),
        });
    };
    let common = match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(rel) => git_dir.join(rel.trim()),
        Err(_) => git_dir.clone(),
    };
    let mut configs = vec![common.join("config"), git_dir.join("config.worktree")];
    let mut stack = vec![common.join("modules"), common.join("worktrees")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(
                p.file_name().and_then(|n| n.to_str()),
                Some("config" | "config.worktree")
            ) {
                configs.push(p);
            }
        }
    }
    configs.retain(|p| p.is_file());
    configs.sort();
    configs.dedup();
    Ok(configs)
}

/// `(key, value)` of every entry, read by git.
fn config_entries(file: &Path) -> Result<Vec<(String, Zeroizing<String>)>, String> {
    let output = std::process::Command::new("git")
        .args(["config", "--no-includes", "--null", "--list", "--file"])
        .arg(file)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    let stdout = Zeroizing::new(output.stdout);
    if !output.status.success() {
        // git's message names the file and line, never a value.
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(stderr
            .lines()
            .next()
            .unwrap_or("git config failed")
            .to_owned());
    }
    Ok(stdout
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let text = String::from_utf8_lossy(entry);
            let (key, value) = text.split_once('\n').unwrap_or((&text, ""));
            (key.to_owned(), Zeroizing::new(value.to_owned()))
        })
        .collect())
}

fn config_findings(file: &Path, hosts: &Hosts) -> Result<Vec<Finding>, ScrubError> {
    let entries = config_entries(file).map_err(|reason| ScrubError::Unreadable {
        path: file.display().to_string(),
        reason,
    })?;
    let mut findings = Vec::new();
    for (key, value) in entries {
        let lower = key.to_ascii_lowercase();
        let url_valued = (lower.starts_with("remote.")
            && (lower.ends_with(".url") || lower.ends_with(".pushurl")))
            || (lower.starts_with("submodule.") && lower.ends_with(".url"));
        let instead_of = lower.starts_with("url.")
            && (lower.ends_with(".insteadof") || lower.ends_with(".pushinsteadof"));
        if url_valued || instead_of {
            let url = if instead_of {
                let suffix = key.len()
                    - if lower.ends_with(".pushinsteadof") {
                        14
                    } else {
                        10
                    };
                key[4..suffix].to_owned()
            } else {
                value.to_string()
            };
            if let Some(c) = url_credentials(&url).filter(|c| hosts.contains(&c.host)) {
                let kind = SecretKind::classify(c.username.as_deref(), &c.secret);
                findings.push(Finding {
                    file: file.to_path_buf(),
                    location: key.clone(),
                    host: c.host.clone(),
                    kind,
                    preview: preview(&c.secret),
                    message: kind.advice().into(),
                    edit: Edit::Replace {
                        from: SecretText(Zeroizing::new(c.with)),
                        to: c.without,
                    },
                    secret: SecretText(c.secret),
                });
            }
        } else if lower == "http.extraheader"
            || (lower.starts_with("http.") && lower.ends_with(".extraheader"))
        {
            let header = value.trim();
            let Some(credential) = header
                .split_once(':')
                .filter(|(name, _)| name.trim().eq_ignore_ascii_case("authorization"))
                .map(|(_, rest)| rest.trim())
            else {
                continue;
            };
            let scope = &key[5..key.len() - ".extraheader".len()];
            let host = if scope.is_empty() {
                // Unscoped: sent to every host, Bitbucket included.
                "every host".to_owned()
            } else {
                match scope.find("://") {
                    Some(i) => host_of(scope[i + 3..].split('/').next().unwrap_or_default()),
                    None => continue,
                }
            };
            if !scope.is_empty() && !hosts.contains(&host) {
                continue;
            }
            let (scheme, token) = credential.split_once(' ').unwrap_or(("", credential));
            let (username, secret) = if scheme.eq_ignore_ascii_case("basic") {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(token.trim())
                    .unwrap_or_default();
                let decoded = Zeroizing::new(String::from_utf8_lossy(&decoded).into_owned());
                match decoded.split_once(':') {
                    Some((u, p)) => (Some(u.to_owned()), Zeroizing::new(p.to_owned())),
                    None => (None, Zeroizing::new(token.to_owned())),
                }
            } else {
                (None, Zeroizing::new(token.trim().to_owned()))
            };
            let kind = SecretKind::classify(username.as_deref(), &secret);
            findings.push(Finding {
                file: file.to_path_buf(),
                location: key.clone(),
                host,
                kind,
                preview: preview(&secret),
                message: kind.advice().into(),
                edit: Edit::DropHeader(SecretText(Zeroizing::new(value.to_string()))),
                secret: SecretText(Zeroizing::new(token.trim().to_owned())),
            });
        }
    }
    Ok(findings)
}

fn credentials_findings(file: &Path, hosts: &Hosts) -> Result<Vec<Finding>, ScrubError> {
    let text =
        Zeroizing::new(
            std::fs::read_to_string(file).map_err(|e| ScrubError::Unreadable {
                path: file.display().to_string(),
                reason: e.kind().to_string(),
            })?,
        );
    Ok(text
        .lines()
        .enumerate()
        .filter_map(|(n, line)| {
            let c = url_credentials(line.trim()).filter(|c| hosts.contains(&c.host))?;
            let kind = SecretKind::classify(c.username.as_deref(), &c.secret);
            Some(Finding {
                file: file.to_path_buf(),
                location: format!("line {}", n + 1),
                host: c.host,
                kind,
                preview: preview(&c.secret),
                message: kind.advice().into(),
                edit: Edit::DropLine(n),
                secret: SecretText(c.secret),
            })
        })
        .collect())
}

/// The file's text with `edits` applied.
fn edited(text: &str, edits: &[&Edit]) -> String {
    let mut out = text.to_owned();
    for edit in edits {
        if let Edit::Replace { from, to } = edit {
            out = out.replace(from.0.as_str(), to);
        }
    }
    let drop_lines: Vec<usize> = edits
        .iter()
        .filter_map(|e| match e {
            Edit::DropLine(n) => Some(*n),
            _ => None,
        })
        .collect();
    let drop_headers: Vec<&str> = edits
        .iter()
        .filter_map(|e| match e {
            Edit::DropHeader(v) => Some(v.0.as_str()),
            _ => None,
        })
        .collect();
    if drop_lines.is_empty() && drop_headers.is_empty() {
        return out;
    }
    let mut kept = String::with_capacity(out.len());
    for (n, line) in out.split_inclusive('\n').enumerate() {
        let is_header = line
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("extraheader")
            && drop_headers.iter().any(|v| line.contains(v));
        if !drop_lines.contains(&n) && !is_header {
            kept.push_str(line);
        }
    }
    kept
}

/// A check of the locked, rewritten file before it replaces the original.
type Verify<'a> = dyn Fn(&Path) -> Result<(), String> + 'a;

/// Writes `text` to `file` the way git does: exclusive `file.lock`, write,
/// sync, optionally verify, rename. The lock is removed on every failure.
fn write_locked(file: &Path, text: &str, verify: Option<&Verify<'_>>) -> Result<(), ScrubError> {
    let shown = file.display().to_string();
    let lock = PathBuf::from(format!("{}.lock", file.display()));
    let mode = std::fs::metadata(file)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    let mut handle = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&lock)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(ScrubError::Locked {
                path: shown,
                lock: lock.display().to_string(),
            });
        }
        Err(e) => {
            return Err(ScrubError::Unwritable {
                path: shown,
                reason: e.kind().to_string(),
            });
        }
    };
    let result = (|| {
        handle
            .write_all(text.as_bytes())
            .and_then(|()| handle.sync_all())
            .map_err(|e| ScrubError::Unwritable {
                path: shown.clone(),
                reason: e.kind().to_string(),
            })?;
        // create_new applies the umask: give the new file the old file's mode.
        let _ = std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(mode));
        if let Some(check) = verify {
            check(&lock).map_err(|reason| ScrubError::Verification {
                path: shown.clone(),
                reason,
            })?;
        }
        std::fs::rename(&lock, file).map_err(|e| ScrubError::Unwritable {
            path: shown.clone(),
            reason: e.kind().to_string(),
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&lock);
    }
    result
}

fn global_files(env: &dyn Environment) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let var = |n: &str| env.var_os(n).filter(|v| !v.is_empty()).map(PathBuf::from);
    let home = var("HOME").unwrap_or_default();
    let xdg = var("XDG_CONFIG_HOME").unwrap_or_else(|| home.join(".config"));
    let configs = vec![
        var("GIT_CONFIG_GLOBAL").unwrap_or_else(|| home.join(".gitconfig")),
        xdg.join("git/config"),
    ];
    let credentials = vec![home.join(".git-credentials"), xdg.join("git/credentials")];
    (
        configs.into_iter().filter(|p| p.is_file()).collect(),
        credentials.into_iter().filter(|p| p.is_file()).collect(),
    )
}

#[derive(Serialize)]
struct Report<'a> {
    ok: bool,
    mode: &'static str,
    findings: &'a [Finding],
    changed_files: Vec<String>,
    errors: Vec<String>,
}

pub fn run(args: &ScrubArgs, env: &dyn Environment) -> ExitCode {
    let hosts = Hosts::new(&args.hosts);
    let mut configs = Vec::new();
    let mut credentials = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let paths = if args.paths.is_empty() && !args.global {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    for path in &paths {
        match repository_configs(path) {
            Ok(found) => configs.extend(found),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if args.global {
        let (c, k) = global_files(env);
        configs.extend(c);
        credentials.extend(k);
    }

    let mut findings: Vec<Finding> = Vec::new();
    for file in &configs {
        match config_findings(file, &hosts) {
            Ok(f) => findings.extend(f),
            Err(e) => errors.push(e.to_string()),
        }
    }
    for file in &credentials {
        match credentials_findings(file, &hosts) {
            Ok(f) => findings.extend(f),
            Err(e) => errors.push(e.to_string()),
        }
    }
    // Whatever we print next is masked with what we found.
    let secrets: Vec<Secret> = findings
        .iter()
        .map(|f| Secret::new(f.secret.0.to_string()))
        .collect();
    let (patterns, _) =
        crate::redact::Patterns::for_secrets(secrets.iter().map(|s| (s, vec![], String::new())));
    crate::redact::set_global(patterns.map(std::sync::Arc::new));

    let mode = if args.check {
        "check"
    } else if args.dry_run {
        "dry-run"
    } else {
        "fix"
    };
    let mut changed = Vec::new();
    if mode == "fix" {
        let mut files: Vec<&PathBuf> = findings.iter().map(|f| &f.file).collect();
        files.sort();
        files.dedup();
        for file in files {
            let edits: Vec<&Edit> = findings
                .iter()
                .filter(|f| &f.file == file)
                .map(|f| &f.edit)
                .collect();
            let is_config = configs.contains(file);
            let result = std::fs::read_to_string(file)
                .map(Zeroizing::new)
                .map_err(|e| ScrubError::Unreadable {
                    path: file.display().to_string(),
                    reason: e.kind().to_string(),
                })
                .and_then(|text| {
                    let new_text = Zeroizing::new(edited(&text, &edits));
                    let verify = |lock: &Path| -> Result<(), String> {
                        let left = config_findings(lock, &hosts).map_err(|e| e.to_string())?;
                        if left.is_empty() {
                            Ok(())
                        } else {
                            Err(format!("{} credentials would remain", left.len()))
                        }
                    };
                    write_locked(
                        file,
                        &new_text,
                        if is_config { Some(&verify) } else { None },
                    )
                });
            match result {
                Ok(()) => changed.push(file.display().to_string()),
                Err(e) => errors.push(e.to_string()),
            }
        }
    }

    let ok = errors.is_empty() && (mode == "fix" || findings.is_empty());
    match args.format {
        Format::Json => {
            let report = Report {
                ok,
                mode,
                findings: &findings,
                changed_files: changed,
                errors: errors.clone(),
            };
            let text = serde_json::to_string_pretty(&report).unwrap_or_default();
            let _ = std::io::stdout()
                .lock()
                .write_all(&crate::redact::redact_own(format!("{text}\n").as_bytes()));
        }
        Format::Text => {
            let mut out = String::new();
            let removed = |f: &Finding| changed.contains(&f.file.display().to_string());
            for f in &findings {
                let verb = match mode {
                    "fix" if removed(f) => "removed",
                    "fix" => "could NOT remove",
                    "dry-run" => "would remove",
                    _ => "found",
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
            let gone = findings.iter().filter(|f| removed(f)).count();
            out.push_str(&match (findings.len(), mode) {
                (0, _) => "no Bitbucket credentials found\n".to_owned(),
                (n, "fix") if gone == n => format!(
                    "{n} credential(s) removed from {} file(s); revoke them, they were on disk\n",
                    changed.len()
                ),
                (n, "fix") => {
                    format!("{gone} of {n} credential(s) removed; see the errors below\n")
                }
                (n, "dry-run") => {
                    format!("{n} credential(s) would be removed; run without --dry-run to do it\n")
                }
                (n, _) => format!("{n} credential(s) found; run `bbinject scrub` to remove them\n"),
            });
            let _ = std::io::stdout()
                .lock()
                .write_all(&crate::redact::redact_own(out.as_bytes()));
        }
    }
    for e in &errors {
        eprint_line(&format!("bbinject: error: {e}"));
    }
    if !errors.is_empty() {
        eprint_line(
            "hint: nothing was lost: every file was either rewritten whole or left as it was",
        );
        ExitCode::Usage
    } else if mode == "check" && !findings.is_empty() {
        ExitCode::Found
    } else {
        ExitCode::Success
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                "::1",
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
    fn hosts_match_exactly() {
        let hosts = Hosts::new(&["[::1]:7990".into(), "https://git.example.com/".into()]);
        for (host, expected) in [
            ("bitbucket.org", true),
            ("::1", true),
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
