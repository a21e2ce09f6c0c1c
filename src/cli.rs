//! The command-line interface: clap definitions only. Their doc comments are
//! the `--help` text, so they are written for the person reading a CI log.
//! No logic: validation that needs more than a type lives in `settings`, and
//! no argument ever holds a secret (there is no flag for one, by design).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::bitbucket::Need;
use crate::credential::RepoRef;

/// Get a Bitbucket Cloud credential from CI secrets into git over HTTPS without
/// writing it anywhere, and prove it works before the build starts.
///
/// Credentials are read from BITBUCKET_API_TOKEN, BITBUCKET_ACCESS_TOKEN,
/// BITBUCKET_OAUTH_CLIENT_ID + BITBUCKET_OAUTH_CLIENT_SECRET or (legacy)
/// BITBUCKET_APP_PASSWORD, with BITBUCKET_USERNAME and BITBUCKET_EMAIL; each
/// also as NAME_FILE (a path to a file holding it), from --secrets-dir, or
/// from a --config file.
#[derive(Debug, Parser)]
#[command(
    name = "bbinject",
    version = env!("BBINJECT_VERSION"),
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Preflight: prove the credential works for the repositories a build needs.
    ///
    /// Asks the REST API (GET /repositories/WORKSPACE/SLUG, and GET /user where
    /// the credential kind allows it) and git itself (info/refs for
    /// git-upload-pack, and git-receive-pack with --need write), with the exact
    /// username and password git will be given.
    ///
    /// Exit codes: 0 ok; 2 usage or configuration (no credential, NAME and
    /// NAME_FILE both set, bad config); 3 credential rejected (401/410, app
    /// password, expired); 4 authenticated but not allowed (403, 404 on a
    /// private repository, missing scope, write needed but only read granted);
    /// 5 Bitbucket unreachable (DNS, TLS, proxy, timeout, 5xx/429 after retries).
    #[command(after_help = CHECK_EXAMPLES, args_override_self = true)]
    Check(CheckArgs),

    /// Run a command whose git can use the credential, which is never written anywhere.
    ///
    /// Resolves the credential, runs the preflight (unless --no-preflight), then
    /// keeps the secret in this process (the broker) and starts CMD with
    /// GIT_ASKPASS, a credential helper registered through GIT_CONFIG_COUNT
    /// entries for each allowed host, the broker's socket and a one-time
    /// capability, GIT_TERMINAL_PROMPT=0 and transfer.credentialsInUrl=die.
    /// The variables that held the secret are removed from CMD's environment.
    /// SIGINT, SIGTERM, SIGHUP and SIGQUIT are forwarded; the exit status is
    /// CMD's (128+n if signal n killed it; 127 if CMD does not exist). The
    /// broker, its socket and directory end with CMD. CMD's stdout and stderr
    /// are masked: every form of every secret of the run (raw, percent-encoded,
    /// JSON-escaped, base64, base64 of user:secret) becomes ****.
    #[command(after_help = EXEC_EXAMPLES, args_override_self = true)]
    Exec(ExecArgs),

    /// Start a detached broker for steps `exec` cannot wrap, and print the
    /// environment that lets git in later commands use it.
    ///
    /// Resolves and preflights like `exec`, then starts a broker in its own
    /// process and session (the secret is handed to it over a pipe) and prints
    /// GIT_ASKPASS, the broker's socket and capability, GIT_TERMINAL_PROMPT=0
    /// and GIT_CONFIG_* entries appended after the caller's, for the shell or
    /// CI named by --format. Nothing printed is a secret. The broker ends at
    /// --ttl, after --max-uses passwords, or on `bbinject export --revoke`, and
    /// removes its directory.
    #[command(after_help = EXPORT_EXAMPLES, args_override_self = true)]
    Export(ExportArgs),

    /// Git's credential-helper protocol, answered by the broker of a running
    /// `bbinject exec` or `export` (git calls this; `store` does nothing,
    /// `erase` marks a rejected OAuth token stale).
    Credential {
        #[arg(value_enum)]
        action: CredentialAction,
    },

    /// The detached broker `export` starts (reads its hand-off from stdin).
    #[command(hide = true)]
    Broker,

    /// Print a shell completion script, e.g. `bbinject completions bash > /etc/bash_completion.d/bbinject`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Print the man page (roff), e.g. `bbinject man > /usr/local/share/man/man1/bbinject.1`,
    /// or write one page per command with --dir.
    Man {
        /// Write bbinject.1 and bbinject-<command>.1 for every command into DIR.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },

    /// Find Bitbucket credentials embedded in repositories and git config, and
    /// remove them.
    ///
    /// Looks at remote.*.url / pushurl, submodule.*.url, url.*.insteadOf and
    /// http.*.extraHeader Authorization lines in .git/config and every
    /// submodule's and worktree's config, and with --global also the global git
    /// config and ~/.git-credentials. Reports each with file, key or line, host,
    /// what kind of secret it looks like and a masked preview (never the value),
    /// then rewrites the files: URLs lose only the password (and a static token
    /// username), credentials files lose only Bitbucket lines. Writes are atomic
    /// (git's lock file, then rename). Exit codes: 0 ok, 1 found (--check),
    /// 2 a file could not be read or written (nothing is lost).
    #[command(after_help = SCRUB_EXAMPLES, args_override_self = true)]
    Scrub(ScrubArgs),
}

