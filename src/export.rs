//! `bbinject export`: for build steps `exec` cannot wrap. It resolves and
//! preflights like `exec`, starts a detached broker (its own process and
//! session, living until `--ttl`, `--max-uses` or `export --revoke`), and prints
//! the environment assignments that let git in later commands ask it, in the
//! syntax of the caller's shell or CI.
//!
//! The secret reaches the detached broker over a pipe (its stdin), never
//! through argv, the environment or a file; the broker starts with an empty
//! environment. What is printed holds no secret: paths, a capability that dies
//! with the broker, and git config entries.

use std::io::{BufRead as _, Read as _, Write as _};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::broker::policy::{AllowList, Origin};
use crate::broker::server::{Broker, RuntimeDir, Settings as BrokerSettings, Vault, VaultEntry};
use crate::broker::{ENV_CAPABILITY, ENV_SOCKET, capability, client};
use crate::cli::{Cli, ExportArgs, ExportFormat};
use crate::credential::{Environment, Scope};
use crate::error::{Error, ExitCode};
use crate::redact::eprint_line;
use crate::secret::Secret;

/// How long `export` waits for the detached broker to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest hand-off a detached broker accepts.
const MAX_HANDOFF_BYTES: u64 = 1024 * 1024;

/// What the parent hands the detached broker over its stdin.
#[derive(Serialize, Deserialize)]
struct Handoff {
    capability: String,
    origins: Vec<(String, String)>,
    max_uses: Option<u32>,
    ttl_ms: u64,
    entries: Vec<HandoffEntry>,
}

#[derive(Serialize, Deserialize)]
struct HandoffEntry {
    scopes: Vec<String>,
    git_username: String,
    password: Option<String>,
}

pub async fn run(cli: &Cli, args: &ExportArgs, env: &dyn Environment) -> Result<ExitCode, Error> {
    if args.revoke {
        return Ok(match client::revoke() {
            Ok(()) => {
                eprint_line("bbinject: the broker was revoked; its socket and directory are gone");
                ExitCode::Success
            }
            Err(e) => {
                eprint_line(&format!("bbinject: error: cannot revoke: {e}"));
                eprint_line(
                    "hint: run it in the shell that evaluated `bbinject export` (it reads BBINJECT_SOCKET and BBINJECT_CAPABILITY)",
                );
                ExitCode::Usage
            }
        });
    }
    let crate::exec::Prepared {
        set,
        settings,
        repos,
        allow,
        ..
    } = crate::exec::prepare(cli, &args.probe, &args.repos, &args.hosts, env)?;

    let bearers = match crate::exec::preflight_and_tokens(
        &set,
        &repos,
        settings,
        args.no_preflight,
        "no broker started",
    )
    .await?
    {
        Ok(bearers) => bearers,
        Err(code) => return Ok(code),
    };

    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(Error::RuntimeDir)?;
    let capability = capability::generate().map_err(Error::RuntimeDir)?;
    let vault = Vault::from_set(set, bearers);
    let handoff = Handoff {
        capability: capability.expose().to_owned(),
        origins: allow
            .origins()
            .iter()
            .map(|o| (o.scheme.clone(), o.host.clone()))
            .collect(),
        max_uses: args.max_uses,
        ttl_ms: args.ttl.as_millis().min(u128::from(u64::MAX)) as u64,
        entries: vault
            .entries
            .iter()
            .map(|e| HandoffEntry {
                scopes: e.scopes.iter().map(Scope::to_string).collect(),
                git_username: e.git_username.clone(),
                password: e.password.as_ref().map(|p| p.expose().to_owned()),
            })
            .collect(),
    };
    let encoded =
        Zeroizing::new(serde_json::to_vec(&handoff).map_err(|e| Error::RuntimeDir(e.into()))?);
    drop(handoff);
    drop(vault);

    let dir = start_detached(&exe, &encoded).map_err(Error::RuntimeDir)?;
    let git_config = crate::exec::git_config_entries(
        env.var_os("GIT_CONFIG_COUNT").as_deref(),
        allow.origins(),
        &crate::exec::helper_command(&exe),
    )?;
    let mut vars: Vec<(String, String)> = vec![
        (
            "GIT_ASKPASS".into(),
            dir.join(crate::broker::ASKPASS_NAME).display().to_string(),
        ),
        (ENV_SOCKET.into(), dir.join("s").display().to_string()),
        (ENV_CAPABILITY.into(), capability.expose().to_owned()),
        ("GIT_TERMINAL_PROMPT".into(), "0".into()),
    ];
    vars.extend(git_config);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(render(args.format, &vars).as_bytes());
    let _ = out.flush();
    Ok(ExitCode::Success)
}

