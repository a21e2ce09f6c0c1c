//! The front doors: `bbinject credential get|store|erase` (git's
//! credential-helper protocol) and the `GIT_ASKPASS` shim. Both are short-lived
//! processes git starts; they ask the broker over its socket (Windows: its
//! named pipe) and print one answer. They use blocking I/O and no async
//! runtime, to start fast.
//!
//! The askpass shim never reads stdin (it is git's pipe). A refusal prints one
//! line on stderr and makes git stop (`quit=1` for the helper, a failing exit
//! for askpass) rather than hang.

use std::ffi::OsString;
use std::io::{Read as _, Write as _};
use std::time::Duration;

use super::protocol::{Answer, MAX_MESSAGE_BYTES, ProtocolError, Request, Want};
use super::{ENV_CAPABILITY, ENV_SOCKET};
use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no bbinject broker is running here ({ENV_SOCKET} and {ENV_CAPABILITY} are not set)")]
    NoBroker,
    #[error("the bbinject broker has ended ({socket} is gone)")]
    BrokerGone { socket: String },
    #[error("the bbinject broker at {socket} did not answer ({what})")]
    NoAnswer { socket: String, what: String },
    #[error("bad answer from the broker: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("the broker refused: {0}")]
    Refused(String),
}

impl ClientError {
    /// What to do about it, for the line after the error.
    pub fn hint(&self) -> &'static str {
        match self {
            ClientError::NoBroker => {
                "run the git command inside `bbinject exec -- …`, or after `eval \"$(bbinject export)\"`"
            }
            ClientError::BrokerGone { .. } => {
                "a broker lives as long as its `bbinject exec` command, or until the --ttl, \
                 --max-uses or --revoke of its `bbinject export`; run git inside `bbinject exec`, \
                 or export again"
            }
            ClientError::NoAnswer { .. } | ClientError::Protocol(_) => {
                "the broker may be overloaded or of another bbinject version; run the step again"
            }
            ClientError::Refused(_) => "see the reason above",
        }
    }
}

/// How long a front door waits for the broker's answer. A renewal the broker
/// makes for a request must end well within it (`renew::RENEWAL_DEADLINE`).
pub const FRONT_DOOR_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `request` to the broker named by the environment.
pub fn ask(build: impl FnOnce(Secret) -> Request) -> Result<Answer, ClientError> {
    let socket = std::env::var_os(ENV_SOCKET).ok_or(ClientError::NoBroker)?;
    let capability = std::env::var(ENV_CAPABILITY).map_err(|_| ClientError::NoBroker)?;
    ask_at(&socket, Secret::new(capability), build)
}

/// Sends `request` to the broker at `socket`, with `capability`.
fn ask_at(
    socket: &std::ffi::OsStr,
    capability: Secret,
    build: impl FnOnce(Secret) -> Request,
) -> Result<Answer, ClientError> {
    let request = build(capability);
    let encoded = request.encode()?;
    let shown = std::path::Path::new(socket).display().to_string();
    let no_answer = |what: String| ClientError::NoAnswer {
        socket: shown.clone(),
        what,
    };
    let mut stream =
        super::transport::connect(socket, Duration::from_secs(30)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                ClientError::BrokerGone {
                    socket: shown.clone(),
                }
            }
            kind => no_answer(io_clause(kind)),
        })?;
    stream
        .write_all(encoded.as_bytes())
        .map_err(|e| no_answer(io_clause(e.kind())))?;
    let mut raw = zeroize::Zeroizing::new(Vec::new());
    stream
        .take(MAX_MESSAGE_BYTES as u64 + 1)
        .read_to_end(&mut raw)
        .map_err(|e| no_answer(io_clause(e.kind())))?;
    if raw.is_empty() {
        return Err(no_answer("it closed the connection".into()));
    }
    Ok(Answer::decode(&raw)?)
}

/// A transport failure as a clause a person reads: a read that timed out is
/// "no answer within 30 s", not the OS's "operation would block".
fn io_clause(kind: std::io::ErrorKind) -> String {
    match kind {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            format!("no answer within {} s", FRONT_DOOR_TIMEOUT.as_secs())
        }
        kind => kind.to_string(),
    }
}

