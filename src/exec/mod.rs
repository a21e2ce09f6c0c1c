//! `bbinject exec -- CMD ARGS…`: resolve, preflight, start the broker, run the
//! child with an environment that lets git ask the broker, supervise it
//! (Unix: forward signals and reap, `unix.rs`; Windows: a job object and
//! Ctrl-C, `windows.rs`), clean up, and exit with the child's status
//! (ARCHITECTURE.md §5).
//!
//! The child's environment never holds the secret: it gets the socket path
//! (or pipe name) and a capability that dies with this process, `GIT_ASKPASS`
//! pointing at this binary, and git config entries appended through
//! `GIT_CONFIG_COUNT`. The variables that held secrets are removed from it
//! (unless `--keep-env`).
//! The child's stdout and stderr are pipes read by two threads, each through
//! its own [`Redactor`] (unless `--no-redact`), so every printable form of
//! every secret of the run is masked before it reaches the build log.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use crate::broker::audit::AuditLog;
use crate::broker::server::{Broker, Limits, Vault};
use crate::broker::transport::Endpoint;
use crate::broker::{ENV_CAPABILITY, ENV_SOCKET, capability, child_env};
use crate::cli::ExecArgs;
use crate::credential::Environment;
use crate::error::{Error, Exit};
use crate::redact::{self, Patterns, Redactor, eprint_line};
use crate::secret::Secret;
use crate::settings::{self, Prepared};

/// Why git's traces could carry the credential where we cannot mask it:
/// `GIT_TRACE_REDACT=0` with `--no-redact`, or with a trace written to a file.
fn unmaskable_trace(env: &dyn Environment, no_redact: bool) -> Option<String> {
    let redact_off = env
        .var_os("GIT_TRACE_REDACT")
        .is_some_and(|v| matches!(v.to_str(), Some("0" | "false" | "no" | "off")));
    if !redact_off {
        return None;
    }
    if no_redact {
        return Some("--no-redact lets them into the log".into());
    }
    // A value starting with `/` is a file git appends to (0, 1, 2, true: stderr).
    [
        "GIT_TRACE",
        "GIT_TRACE_CURL",
        "GIT_TRACE_PACKET",
        "GIT_TRACE2",
        "GIT_TRACE2_EVENT",
        "GIT_TRACE2_PERF",
    ]
    .iter()
    .find(|name| {
        env.var_os(name)
            .is_some_and(|v| v.to_string_lossy().starts_with('/'))
    })
    .map(|name| format!("{name} writes them to a file bbinject cannot mask"))
}

/// How long the output pumps may go on after the child exits (a background
/// process it left behind may keep the pipes open).
const PUMP_GRACE: Duration = Duration::from_secs(5);
/// How much of the child's output one read takes.
const READ_SIZE: usize = 256 * 1024;

