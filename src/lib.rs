//! bbinject gets a Bitbucket Cloud credential from where CI systems keep
//! secrets (environment variables, mounted secret files, a YAML config) into
//! git over HTTPS without the secret reaching `.git/config`,
//! `~/.git-credentials`, a command line, a child's environment or a log, and
//! proves before the build starts that the credential works.
//!
//! Module map, in the order data flows (ARCHITECTURE.md §6); a module uses
//! only those above it:
//! - [`secret`], [`codes`], [`fsutil`], [`gitconfig`]: the one secret type; exit
//!   and problem codes; bounded, non-blocking reads of regular files; git's own
//!   parser for config text;
//! - [`credential`]: sources (env, files, secrets dir, YAML) → credentials;
//! - [`settings`]: raw flags + environment → validated settings, the shared set-up;
//! - [`bitbucket`]: HTTP, REST and git probes, the diagnosis, the report;
//! - [`broker`]: the process holding the secret, its policy, the front doors,
//!   the child's environment, the detached broker;
//! - [`redact`]: masking every form of every secret in output;
//! - [`check`], [`exec`], [`export`]: the commands (exec: the child process only);
//! - [`scrub`]: finding and removing credentials already on disk;
//! - [`cli`], [`error`], [`logging`], [`manual`]: the edges (arguments, messages, logs, man pages).

pub mod bitbucket;
pub mod broker;
pub mod check;
pub mod cli;
pub mod codes;
pub mod credential;
pub mod error;
pub mod exec;
pub mod export;
pub mod fsutil;
pub mod gitconfig;
pub mod logging;
pub mod manual;
pub mod redact;
pub mod scrub;
pub mod secret;
pub mod settings;
pub mod sys;

use cli::{Cli, Command};
use credential::ProcessEnvironment;
use error::{Error, Exit};

/// Runs the parsed command line; the caller turns the result into an exit code.
pub fn run(cli: Cli) -> Result<Exit, Error> {
    if let Command::Credential { action } = &cli.command {
        // git starts this for every request: no runtime, no network, fast.
        let code = broker::client::helper_main(action.as_str());
        return Ok(if code == std::process::ExitCode::SUCCESS {
            Exit::Success
        } else {
            Exit::Child(1)
        });
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let env = ProcessEnvironment;
    match &cli.command {
        Command::Check(args) => Ok(runtime.block_on(check::run(args, &env))),
        Command::Exec(args) => runtime.block_on(exec::run(args, &env)),
        Command::Export(args) => runtime.block_on(export::run(args, &env)),
        Command::Broker => Ok(runtime.block_on(broker::detached::serve())),
        Command::Scrub(args) => Ok(scrub::run(args, &env)),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            // Into a buffer first: clap_complete panics when its writer fails,
            // and a reader that stops early (`| grep -q`) closes the pipe.
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut command, "bbinject", &mut script);
            let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), &script);
            Ok(Exit::Success)
        }
        Command::Man { dir: Some(dir) } => match manual::write_all(dir) {
            Ok(files) => {
                for file in files {
                    println!("{}", file.display());
                }
                Ok(Exit::Success)
            }
            Err(e) => Err(Error::Manual {
                dir: dir.display().to_string(),
                reason: match e.kind() {
                    std::io::ErrorKind::NotFound => "it cannot be created there".into(),
                    std::io::ErrorKind::PermissionDenied => "permission denied".into(),
                    kind => kind.to_string(),
                },
            }),
        },
        Command::Man { dir: None } => {
            let mut page = Vec::new();
            manual::write_main(&mut page).map_err(Error::Runtime)?;
            // A closed stdout (`| head`) is not an error.
            let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), &page);
            Ok(Exit::Success)
        }
        Command::Credential { .. } => Ok(Exit::Success),
    }
}

/// Helpers shared by unit tests across modules.
#[cfg(test)]
pub(crate) mod testing {
    /// A Bitbucket response body from `tests/fixtures/bitbucket/`.
    pub fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/bitbucket/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// A FIFO at `path`, by the `mkfifo` tool (rustix has no `mkfifoat` on macOS).
    #[cfg(unix)]
    pub fn mkfifo(path: &std::path::Path) {
        let made = std::process::Command::new("mkfifo")
            .args(["-m", "600"])
            .arg(path)
            .status()
            .expect("mkfifo");
        assert!(made.success(), "mkfifo {}", path.display());
    }
}