const SCRUB_EXAMPLES: &str = "\
Examples:
  bbinject scrub                       # the repository in the current directory
  bbinject scrub --check               # a CI gate: exit 1 if any credential is on disk
  bbinject scrub --global --dry-run    # what would change in ~/.gitconfig and ~/.git-credentials
  bbinject scrub /srv/agent/work/* --format json";

#[derive(Debug, Args)]
pub struct ScrubArgs {
    /// Repositories (work trees or bare) to scrub [default: the current directory].
    #[arg(value_name = "PATH")]
    pub paths: Vec<std::path::PathBuf>,

    /// Also the global git config and ~/.git-credentials.
    #[arg(long)]
    pub global: bool,

    /// Change nothing; exit 1 if anything is found.
    #[arg(long, conflicts_with = "dry_run")]
    pub check: bool,

    /// Change nothing; show what would change.
    #[arg(long)]
    pub dry_run: bool,

    /// Another git host whose credentials to remove (bitbucket.org always counts).
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,

    /// Output: `text` or `json`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

const EXPORT_EXAMPLES: &str = "\
Examples:
  eval \"$(bbinject export --ttl 10m)\"          # sh, bash, zsh
  bbinject export --format fish | source
  bbinject export --format teamcity              # ##teamcity[setParameter …] service messages
  bbinject export --format powershell | Out-String | Invoke-Expression   # PowerShell
  bbinject export --format cmd > bb-env.cmd && call bb-env.cmd         # cmd.exe batch file
  bbinject export --format github >> \"$GITHUB_ENV\"
  bbinject export --revoke                       # end the broker early";

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Repository to preflight, as WORKSPACE/SLUG (repeatable). Defaults to
    /// $BITBUCKET_REPO_FULL_NAME inside Bitbucket Pipelines.
    #[arg(long = "repo", value_name = "WORKSPACE/SLUG")]
    pub repos: Vec<RepoRef>,

    /// Skip the preflight.
    #[arg(long)]
    pub no_preflight: bool,

    /// How long the broker lives, e.g. 10m, 1h. OAuth tokens are minted again
    /// before they expire, so a TTL longer than a token's life (2h) is fine.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub ttl: Duration,

    /// End the broker after it handed out the password N times.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_uses: Option<u32>,

    /// Another git host the credential may be sent to (as for `exec`).
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,

    /// The syntax of the assignments.
    #[arg(long, value_enum, default_value_t = ExportFormat::Sh)]
    pub format: ExportFormat,

    /// End the broker the exported variables point at, now.
    #[arg(long, conflicts_with_all = ["repos", "no_preflight", "max_uses", "hosts"])]
    pub revoke: bool,

    #[command(flatten)]
    pub broker: BrokerArgs,

    #[command(flatten)]
    pub probe: ProbeArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// `export NAME='value'` (POSIX sh; also bash and zsh)
    Sh,
    Bash,
    Zsh,
    /// `set -gx NAME 'value'`
    Fish,
    /// `$env:NAME = 'value'`
    Powershell,
    /// `set "NAME=value"` (a batch file to `call`; `%` doubled)
    Cmd,
    /// `##teamcity[setParameter name='env.NAME' value='…']`
    Teamcity,
    /// lines for `$GITHUB_ENV`
    Github,
    /// `NAME="value"`
    Dotenv,
}

const EXEC_EXAMPLES: &str = "\
Examples:
  bbinject exec -- git clone https://bitbucket.org/acme/app.git
  bbinject exec --repo acme/app --need write -- ./release.sh
  bbinject exec --repo acme/app --repo acme/lib -- git submodule update --init --jobs 4
  ENTRYPOINT [\"bbinject\", \"exec\", \"--\"]    # in a Dockerfile";

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Repository to preflight, as WORKSPACE/SLUG (repeatable). Defaults to
    /// $BITBUCKET_REPO_FULL_NAME inside Bitbucket Pipelines.
    #[arg(long = "repo", value_name = "WORKSPACE/SLUG")]
    pub repos: Vec<RepoRef>,

    /// Skip the preflight and start CMD straight away.
    #[arg(long)]
    pub no_preflight: bool,

    /// Hand out the password at most N times, then refuse.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_uses: Option<u32>,

    /// Another git host the credential may be sent to: `host`, `host:port`, or a
    /// URL (http:// only for a loopback host). The --git-url host is always allowed.
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,

    #[command(flatten)]
    pub broker: BrokerArgs,

    /// Leave the variables that held the secret in CMD's environment.
    #[arg(long)]
    pub keep_env: bool,

    /// Pass CMD's output through untouched instead of masking secrets in it
    /// (CMD then writes to bbinject's stdout and stderr directly, so it sees a
    /// terminal if there is one).
    #[arg(long)]
    pub no_redact: bool,

    /// Give CMD one pipe for stdout and stderr, masked as one stream (a secret
    /// split across the two is masked in the merged log). The default when
    /// bbinject's stdout and stderr are the same file or pipe, as in most CI
    /// logs; CMD's stderr then arrives on bbinject's stdout.
    #[arg(long)]
    pub merge_output: bool,

    #[command(flatten)]
    pub probe: ProbeArgs,

    /// The command to run, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CredentialAction {
    Get,
    Store,
    Erase,
}

impl CredentialAction {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialAction::Get => "get",
            CredentialAction::Store => "store",
            CredentialAction::Erase => "erase",
        }
    }
}

const CHECK_EXAMPLES: &str = "\
Examples:
  bbinject check --repo acme/app
  bbinject check --repo acme/app --repo acme/shared-lib --need write
  BITBUCKET_API_TOKEN_FILE=/run/secrets/bb_token bbinject check --repo acme/app --format json
  bbinject check    # inside Bitbucket Pipelines: checks $BITBUCKET_REPO_FULL_NAME";

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Repository to check, as WORKSPACE/SLUG (repeatable). Defaults to
    /// $BITBUCKET_REPO_FULL_NAME inside Bitbucket Pipelines.
    #[arg(long = "repo", value_name = "WORKSPACE/SLUG")]
    pub repos: Vec<RepoRef>,

    /// Output: `text` for people, `json` for machines (a stable object, see README).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    #[command(flatten)]
    pub probe: ProbeArgs,
}

/// What the broker of `exec` and `export` may answer for, and its records.
#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// Answer only for these repositories (WORKSPACE/SLUG or WORKSPACE/*,
    /// repeatable; BBINJECT_ALLOW_REPO takes a comma-separated list); every
    /// other request is refused, however broad the token.
    #[arg(
        long = "allow-repo",
        value_name = "WORKSPACE/SLUG",
        env = "BBINJECT_ALLOW_REPO",
        value_delimiter = ','
    )]
    pub allow_repos: Vec<String>,

    /// Answer only for the --repo repositories: the preflight's list is the allow-list.
    #[arg(long)]
    pub allow_checked: bool,

    /// Append one JSON line per broker decision to PATH (created 0600; `-`
    /// for stderr with exec). Never holds a secret.
    #[arg(long, value_name = "PATH")]
    pub audit_log: Option<PathBuf>,

    /// Send SSH-style URLs of the allowed hosts (`git@bitbucket.org:ws/r.git`,
    /// `ssh://git@bitbucket.org/ws/r.git`, e.g. in .gitmodules) over HTTPS
    /// through the broker, by environment-only `url.<https>.insteadOf` rules.
    #[arg(long, env = "BBINJECT_REWRITE_SSH")]
    pub rewrite_ssh: bool,

    /// Remove each secret file once it is read, so the build cannot open it
    /// later (Jenkins `withCredentials` file bindings, TeamCity temporary
    /// files). Only a file of ours in a directory of ours that we may write
    /// to; anything else (a read-only Kubernetes Secret mount) is an error
    /// before the command starts. A consumed file is not watched for rotation.
    #[arg(long)]
    pub consume_secret_files: bool,
}

/// Options shared by every command that reads credentials and runs the preflight.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// YAML file with several credentials matched to workspaces or repositories.
    #[arg(long, env = "BBINJECT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Directory of secret files named after the variables in lower case
    /// (e.g. /run/secrets/bitbucket_api_token), as Docker and Kubernetes mount them.
    /// BBINJECT_SECRETS_DIR keeps the path off the command line.
    #[arg(long, env = "BBINJECT_SECRETS_DIR", value_name = "DIR")]
    pub secrets_dir: Option<PathBuf>,

    /// What the build needs: `read` (clone, fetch) or `write` (push too) [default: read].
    /// It drives the preflight only: git's credential requests do not say
    /// whether they are for a fetch or a push.
    #[arg(long, value_enum)]
    pub need: Option<Need>,

    /// Also probe Git LFS for each repository (an empty download batch,
    /// POST WORKSPACE/SLUG.git/info/lfs/objects/batch).
    #[arg(long)]
    pub lfs: bool,

    /// Bitbucket REST API base URL [default: https://api.bitbucket.org/2.0].
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,

    /// Base URL of git over HTTPS, the host of your clone URLs [default: https://bitbucket.org].
    #[arg(long, value_name = "URL")]
    pub git_url: Option<String>,

    /// OAuth token endpoint for client-credentials consumers
    /// [default: https://bitbucket.org/site/oauth2/access_token].
    #[arg(long, value_name = "URL")]
    pub token_url: Option<String>,

    /// PEM file of extra root certificates to trust (TLS-inspecting proxies);
    /// SSL_CERT_FILE is honoured as well.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// Time limit for each request, e.g. 20s, 1m.
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Time limit for each probe, retries and their pauses included (a
    /// server that drips its answer cannot hold the preflight for retries ×
    /// --timeout), e.g. 45s, 2m.
    #[arg(long, value_name = "DURATION", default_value = "45s", value_parser = parse_duration)]
    pub deadline: Duration,

    /// How many repositories to probe at once (one client, shared connections;
    /// a 429 pauses them all).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,

    /// Retries after a connect error, timeout, 429 or 5xx (with exponential backoff).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=10))]
    pub retries: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// `500ms`, `20s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let input = input.trim();
    let split = input
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(input.len());
    let (number, unit) = input.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{input}` is not a duration like 30s or 2m"))?;
    let duration = match unit {
        "" | "s" => Duration::from_secs(value),
        "ms" => Duration::from_millis(value),
        "m" => Duration::from_secs(value.saturating_mul(60)),
        "h" => Duration::from_secs(value.saturating_mul(3600)),
        _ => {
            return Err(format!(
                "`{input}`: unknown unit `{unit}` (use ms, s, m or h)"
            ));
        }
    };
    if duration.is_zero() {
        return Err("a duration must be more than zero".into());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        for bad in ["", "s", "-1s", "0", "3 days", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