/// Ends the broker named by the environment (`bbinject export --revoke`).
pub fn revoke() -> Result<(), ClientError> {
    let socket = std::env::var_os(ENV_SOCKET).ok_or(ClientError::NoBroker)?;
    let capability = std::env::var(ENV_CAPABILITY).map_err(|_| ClientError::NoBroker)?;
    revoke_at(&socket, Secret::new(capability))
}

/// Ends the broker at `socket` (an `export` whose assignments could not be
/// written stops the broker it started).
pub fn revoke_at(socket: &std::ffi::OsStr, capability: Secret) -> Result<(), ClientError> {
    match ask_at(socket, capability, |capability| Request {
        capability,
        protocol: String::new(),
        host: String::new(),
        path: None,
        username: None,
        want: Want::Revoke,
        from_helper: false,
        rejected: None,
    })? {
        Answer::Revoked => {
            // The broker answers, then removes its socket and directory: wait
            // for that, so what the caller is told (and sees) is already true.
            let deadline = std::time::Instant::now() + Duration::from_secs(3);
            while !super::transport::is_gone(socket) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        }
        Answer::Refused { reason } => Err(ClientError::Refused(reason)),
        Answer::Granted { .. } | Answer::Noted => {
            Err(ClientError::Protocol(ProtocolError::BadValue("status")))
        }
    }
}

/// What an askpass prompt asks for: `Username for 'https://host': ` or
/// `Password for 'https://user@host/path': `.
#[derive(Debug, PartialEq, Eq)]
pub struct Prompt {
    pub want: Want,
    pub protocol: String,
    pub host: String,
    pub path: Option<String>,
    pub username: Option<String>,
}

/// Why a prompt gets no answer.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PromptError {
    #[error("not a git credential prompt")]
    NotGit,
    /// git's prompt, but one that could be read as naming another host or
    /// repository than the one git will send the answer to.
    #[error("git's prompt names {0}; refused, as it could name another host than git's")]
    Unsafe(&'static str),
}

/// Reads git's prompt the way git wrote it. git prints `<what> for
/// '<protocol>://[<user>@]<host>[/<path>]': ` (`credential_describe`, or
/// with `credential.sanitizePrompt` the same with user and path
/// percent-encoded), where the user name and host are the ones git will
/// authenticate to. A user name may hold anything on a git without the
/// January 2025 prompt fix (`/`, `\`, `#`, `@` — the attack of
/// `https://bitbucket.org%5Cacme%23@evil.example/`), so no URL parser is
/// used: the authority ends at the first `/`, the host follows its last
/// `@`, and the user name and path are accepted only when made of
/// characters no git version escapes and no reader splits on (Bitbucket's
/// names: ASCII letters, digits, `-`, `_`, `.`, `~`, `+` in a user name).
/// The host goes through [`super::policy::parse_host`], as the helper's does.
pub fn parse_prompt(prompt: &str) -> Result<Prompt, PromptError> {
    let (want, rest) = if let Some(rest) = prompt.strip_prefix("Username for '") {
        (Want::Username, rest)
    } else if let Some(rest) = prompt.strip_prefix("Password for '") {
        (Want::Password, rest)
    } else {
        return Err(PromptError::NotGit);
    };
    let described = rest
        .strip_suffix("': ")
        .or_else(|| rest.strip_suffix("':"))
        .ok_or(PromptError::NotGit)?;
    let (protocol, rest) = described.split_once("://").ok_or(PromptError::NotGit)?;
    if protocol != "https" && protocol != "http" {
        return Err(PromptError::NotGit);
    }
    let (authority, path) = match rest.split_once('/') {
        Some((authority, path)) => (authority, Some(path)),
        None => (rest, None),
    };
    if path.is_some_and(|p| p.contains('@')) {
        // A user name holding `/` would put its `@` here.
        return Err(PromptError::Unsafe("a `/` before its `@`"));
    }
    let (username, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, authority),
    };
    let user_char =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+');
    if let Some(user) = username
        && (user.is_empty() || !user.bytes().all(user_char))
    {
        return Err(PromptError::Unsafe(
            "a user name with characters that could move the host (`@ / \\ ? # :`, an escape)",
        ));
    }
    let path_char = |b: u8| (user_char(b) && b != b'+') || b == b'/';
    if let Some(path) = path
        && !path.bytes().all(path_char)
    {
        return Err(PromptError::Unsafe(
            "a path with a query, fragment, escape or other character outside a repository name",
        ));
    }
    if host.is_empty() {
        return Err(PromptError::NotGit);
    }
    let host = super::policy::parse_host(protocol, host)
        .ok_or(PromptError::Unsafe("a host not in canonical form"))?;
    Ok(Prompt {
        want,
        protocol: protocol.to_owned(),
        host,
        path: path.filter(|p| !p.is_empty()).map(str::to_owned),
        username: username.map(str::to_owned),
    })
}