pub async fn run(args: &ExecArgs, env: &dyn Environment) -> Result<Exit, Error> {
    let Prepared {
        mut set,
        settings,
        repos,
        allow,
        proxies,
        patterns: known_patterns,
    } = settings::prepare(&args.probe, &args.repos, &args.hosts, env)?;
    let exe = child_env::current_exe().map_err(Error::BrokerSetup)?;
    let allow_repos =
        settings::allow_list(&args.broker.allow_repos, args.broker.allow_checked, &repos)?;
    let git_config = child_env::git_config_entries(
        env.var_os("GIT_CONFIG_COUNT").as_deref(),
        allow.origins(),
        &child_env::helper_command(&exe),
        child_env::ChildOptions {
            rewrite_ssh: args.broker.rewrite_ssh || set.defaults.rewrite_ssh,
            no_redirects: !allow_repos.is_empty() || set.limits_repositories(),
        },
    )?;
    let child_defaults = child_env::defaults_for_child(env);
    let child_no_proxy = child_env::no_proxy_for_child(env, allow.origins());
    let secret_variables = set.secret_variables();
    if args.broker.consume_secret_files {
        for label in set.consume_secret_files()? {
            tracing::info!("consumed {label}: the build cannot open it");
        }
    }

    let starting = format!("not starting {}", args.command[0].to_string_lossy());
    let bearers =
        match settings::preflight_and_tokens(&set, &repos, &settings, args.no_preflight, &starting)
            .await?
        {
            Ok(bearers) => bearers,
            Err(code) => return Ok(code),
        };

    // Only OAuth bearer tokens add secrets after set-up; building the
    // automaton again for thousands of credentials would cost as much again.
    let (patterns, too_short) = if bearers.iter().any(Option::is_some) {
        let tokens: Vec<Option<&Secret>> = bearers
            .iter()
            .map(|b| b.as_ref().map(|b| &b.token))
            .collect();
        Patterns::for_run(&set, &tokens, &proxies)
    } else {
        known_patterns
    };
    redact::set_global(patterns.clone());
    for source in too_short {
        eprint_line(&format!(
            "bbinject: warning: the secret from {source} is shorter than {} bytes and is not masked in output",
            redact::MIN_SECRET_LEN
        ));
    }
    let patterns = patterns.filter(|_| !args.no_redact);
    if let Some(reason) = unmaskable_trace(env, args.no_redact) {
        crate::error::print_warning(
            &format!("GIT_TRACE_REDACT=0 makes git trace its Authorization headers, and {reason}"),
            "unset GIT_TRACE_REDACT (git then redacts them itself), or trace to stderr without --no-redact",
        );
    }

    let audit = match &args.broker.audit_log {
        Some(path) => Some(AuditLog::open(path).map_err(|reason| Error::AuditLog {
            path: path.display().to_string(),
            reason,
        })?),
        None => None,
    };
    let endpoint = Endpoint::create().map_err(Error::BrokerSetup)?;
    let capability = capability::generate().map_err(Error::BrokerSetup)?;
    let child_capability = OsString::from(capability.expose());
    let broker = Broker::start(
        &endpoint,
        Vault::from_set(set, bearers, &settings.mint()),
        Limits {
            allow,
            max_uses: args.max_uses,
            stop_when_used_up: false,
            revocable: false,
            allow_repos,
        },
        capability,
        audit,
    )
    .map_err(Error::BrokerSetup)?;

    let mut command = std::process::Command::new(&args.command[0]);
    command.args(&args.command[1..]);
    if !args.keep_env {
        for name in secret_variables
            .iter()
            .map(String::as_str)
            .chain(crate::credential::SECRET_VARIABLES)
        {
            command.env_remove(name);
            command.env_remove(format!("{name}_FILE"));
        }
        // Where secrets are (a config may hold inline ones): not the build's business.
        for name in crate::credential::LOCATION_VARIABLES {
            command.env_remove(name);
        }
    }
    command
        .env("GIT_ASKPASS", &exe)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env(ENV_SOCKET, endpoint.address())
        .env(ENV_CAPABILITY, &child_capability)
        .envs(child_defaults)
        .envs(child_no_proxy)
        .envs(git_config);
    drop(child_capability);
    // One pipe for both streams when they end up in one log: a secret split
    // between them is then masked as the log shows it.
    let mut merged = None;
    if patterns.is_some() {
        if args.merge_output || platform::same_output() {
            let (reader, writer) = std::io::pipe().map_err(Error::BrokerSetup)?;
            command
                .stdout(writer.try_clone().map_err(Error::BrokerSetup)?)
                .stderr(writer);
            merged = Some(reader);
        } else {
            command
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
        }
    }

    // Before the child exists: signal handlers (so its exit cannot be missed,
    // and a signal for it does not end us first), and on Windows the job
    // object its whole process tree will be in.
    let supervisor = platform::Supervisor::new().map_err(Error::BrokerSetup)?;
    supervisor.prepare(&mut command);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let name = args.command[0].to_string_lossy();
            let (code, what) = match e.kind() {
                std::io::ErrorKind::NotFound => (Exit::CommandNotFound, "command not found"),
                std::io::ErrorKind::PermissionDenied => (Exit::CannotExecute, "permission denied"),
                _ => (Exit::CannotExecute, "cannot be started"),
            };
            crate::error::print_error(
                &format!("cannot run `{name}`: {what}"),
                Some("check the command after `--` and the PATH of the build agent"),
            );
            return Ok(code);
        }
    };
    // Our copies of the merged pipe's write end: the reader sees its end
    // only once the child's are the last ones.
    drop(command);
    supervisor.started(&mut child).map_err(Error::BrokerSetup)?;
    let pumps = match (patterns, merged) {
        (Some(p), Some(reader)) => vec![spawn_pump(reader, p, Stream::Stdout)],
        (Some(p), None) => start_pumps(&mut child, p),
        (None, _) => Vec::new(),
    };
    let status = platform::supervise(child, supervisor)
        .await
        .map_err(Error::BrokerSetup)?;
    // The command is over: what it left behind gets no credential, even
    // while its output is still drained.
    broker.end();
    finish_pumps(pumps).await;
    tracing::info!(uses = broker.uses(), "child exited; broker stops");
    tracing::info!("{}", broker.summary());
    broker.sync_audit();
    let lost = broker.audit_records_lost();
    drop(broker);
    drop(endpoint);
    if lost > 0 {
        // An audit trail with holes is not a passing step: the command's own
        // failure wins, a success becomes exit 2.
        crate::error::print_error(
            &format!("{lost} audit record(s) could not be written to --audit-log"),
            Some(
                "check the disk and the path of --audit-log; the records missing are not anywhere else",
            ),
        );
        if status == Exit::Child(0) {
            return Ok(Exit::Usage);
        }
    }
    Ok(status)
}

