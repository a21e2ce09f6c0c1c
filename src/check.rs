//! `bbinject check`: turns the command line (and config defaults) into
//! validated settings, runs the preflight and prints the report.
//!
//! The report goes to stdout (text or JSON); errors that stop the check before
//! it starts go to stderr as one line and a hint, and, with `--format json`,
//! also to stdout as a report with a `configuration` problem.

use std::io::Write as _;

use crate::bitbucket::{self, Endpoints, HttpSettings, Need, Preflight, Problem, Report};
use crate::cli::{CheckArgs, Format, ProbeArgs};
use crate::credential::{CredentialSet, Environment, RepoRef, Resolver};
use crate::error::{self, Error, ExitCode};

/// Validated preflight settings: the command line over config defaults over
/// built-in defaults.
pub struct Settings {
    pub endpoints: Endpoints,
    pub http: HttpSettings,
    pub need: Need,
}

impl Settings {
    pub fn new(args: &ProbeArgs, set: &CredentialSet) -> Result<Self, Error> {
        let defaults = &set.defaults;
        let pick = |flag: &Option<String>, config: &Option<String>, builtin: &str| {
            flag.clone()
                .or_else(|| config.clone())
                .unwrap_or_else(|| builtin.to_owned())
        };
        let endpoints = Endpoints::parse(
            &pick(
                &args.api_url,
                &defaults.api_url,
                bitbucket::endpoint_defaults::API,
            ),
            &pick(
                &args.git_url,
                &defaults.git_url,
                bitbucket::endpoint_defaults::GIT,
            ),
            &pick(
                &args.token_url,
                &defaults.token_url,
                bitbucket::endpoint_defaults::TOKEN,
            ),
        )?;
        let http = HttpSettings {
            timeout: args.timeout,
            retries: args.retries,
            ca_file: args.ca_file.clone(),
            ..HttpSettings::default()
        };
        Ok(Self {
            endpoints,
            http,
            need: args.need.or(defaults.need).unwrap_or_default(),
        })
    }
}

/// Resolves credentials the way every command does.
pub fn resolve(args: &ProbeArgs, env: &dyn Environment) -> Result<CredentialSet, Error> {
    let resolver = Resolver {
        env,
        secrets_dir: args.secrets_dir.as_deref(),
        config_file: args.config.as_deref(),
    };
    Ok(resolver.resolve()?)
}

/// `--repo` values, or `$BITBUCKET_REPO_FULL_NAME` inside Pipelines.
pub fn repositories(given: &[RepoRef], env: &dyn Environment) -> Result<Vec<RepoRef>, Error> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    match env
        .var_os("BITBUCKET_REPO_FULL_NAME")
        .and_then(|v| v.into_string().ok())
    {
        Some(full_name) if !full_name.is_empty() => RepoRef::parse(&full_name)
            .map(|r| vec![r])
            .map_err(Error::PipelinesRepo),
        _ => Ok(vec![]),
    }
}

pub async fn run(args: &CheckArgs, env: &dyn Environment) -> ExitCode {
    let prepared = (|| {
        let set = resolve(&args.probe, env)?;
        let settings = Settings::new(&args.probe, &set)?;
        let repos = repositories(&args.repos, env)?;
        let preflight = Preflight::new(settings.http, settings.endpoints, settings.need)?;
        Ok::<_, Error>((set, repos, preflight))
    })();
    let (set, repos, preflight) = match prepared {
        Ok(p) => p,
        Err(e) => {
            error::print(&e);
            if args.format == Format::Json {
                let mut report = Report::new(args.probe.need.unwrap_or_default());
                report.push(Problem::error(e.code(), e.to_string(), e.hint()));
                print_stdout(&report.to_json());
            }
            return e.exit_code();
        }
    };
    // Our log lines and the report go through the redactor too: server text is
    // already scrubbed, this is the second lock.
    crate::redact::set_global(
        crate::exec::redaction(&set, &[], &crate::exec::proxy_secrets(env)).0,
    );
    let report = preflight.run(&set, &repos).await;
    match args.format {
        Format::Text => print_stdout(&report.render_text()),
        Format::Json => print_stdout(&report.to_json()),
    }
    report.exit()
}

/// A closed stdout (`bbinject check | head -1`) is not an error of ours.
fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&crate::redact::redact_own(text.as_bytes()));
    if !text.ends_with('\n') {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}