/// Whether `args` is git calling us as `GIT_ASKPASS`: exactly one argument,
/// with a space in it (git's prompts have one; no subcommand or flag has).
pub fn is_askpass_call(args: &[OsString]) -> bool {
    matches!(args, [_, prompt] if prompt.as_encoded_bytes().contains(&b' '))
}

/// `GIT_ASKPASS`: `argv = [path, prompt]`; prints the one answer on stdout.
pub fn askpass_main(args: Vec<OsString>) -> std::process::ExitCode {
    let prompt = args.get(1).and_then(|p| p.to_str()).unwrap_or_default();
    let parsed = match parse_prompt(prompt) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("bbinject: askpass: {e}; answering nothing");
            return std::process::ExitCode::from(1);
        }
    };
    let answer = ask(|capability| Request {
        capability,
        protocol: parsed.protocol.clone(),
        host: parsed.host.clone(),
        path: parsed.path.clone(),
        username: parsed.username.clone(),
        want: parsed.want,
        from_helper: false,
        rejected: None,
    });
    let shown = origin(&parsed.protocol, &parsed.host, parsed.path.as_deref());
    match answer {
        Ok(Answer::Granted {
            username, password, ..
        }) => {
            let mut out = std::io::stdout().lock();
            let written = match (parsed.want, password) {
                (Want::Username, _) => writeln!(out, "{username}"),
                (Want::Password, Some(password)) => {
                    let line = zeroize::Zeroizing::new(format!("{}\n", password.expose()));
                    out.write_all(line.as_bytes())
                }
                (Want::Password | Want::Revoke | Want::Erase, None)
                | (Want::Revoke | Want::Erase, Some(_)) => return std::process::ExitCode::from(1),
            };
            if written.and_then(|()| out.flush()).is_err() {
                return std::process::ExitCode::from(1);
            }
            std::process::ExitCode::SUCCESS
        }
        Ok(Answer::Refused { reason }) => {
            let reason = crate::redact::printable(&reason);
            eprintln!("bbinject: refused credential for {shown}: {reason}");
            std::process::ExitCode::from(1)
        }
        Ok(Answer::Revoked | Answer::Noted) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!(
                "bbinject: no credential for {shown}: {e}\nhint: {}",
                e.hint()
            );
            std::process::ExitCode::from(1)
        }
    }
}

/// The request as shown in a refusal line: every field escaped, since a path
/// from git may hold an escape sequence (`\e[2K\e[1A`) meant for the log.
fn origin(protocol: &str, host: &str, path: Option<&str>) -> String {
    let shown = match path {
        Some(p) => format!("{protocol}://{host}/{p}"),
        None => format!("{protocol}://{host}"),
    };
    crate::redact::printable(&shown)
}

/// What git tells the helper: the fields of a `get` or `erase` that matter.
#[derive(Debug, PartialEq, Eq)]
pub struct HelperQuery {
    pub protocol: String,
    /// Lower case, as the broker's allow-list compares it.
    pub host: String,
    pub path: Option<String>,
    pub username: Option<String>,
    /// The fingerprint of the password git sent (with `erase`: the one the
    /// server rejected); the password itself is not kept.
    pub password_fingerprint: Option<String>,
}

/// Parses git's helper input (`key=value` lines, bounded). `Ok(None)` when it
/// names no protocol or host: nothing to answer, and not an error to git.
pub fn parse_helper_input(
    raw: &[u8],
) -> Result<Option<HelperQuery>, super::protocol::ProtocolError> {
    let fields = super::protocol::parse_fields(raw)?;
    let field = |k: &str| fields.get(k).cloned().filter(|v| !v.is_empty());
    let (Some(protocol), Some(host)) = (field("protocol"), field("host")) else {
        return Ok(None);
    };
    let host = super::policy::parse_host(&protocol, &host)
        .ok_or(super::protocol::ProtocolError::BadValue("host"))?;
    Ok(Some(HelperQuery {
        host,
        protocol,
        path: field("path"),
        username: field("username"),
        password_fingerprint: field("password").map(|p| Secret::new(p).fingerprint()),
    }))
}

