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

use crate::broker::detached::Handoff;
use crate::broker::server::Vault;
use crate::broker::transport::Endpoint;
use crate::broker::{ENV_CAPABILITY, ENV_SOCKET, capability, client};
use crate::cli::{ExportArgs, ExportFormat};
use crate::credential::Environment;
use crate::error::{Error, Exit};
use crate::redact::eprint_line;

/// How long `export` waits for the detached broker to be ready, unless
/// `BBINJECT_BROKER_READY_TIMEOUT_MS` says otherwise (a very slow agent).
const READY_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(args: &ExportArgs, env: &dyn Environment) -> Result<Exit, Error> {
    if args.revoke {
        return Ok(match client::revoke() {
            Ok(()) => {
                eprint_line(if cfg!(windows) {
                    "bbinject: the broker was revoked; its pipe is closed"
                } else {
                    "bbinject: the broker was revoked; its socket and directory are gone"
                });
                Exit::Success
            }
            // Revoking what is already gone (its TTL, --max-uses, an earlier
            // revoke) is what was asked for: an always-run cleanup step passes.
            Err(client::ClientError::BrokerGone { .. }) => {
                eprint_line("bbinject: the broker had already ended; nothing to revoke");
                Exit::Success
            }
            Err(e) => {
                let capability = crate::broker::policy::Refusal::Capability.to_string();
                crate::error::print_error(
                    &format!("cannot revoke: {e}"),
                    Some(match &e {
                        client::ClientError::Refused(reason) if *reason == capability => {
                            "BBINJECT_CAPABILITY is not this broker's: run it in the shell that \
                             evaluated this `bbinject export` (another export's variables?)"
                        }
                        client::ClientError::Refused(_) => {
                            "nothing to do: a broker of `bbinject exec` ends when its command does"
                        }
                        _ => {
                            "run it in the shell that evaluated `bbinject export` (it reads BBINJECT_SOCKET and BBINJECT_CAPABILITY)"
                        }
                    }),
                );
                Exit::Usage
            }
        });
    }
    let crate::settings::Prepared {
        mut set,
        settings,
        repos,
        allow,
        ..
    } = crate::settings::prepare(&args.probe, &args.repos, &args.hosts, env)?;
    let rewrite_ssh_default = set.defaults.rewrite_ssh;
    let no_redirects = set.limits_repositories();
    let allow_repos =
        crate::settings::allow_list(&args.broker.allow_repos, args.broker.allow_checked, &repos)?;
    let no_redirects = no_redirects || !allow_repos.is_empty();
    if args.broker.consume_secret_files {
        for label in set.consume_secret_files()? {
            tracing::info!("consumed {label}: nothing started later can open it");
        }
    }
    // The detached broker has no stderr and runs in `/`: a file, by absolute path.
    let audit_log = match &args.broker.audit_log {
        Some(path) if path.as_os_str() == "-" => {
            return Err(Error::AuditLog {
                path: "-".into(),
                reason: "the detached broker has no stderr to write to".into(),
            });
        }
        Some(path) => Some(std::path::absolute(path).map_err(|e| Error::AuditLog {
            path: path.display().to_string(),
            reason: e.kind().to_string(),
        })?),
        None => None,
    };

    let bearers = match crate::settings::preflight_and_tokens(
        &set,
        &repos,
        &settings,
        args.no_preflight,
        "no broker started",
    )
    .await?
    {
        Ok(bearers) => bearers,
        Err(code) => return Ok(code),
    };

    let exe = crate::broker::child_env::current_exe().map_err(Error::BrokerSetup)?;
    let capability = capability::generate().map_err(Error::BrokerSetup)?;
    // Created here, where the caller's XDG_RUNTIME_DIR and TMPDIR are known;
    // the broker starts with an empty environment and adopts it.
    let runtime = Endpoint::create().map_err(Error::BrokerSetup)?;
    let runtime_address = runtime.address();
    let handoff = Handoff {
        capability: crate::secret::Secret::new(capability.expose().to_owned()),
        runtime_dir: runtime.handle().to_path_buf(),
        origins: allow.origins().to_vec(),
        max_uses: args.max_uses,
        ttl: args.ttl,
        entries: Vault::from_set(set, bearers, &settings.mint()).entries,
        allow_repos,
        audit_log,
    };
    let encoded = handoff
        .encode()
        .map_err(|e| Error::BrokerSetup(std::io::Error::other(e)))?;
    drop(handoff);
    // The assignments, rendered before the broker starts: a value the format
    // cannot hold leaves no broker behind.
    let git_config = crate::broker::child_env::git_config_entries(
        env.var_os("GIT_CONFIG_COUNT").as_deref(),
        allow.origins(),
        &crate::broker::child_env::helper_command(&exe),
        crate::broker::child_env::ChildOptions {
            rewrite_ssh: args.broker.rewrite_ssh || rewrite_ssh_default,
            no_redirects,
        },
    )?;
    let mut vars: Vec<(String, String)> = vec![
        ("GIT_ASKPASS".into(), exe.display().to_string()),
        (ENV_SOCKET.into(), runtime_address.display().to_string()),
        (ENV_CAPABILITY.into(), capability.expose().to_owned()),
        ("GIT_TERMINAL_PROMPT".into(), "0".into()),
    ];
    vars.extend(
        crate::broker::child_env::defaults_for_child(env)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    vars.extend(git_config);
    let rendered = match render(args.format, &vars) {
        Ok(rendered) => zeroize::Zeroizing::new(rendered),
        Err(unsayable) => {
            crate::error::print_error(
                &format!(
                    "the --format {} syntax cannot hold the value of {unsayable}; no broker started",
                    clap::ValueEnum::to_possible_value(&args.format)
                        .map(|v| v.get_name().to_owned())
                        .unwrap_or_default()
                ),
                Some("use another --format (powershell on Windows, sh elsewhere)"),
            );
            return Ok(Exit::Usage);
        }
    };
    let ready_timeout = env
        .var_os("BBINJECT_BROKER_READY_TIMEOUT_MS")
        .and_then(|v| v.to_str().and_then(|v| v.parse().ok()))
        .map_or(READY_TIMEOUT, Duration::from_millis);
    match start_detached(&exe, encoded.as_bytes(), ready_timeout) {
        // The broker removes its directory from now on.
        Ok(()) => runtime.hand_over(),
        Err(reason) => {
            drop(runtime);
            crate::error::print_error(
                &format!("the detached broker {reason}; no broker is running"),
                Some(
                    "run `bbinject -vv export …` again; if the agent is very slow, set BBINJECT_BROKER_READY_TIMEOUT_MS (default 10000)",
                ),
            );
            return Ok(Exit::Usage);
        }
    }
    drop(encoded);
    let mut out = std::io::stdout().lock();
    if let Err(e) = out
        .write_all(rendered.as_bytes())
        .and_then(|()| out.flush())
    {
        // The caller never got the variables (`>> "$GITHUB_ENV"` on a full
        // disk, a closed stdout): the broker must not hold the secret for
        // nobody until its TTL.
        drop(out);
        let stopped = client::revoke_at(
            runtime_address.as_os_str(),
            crate::secret::Secret::new(capability.expose().to_owned()),
        );
        crate::error::print_error(
            &format!(
                "cannot write the assignments to stdout ({}); {}",
                crate::fsutil::io_reason(&e),
                if stopped.is_ok() {
                    "the broker was stopped"
                } else {
                    "the broker could not be stopped and ends at its --ttl"
                }
            ),
            Some("check where stdout goes (a full disk, a closed pipe) and run export again"),
        );
        return Ok(Exit::Usage);
    }
    Ok(Exit::Success)
}

/// Starts `bbinject broker` in its own session with an empty environment,
/// hands it the vault over its stdin, and waits for its `ready` line. On a
/// failure the broker is stopped (it must not outlive a failed `export`
/// holding the secret) and the reason is returned, ready for "the detached
/// broker {reason}".
fn start_detached(exe: &Path, handoff: &[u8], timeout: Duration) -> Result<(), String> {
    let mut command = std::process::Command::new(exe);
    command
        .arg("broker")
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child =
        spawn_detached(&mut command).map_err(|e| format!("could not be started ({e})"))?;
    let handed = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no stdin"))
        .and_then(|mut stdin| stdin.write_all(handoff));
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout)
                .take(64 * 1024)
                .read_line(&mut line);
            let _ = tx.send(line);
        });
    }
    let line = match (handed, rx.recv_timeout(timeout)) {
        (Ok(()), Ok(line)) => line,
        (Err(e), _) => {
            stop(&mut child);
            return Err(format!("could not be given its credentials ({e})"));
        }
        (_, Err(_)) => {
            stop(&mut child);
            return Err(format!(
                "did not start in time ({} ms); it was stopped",
                timeout.as_millis()
            ));
        }
    };
    let line = line.trim_end();
    if line.starts_with("ready ") {
        return Ok(());
    }
    stop(&mut child);
    match line.strip_prefix("error ") {
        Some(reason) => Err(format!("could not start: {reason}")),
        None => Err("exited before it was ready".into()),
    }
}