/// Starts `bbinject broker` in its own session with an empty environment,
/// hands it the vault over its stdin, and waits for it to say where it lives.
fn start_detached(exe: &Path, handoff: &[u8]) -> std::io::Result<std::path::PathBuf> {
    let mut child = std::process::Command::new(exe)
        .arg("broker")
        .env_clear()
        .current_dir("/")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    {
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no stdin"))?;
        stdin.write_all(handoff)?;
    }
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(READY_TIMEOUT)
        .map_err(|_| std::io::Error::other("the detached broker did not start in time"))?;
    match line.trim_end().strip_prefix("ready ") {
        Some(dir) if !dir.is_empty() => Ok(dir.into()),
        _ => Err(std::io::Error::other("the detached broker could not start")),
    }
}

/// The detached broker (`bbinject broker`, started by `export`): reads the
/// hand-off from stdin, serves until its TTL, `--max-uses` or a revocation
/// (or SIGTERM/SIGINT/SIGHUP), then removes its directory.
pub async fn serve_detached() -> ExitCode {
    // Its own session: the caller's terminal closing or Ctrl-C does not reach it.
    let _ = rustix::process::setsid();
    let mut raw = Zeroizing::new(Vec::new());
    if std::io::stdin()
        .lock()
        .take(MAX_HANDOFF_BYTES)
        .read_to_end(&mut raw)
        .is_err()
    {
        return ExitCode::Usage;
    }
    let Ok(handoff) = serde_json::from_slice::<Handoff>(&raw) else {
        return ExitCode::Usage;
    };
    drop(raw);
    let Some(entries) = handoff
        .entries
        .into_iter()
        .map(|e| {
            let scopes: Option<Vec<Scope>> = e.scopes.iter().map(|s| Scope::parse(s)).collect();
            Some(VaultEntry {
                scopes: scopes?,
                git_username: e.git_username,
                password: e.password.map(Secret::new),
            })
        })
        .collect::<Option<Vec<_>>>()
    else {
        return ExitCode::Usage;
    };
    let allow = AllowList::from_origins(
        handoff
            .origins
            .into_iter()
            .map(|(scheme, host)| Origin { scheme, host })
            .collect(),
    );
    let settings = BrokerSettings {
        allow,
        max_uses: handoff.max_uses,
        stop_when_used_up: true,
    };
    let capability = Secret::new(handoff.capability);
    let Ok(dir) = RuntimeDir::create() else {
        return ExitCode::Usage;
    };
    let Ok(exe) = std::env::current_exe() else {
        return ExitCode::Usage;
    };
    if std::os::unix::fs::symlink(&exe, dir.askpass()).is_err() {
        return ExitCode::Usage;
    }
    let Ok(broker) = Broker::start(&dir, Vault { entries }, settings, capability) else {
        return ExitCode::Usage;
    };
    {
        let mut out = std::io::stdout().lock();
        if writeln!(out, "ready {}", dir.path().display())
            .and_then(|()| out.flush())
            .is_err()
        {
            return ExitCode::Usage;
        }
    }
    let ttl = tokio::time::sleep(Duration::from_millis(handoff.ttl_ms));
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
    drop(broker);
    drop(dir);
    ExitCode::Success
}

/// The assignments in the syntax `format` wants.
pub fn render(format: ExportFormat, vars: &[(String, String)]) -> String {
    let mut out = String::new();
    for (name, value) in vars {
        let line = match format {
            ExportFormat::Sh | ExportFormat::Bash | ExportFormat::Zsh => {
                format!("export {name}={}", sh_quote(value))
            }
            ExportFormat::Fish => format!("set -gx {name} {}", fish_quote(value)),
            ExportFormat::Powershell => format!("$env:{name} = '{}'", value.replace('\'', "''")),
            ExportFormat::Teamcity => format!(
                "##teamcity[setParameter name='env.{name}' value='{}']",
                teamcity_escape(value)
            ),
            ExportFormat::Github => github_env_line(name, value),
            ExportFormat::Dotenv => format!("{name}={}", dotenv_quote(value)),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// POSIX single quotes; a `'` becomes `'\''`.
fn sh_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// fish single quotes escape only `\` and `'`.
fn fish_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', r"\\").replace('\'', r"\'"))
}

/// TeamCity service-message escaping.
fn teamcity_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '|' => out.push_str("||"),
            '\'' => out.push_str("|'"),
            '[' => out.push_str("|["),
            ']' => out.push_str("|]"),
            '\n' => out.push_str("|n"),
            '\r' => out.push_str("|r"),
            '\u{0085}' => out.push_str("|x"),
            '\u{2028}' => out.push_str("|l"),
            '\u{2029}' => out.push_str("|p"),
            c => out.push(c),
        }
    }
    out
}