/// `bbinject credential get|store|erase`, git's credential-helper protocol.
pub fn helper_main(action: &str) -> std::process::ExitCode {
    let mut input = zeroize::Zeroizing::new(Vec::new());
    let _ = std::io::stdin()
        .lock()
        .take(MAX_MESSAGE_BYTES as u64)
        .read_to_end(&mut input);
    match action {
        "get" => {}
        "erase" => return erase(&input),
        // store: git tells every helper; we keep nothing, so there is nothing to do.
        _ => return std::process::ExitCode::SUCCESS,
    }
    let query = match parse_helper_input(&input) {
        Ok(Some(query)) => query,
        Ok(None) => return std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bbinject: credential helper: refused an unreadable request from git: {e}");
            // Stop git here rather than let another helper or a prompt answer.
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(b"quit=1\n").and_then(|()| out.flush());
            return std::process::ExitCode::SUCCESS;
        }
    };
    let shown = origin(&query.protocol, &query.host, query.path.as_deref());
    let answer = ask(|capability| Request {
        capability,
        protocol: query.protocol,
        host: query.host,
        path: query.path,
        username: query.username,
        want: Want::Password,
        from_helper: true,
        rejected: None,
    });
    let mut out = std::io::stdout().lock();
    match answer {
        Ok(Answer::Granted {
            username,
            password: Some(password),
            expiry_utc,
            warning,
        }) => {
            if let Some(w) = warning {
                eprintln!("bbinject: warning: {}", crate::redact::printable(&w));
            }
            // git ≥ 2.41 does not reuse a credential past its expiry; older
            // gits ignore the attribute.
            let expiry = expiry_utc
                .map(|e| format!("password_expiry_utc={e}\n"))
                .unwrap_or_default();
            let reply = zeroize::Zeroizing::new(format!(
                "username={username}\npassword={}\n{expiry}",
                password.expose()
            ));
            let _ = out.write_all(reply.as_bytes()).and_then(|()| out.flush());
            std::process::ExitCode::SUCCESS
        }
        Ok(Answer::Granted { password: None, .. } | Answer::Revoked | Answer::Noted) => {
            std::process::ExitCode::SUCCESS
        }
        Ok(Answer::Refused { reason }) => {
            let reason = crate::redact::printable(&reason);
            eprintln!("bbinject: refused credential for {shown}: {reason}");
            // Tell git to stop here instead of trying other ways to get one.
            let _ = out.write_all(b"quit=1\n").and_then(|()| out.flush());
            std::process::ExitCode::SUCCESS
        }
        Err(e @ ClientError::NoBroker) => {
            // git goes on to its other helpers; say why we gave nothing.
            eprintln!("bbinject: credential helper: {e}\nhint: {}", e.hint());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "bbinject: no credential for {shown}: {e}\nhint: {}",
                e.hint()
            );
            let _ = out.write_all(b"quit=1\n").and_then(|()| out.flush());
            std::process::ExitCode::SUCCESS
        }
    }
}