#[cfg(unix)]
fn spawn_detached(command: &mut std::process::Command) -> std::io::Result<std::process::Child> {
    command.current_dir("/").spawn()
}

/// Windows: no console and a process group of its own (no Ctrl-C from the
/// caller's console), out of `exec`'s job object (it must outlive the step
/// that exported it), with the two variables Windows needs to start
/// networking. An agent's job that forbids breaking away keeps it inside.
#[cfg(windows)]
fn spawn_detached(command: &mut std::process::Command) -> std::io::Result<std::process::Child> {
    use std::os::windows::process::CommandExt as _;
    const DETACHED_PROCESS: u32 = 0x0000_0008;
    const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
    const CREATE_BREAKAWAY_FROM_JOB: u32 = 0x0100_0000;
    for name in ["SystemRoot", "SystemDrive"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    if let Some(dir) = std::env::var_os("SystemRoot") {
        command.current_dir(dir);
    }
    let flags = DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP;
    command
        .creation_flags(flags | CREATE_BREAKAWAY_FROM_JOB)
        .spawn()
        .or_else(|_| command.creation_flags(flags).spawn())
}

/// Ends a broker that failed to start: SIGTERM, then SIGKILL after a moment
/// (Windows: terminated at once), and reaps it.
fn stop(child: &mut std::process::Child) {
    #[cfg(unix)]
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The assignments in the syntax `format` wants; `Err(name)` when a value
/// cannot be written in it (cmd: a `"` or a line break).
pub fn render(format: ExportFormat, vars: &[(String, String)]) -> Result<String, String> {
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
            ExportFormat::Cmd => cmd_line(name, value).ok_or_else(|| name.clone())?,
        };
        out.push_str(&line);
        out.push_str(if format == ExportFormat::Cmd {
            "\r\n"
        } else {
            "\n"
        });
    }
    Ok(out)
}