/// A `$GITHUB_ENV` entry: `NAME=value`, or the heredoc form for a value with a
/// line break.
fn github_env_line(name: &str, value: &str) -> String {
    if !value.contains(['\n', '\r']) {
        return format!("{name}={value}");
    }
    let mut delimiter = String::from("BBINJECT_EOF");
    while value.contains(&delimiter) {
        delimiter.push('_');
    }
    format!("{name}<<{delimiter}\n{value}\n{delimiter}")
}

/// Double quotes with `\`, `"`, `$` and line breaks escaped.
fn dotenv_quote(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            '$' => out.push_str("\\$"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vec<(String, String)> {
        vec![
            (
                "GIT_ASKPASS".into(),
                "/tmp/it's a [dir]|x/bbi-1/bbinject-askpass".into(),
            ),
            ("BBINJECT_CAPABILITY".into(), "ab12".into()),
            (
                "GIT_CONFIG_VALUE_1".into(),
                "!exec '/opt/bb inject/bbinject' credential".into(),
            ),
            ("ODD".into(), "a\\b\"c$d\ne".into()),
        ]
    }

    #[test]
    fn sh_bash_and_zsh_use_posix_single_quotes() {
        let expected = "export GIT_ASKPASS='/tmp/it'\\''s a [dir]|x/bbi-1/bbinject-askpass'\n\
                        export BBINJECT_CAPABILITY='ab12'\n\
                        export GIT_CONFIG_VALUE_1='!exec '\\''/opt/bb inject/bbinject'\\'' credential'\n\
                        export ODD='a\\b\"c$d\ne'\n";
        for format in [ExportFormat::Sh, ExportFormat::Bash, ExportFormat::Zsh] {
            assert_eq!(render(format, &vars()), expected, "{format:?}");
        }
    }

    #[test]
    fn fish_escapes_backslash_and_quote() {
        assert_eq!(
            render(ExportFormat::Fish, &vars()),
            "set -gx GIT_ASKPASS '/tmp/it\\'s a [dir]|x/bbi-1/bbinject-askpass'\n\
             set -gx BBINJECT_CAPABILITY 'ab12'\n\
             set -gx GIT_CONFIG_VALUE_1 '!exec \\'/opt/bb inject/bbinject\\' credential'\n\
             set -gx ODD 'a\\\\b\"c$d\ne'\n"
        );
    }

    #[test]
    fn powershell_doubles_single_quotes() {
        assert_eq!(
            render(ExportFormat::Powershell, &vars()),
            "$env:GIT_ASKPASS = '/tmp/it''s a [dir]|x/bbi-1/bbinject-askpass'\n\
             $env:BBINJECT_CAPABILITY = 'ab12'\n\
             $env:GIT_CONFIG_VALUE_1 = '!exec ''/opt/bb inject/bbinject'' credential'\n\
             $env:ODD = 'a\\b\"c$d\ne'\n"
        );
    }

    #[test]
    fn teamcity_service_messages_escape_pipes_quotes_brackets_and_newlines() {
        assert_eq!(
            render(ExportFormat::Teamcity, &vars()),
            "##teamcity[setParameter name='env.GIT_ASKPASS' value='/tmp/it|'s a |[dir|]||x/bbi-1/bbinject-askpass']\n\
             ##teamcity[setParameter name='env.BBINJECT_CAPABILITY' value='ab12']\n\
             ##teamcity[setParameter name='env.GIT_CONFIG_VALUE_1' value='!exec |'/opt/bb inject/bbinject|' credential']\n\
             ##teamcity[setParameter name='env.ODD' value='a\\b\"c$d|ne']\n"
        );
    }

    #[test]
    fn github_env_lines_use_a_heredoc_only_for_line_breaks() {
        assert_eq!(
            render(ExportFormat::Github, &vars()),
            "GIT_ASKPASS=/tmp/it's a [dir]|x/bbi-1/bbinject-askpass\n\
             BBINJECT_CAPABILITY=ab12\n\
             GIT_CONFIG_VALUE_1=!exec '/opt/bb inject/bbinject' credential\n\
             ODD<<BBINJECT_EOF\na\\b\"c$d\ne\nBBINJECT_EOF\n"
        );
    }

    #[test]
    fn dotenv_uses_escaped_double_quotes() {
        assert_eq!(
            render(ExportFormat::Dotenv, &vars()),
            "GIT_ASKPASS=\"/tmp/it's a [dir]|x/bbi-1/bbinject-askpass\"\n\
             BBINJECT_CAPABILITY=\"ab12\"\n\
             GIT_CONFIG_VALUE_1=\"!exec '/opt/bb inject/bbinject' credential\"\n\
             ODD=\"a\\\\b\\\"c\\$d\\ne\"\n"
        );
    }
}