#[cfg(unix)]
#[path = "unix.rs"]
mod platform;
#[cfg(windows)]
#[path = "windows.rs"]
mod platform;

pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// Starts one thread per child stream, each copying through its own redactor.
fn start_pumps(
    child: &mut std::process::Child,
    patterns: Arc<Patterns>,
) -> Vec<tokio::sync::oneshot::Receiver<()>> {
    platform::enlarge_pipes(child);
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        let patterns = patterns.clone();
        pumps.push(spawn_pump(out, patterns, Stream::Stdout));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(spawn_pump(err, patterns, Stream::Stderr));
    }
    pumps
}

/// Copies `from` to our stdout or stderr through a redactor until EOF, or
/// until our side is closed (then the child sees a broken pipe, as it would
/// without us).
///
/// A secret renewed while the child runs (a re-minted OAuth token, a rotated
/// secret file) is added to the global patterns before the broker hands it
/// out; after every read the pump checks their generation and continues with
/// the new set, so the new value is masked from its first use.
fn pump(mut from: impl Read, patterns: Arc<Patterns>, to: Stream) {
    let mut seen = redact::generation();
    let mut current = patterns;
    let mut redactor = Redactor::new(&current);
    let mut buf = zeroize::Zeroizing::new(vec![0u8; READ_SIZE]);
    let mut out = platform::output(to);
    loop {
        let chunk = match from.read(&mut buf[..]) {
            Ok(0) => None,
            Ok(n) => Some(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => None,
        };
        if redact::generation() != seen {
            let (generation, renewed) = redact::global();
            seen = generation;
            if let Some(renewed) = renewed {
                let carry = redactor.into_carry();
                current = renewed;
                redactor = Redactor::resume(&current, carry);
            }
        }
        let delivered = deliver(&mut redactor, chunk, &mut out);
        if chunk.is_none() || delivered.is_err() {
            return;
        }
    }
}

/// Feeds `chunk` (or, at the end, finishes) into `out`.
fn deliver(
    redactor: &mut Redactor<'_>,
    chunk: Option<&[u8]>,
    out: &mut impl Write,
) -> std::io::Result<()> {
    match chunk {
        Some(bytes) => redactor.feed(bytes, out),
        None => redactor.finish(out),
    }
}

/// A plain thread per stream (not tokio's blocking pool, whose idle threads
/// would be joined at shutdown); it reports on the channel when it is done.
fn spawn_pump(
    from: impl Read + Send + 'static,
    patterns: Arc<Patterns>,
    to: Stream,
) -> tokio::sync::oneshot::Receiver<()> {
    let (done, finished) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        pump(from, patterns, to);
        let _ = done.send(());
    });
    finished
}

/// Waits for the pumps to drain, but not forever: bytes still held back then
/// (a possible secret prefix) are dropped, never printed.
async fn finish_pumps(pumps: Vec<tokio::sync::oneshot::Receiver<()>>) {
    let deadline = tokio::time::Instant::now() + PUMP_GRACE;
    for pump in pumps {
        if tokio::time::timeout_at(deadline, pump).await.is_err() {
            tracing::warn!("the child's output is still open after it exited; not waiting longer");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, OsString> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect()
    }

    /// Environment, `--no-redact`, and a word the reason must hold (if any).
    type TraceCase<'a> = (&'a [(&'a str, &'a str)], bool, Option<&'a str>);

    #[test]
    fn a_trace_that_cannot_be_masked_is_named() {
        let cases: [TraceCase<'_>; 6] = [
            (&[], true, None),
            (&[("GIT_TRACE_CURL", "/tmp/t")], false, None),
            (&[("GIT_TRACE_REDACT", "0")], false, None),
            (&[("GIT_TRACE_REDACT", "0")], true, Some("--no-redact")),
            (
                &[("GIT_TRACE_REDACT", "0"), ("GIT_TRACE_CURL", "/tmp/t")],
                false,
                Some("GIT_TRACE_CURL"),
            ),
            (
                &[("GIT_TRACE_REDACT", "0"), ("GIT_TRACE_CURL", "1")],
                false,
                None,
            ),
        ];
        for (pairs, no_redact, expected) in cases {
            let reason = unmaskable_trace(&env(pairs), no_redact);
            match expected {
                None => assert!(reason.is_none(), "{pairs:?}: {reason:?}"),
                Some(word) => assert!(
                    reason.as_deref().is_some_and(|r| r.contains(word)),
                    "{pairs:?}: {reason:?}"
                ),
            }
        }
    }
}