/// `set "NAME=value"` for a batch file run with `call`: the quotes keep
/// `&`, `|`, `<`, `>`, `^` and spaces literal, and `%` is doubled (a batch
/// file expands `%…%` before it runs a line). A `"` would end the quoting
/// and a line break the command: such a value has no safe form.
fn cmd_line(name: &str, value: &str) -> Option<String> {
    if value.contains(['"', '\n', '\r']) {
        return None;
    }
    Some(format!("set \"{name}={}\"", value.replace('%', "%%")))
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
                "/tmp/it's a [dir]|x/bin/bbinject".into(),
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
        let expected = "export GIT_ASKPASS='/tmp/it'\\''s a [dir]|x/bin/bbinject'\n\
                        export BBINJECT_CAPABILITY='ab12'\n\
                        export GIT_CONFIG_VALUE_1='!exec '\\''/opt/bb inject/bbinject'\\'' credential'\n\
                        export ODD='a\\b\"c$d\ne'\n";
        for format in [ExportFormat::Sh, ExportFormat::Bash, ExportFormat::Zsh] {
            assert_eq!(
                render(format, &vars()).expect("renders"),
                expected,
                "{format:?}"
            );
        }
    }

    #[test]
    fn fish_escapes_backslash_and_quote() {
        assert_eq!(
            render(ExportFormat::Fish, &vars()).expect("renders"),
            "set -gx GIT_ASKPASS '/tmp/it\\'s a [dir]|x/bin/bbinject'\n\
             set -gx BBINJECT_CAPABILITY 'ab12'\n\
             set -gx GIT_CONFIG_VALUE_1 '!exec \\'/opt/bb inject/bbinject\\' credential'\n\
             set -gx ODD 'a\\\\b\"c$d\ne'\n"
        );
    }

    #[test]
    fn powershell_doubles_single_quotes() {
        assert_eq!(
            render(ExportFormat::Powershell, &vars()).expect("renders"),
            "$env:GIT_ASKPASS = '/tmp/it''s a [dir]|x/bin/bbinject'\n\
             $env:BBINJECT_CAPABILITY = 'ab12'\n\
             $env:GIT_CONFIG_VALUE_1 = '!exec ''/opt/bb inject/bbinject'' credential'\n\
             $env:ODD = 'a\\b\"c$d\ne'\n"
        );
    }

    #[test]
    fn cmd_quotes_the_assignment_and_doubles_percent_signs() {
        let windows: Vec<(String, String)> = vec![
            (
                "GIT_ASKPASS".into(),
                r"C:\Program Files (x86)\100% & <b>|^\bbinject.exe".into(),
            ),
            (
                "GIT_CONFIG_VALUE_1".into(),
                "!exec 'C:/Program Files/bbinject.exe' credential".into(),
            ),
        ];
        assert_eq!(
            render(ExportFormat::Cmd, &windows).expect("renders"),
            "set \"GIT_ASKPASS=C:\\Program Files (x86)\\100%% & <b>|^\\bbinject.exe\"\r\n\
             set \"GIT_CONFIG_VALUE_1=!exec 'C:/Program Files/bbinject.exe' credential\"\r\n"
        );
        // A quote or a line break cannot be said safely: named, not rendered.
        assert_eq!(render(ExportFormat::Cmd, &vars()), Err("ODD".into()));
    }

    #[test]
    fn teamcity_service_messages_escape_pipes_quotes_brackets_and_newlines() {
        assert_eq!(
            render(ExportFormat::Teamcity, &vars()).expect("renders"),
            "##teamcity[setParameter name='env.GIT_ASKPASS' value='/tmp/it|'s a |[dir|]||x/bin/bbinject']\n\
             ##teamcity[setParameter name='env.BBINJECT_CAPABILITY' value='ab12']\n\
             ##teamcity[setParameter name='env.GIT_CONFIG_VALUE_1' value='!exec |'/opt/bb inject/bbinject|' credential']\n\
             ##teamcity[setParameter name='env.ODD' value='a\\b\"c$d|ne']\n"
        );
    }

    #[test]
    fn github_env_lines_use_a_heredoc_only_for_line_breaks() {
        assert_eq!(
            render(ExportFormat::Github, &vars()).expect("renders"),
            "GIT_ASKPASS=/tmp/it's a [dir]|x/bin/bbinject\n\
             BBINJECT_CAPABILITY=ab12\n\
             GIT_CONFIG_VALUE_1=!exec '/opt/bb inject/bbinject' credential\n\
             ODD<<BBINJECT_EOF\na\\b\"c$d\ne\nBBINJECT_EOF\n"
        );
    }

    #[test]
    fn dotenv_uses_escaped_double_quotes() {
        assert_eq!(
            render(ExportFormat::Dotenv, &vars()).expect("renders"),
            "GIT_ASKPASS=\"/tmp/it's a [dir]|x/bin/bbinject\"\n\
             BBINJECT_CAPABILITY=\"ab12\"\n\
             GIT_CONFIG_VALUE_1=\"!exec '/opt/bb inject/bbinject' credential\"\n\
             ODD=\"a\\\\b\\\"c\\$d\\ne\"\n"
        );
    }
}