/// `bbinject credential erase`: git says the server rejected the credential it
/// was given. The broker is told (with the password's fingerprint, never the
/// password), so an OAuth token is minted again on the next request. Silent
/// and successful whatever happens: git only informs its helpers.
fn erase(input: &[u8]) -> std::process::ExitCode {
    let Ok(Some(query)) = parse_helper_input(input) else {
        return std::process::ExitCode::SUCCESS;
    };
    let _ = ask(|capability| Request {
        capability,
        protocol: query.protocol,
        host: query.host,
        path: query.path,
        username: query.username,
        want: Want::Erase,
        from_helper: true,
        rejected: query.password_fingerprint,
    });
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_from_git_are_parsed() {
        let cases = [
            (
                "Username for 'https://bitbucket.org': ",
                Want::Username,
                "https",
                "bitbucket.org",
                None,
                None,
            ),
            (
                "Password for 'https://x-token-auth@bitbucket.org/acme/app.git': ",
                Want::Password,
                "https",
                "bitbucket.org",
                Some("acme/app.git"),
                Some("x-token-auth"),
            ),
            (
                "Password for 'http://jdoe@127.0.0.1:8080/a/b.git': ",
                Want::Password,
                "http",
                "127.0.0.1:8080",
                Some("a/b.git"),
                Some("jdoe"),
            ),
            (
                "Password for 'https://x-token-auth@BitBucket.org:443': ",
                Want::Password,
                "https",
                "bitbucket.org",
                None,
                Some("x-token-auth"),
            ),
        ];
        for (prompt, want, protocol, host, path, user) in cases {
            let p = parse_prompt(prompt).unwrap_or_else(|e| panic!("{prompt}: {e}"));
            assert_eq!(p.want, want, "{prompt}");
            assert_eq!(
                (p.protocol.as_str(), p.host.as_str()),
                (protocol, host),
                "{prompt}"
            );
            assert_eq!(p.path.as_deref(), path, "{prompt}");
            assert_eq!(p.username.as_deref(), user, "{prompt}");
        }
    }

    /// What git 2.39 and 2.47 print, with and without
    /// `credential.sanitizePrompt`, for URLs whose user name is built to make a
    /// URL parser see another host than the one git authenticates to (seen
    /// with both gits on this machine; see the exec tests for the live runs).
    #[test]
    fn prompts_that_could_name_another_host_are_refused() {
        for prompt in [
            // http://bitbucket.org%5Cacme%5Capp.git%23@evil.example/x.git
            "Password for 'http://bitbucket.org\\acme\\app.git#@evil.example': ",
            "Password for 'http://bitbucket.org%5Cacme%5Capp.git%23@evil.example': ",
            "Password for 'https://bitbucket.org\\acme\\app.git#@evil.example/x.git': ",
            // http://a%2Fb%40c@evil.example/
            "Password for 'http://a/b@c@evil.example': ",
            "Password for 'http://a%2Fb%40c@evil.example': ",
            "Password for 'https://bitbucket.org?@evil.example': ",
            "Password for 'https://bitbucket.org:443@evil.example': ",
            "Password for 'https://u@bitbucket.org@evil.example': ",
            "Password for 'https://x-token-auth@127.1:8080': ",
            "Password for 'https://x-token-auth@ｂitbucket.org': ",
            "Password for 'https://x-token-auth@bitbucket.org/evil/x.git?/../../acme/app.git': ",
            "Password for 'https://x-token-auth@bitbucket.org/evil/x%20y.git': ",
            "Password for 'https://x-token-auth@bitbucket.org/acme/app.git#x': ",
            "Password for 'https://@bitbucket.org': ",
        ] {
            assert!(
                matches!(parse_prompt(prompt), Err(PromptError::Unsafe(_))),
                "{prompt:?} → {:?}",
                parse_prompt(prompt)
            );
        }
    }

    #[test]
    fn a_read_that_timed_out_says_so() {
        for kind in [std::io::ErrorKind::WouldBlock, std::io::ErrorKind::TimedOut] {
            assert_eq!(io_clause(kind), "no answer within 30 s");
        }
        assert_eq!(
            io_clause(std::io::ErrorKind::ConnectionReset),
            std::io::ErrorKind::ConnectionReset.to_string()
        );
    }

    #[test]
    fn anything_else_is_not_a_prompt() {
        for prompt in [
            "",
            "Username",
            "Enter passphrase for key '/root/.ssh/id': ",
            "Password for '': ",
            "Username for 'not a url': ",
            "Password for 'cert:///etc/key.p12': ",
            "Password for 'ftp://bitbucket.org': ",
            "Password for 'https://bitbucket.org'",
        ] {
            assert_eq!(parse_prompt(prompt), Err(PromptError::NotGit), "{prompt:?}");
        }
    }

    #[test]
    fn only_one_argument_with_a_space_is_an_askpass_call() {
        let call =
            |args: &[&str]| is_askpass_call(&args.iter().map(OsString::from).collect::<Vec<_>>());
        assert!(call(&[
            "bbinject",
            "Password for 'https://bitbucket.org': "
        ]));
        // Any prompt: askpass then says it is not git's.
        assert!(call(&["bbinject", "Enter passphrase for key '/k': "]));
        for args in [
            &["bbinject"][..],
            &["bbinject", "check"],
            &["bbinject", "--version"],
            &["bbinject", "credential", "get"],
            &["bbinject", "exec", "--", "sh -c true"],
        ] {
            assert!(!call(args), "{args:?}");
        }
    }
}
