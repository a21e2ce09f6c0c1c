//! Set-up shared by `check`, `exec` and `export`, in one step from raw input
//! to validated settings (ripgrep's low-args → high-args): credentials
//! resolved from their sources, endpoints and HTTP settings from flags over
//! config defaults over built-ins, the repositories to prove, the broker's
//! allow-list, proxy passwords to mask; then the preflight and the OAuth
//! tokens a broker needs. It never starts a process or a broker, and never
//! prints a value.

use crate::bitbucket::{self, Bearer, Endpoints, HttpSettings, Need, Preflight};
use crate::broker::policy::AllowList;
use crate::cli::ProbeArgs;
use crate::credential::{CredentialSet, Environment, RepoPattern, RepoRef, Resolver};
use crate::error::{Error, Exit};
use crate::redact::{self, Patterns};
use crate::secret::Secret;

/// Validated preflight settings: the command line over config defaults over
/// built-in defaults.
pub struct Settings {
    pub endpoints: Endpoints,
    pub http: HttpSettings,
    pub need: Need,
    /// Probe Git LFS too.
    pub lfs: bool,
    /// Repositories probed at once.
    pub jobs: usize,
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
            deadline: args.deadline,
            retries: args.retries,
            ca_file: args.ca_file.clone(),
            ..HttpSettings::default()
        };
        Ok(Self {
            endpoints,
            http,
            need: args.need.or(defaults.need).unwrap_or_default(),
            lfs: args.lfs || defaults.lfs,
            jobs: usize::from(args.jobs),
        })
    }
}

impl Settings {
    /// Where the broker mints an OAuth consumer's next token.
    pub fn mint(&self) -> crate::broker::renew::MintSettings {
        crate::broker::renew::MintSettings {
            http: self.http.clone(),
            token_url: self.endpoints.token.clone(),
        }
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

/// What `exec` and `export` set up before their preflight. From here on our
/// own output is redacted with every secret known so far.
pub struct Prepared {
    pub set: CredentialSet,
    pub settings: Settings,
    pub repos: Vec<crate::credential::RepoRef>,
    pub allow: AllowList,
    pub proxies: Vec<(Secret, String, String)>,
    /// The redaction patterns of every secret known so far (and the sources
    /// of those too short to mask): built once; rebuilt only when OAuth
    /// bearer tokens add secrets.
    pub patterns: (Option<std::sync::Arc<Patterns>>, Vec<String>),
}

pub fn prepare(
    probe: &crate::cli::ProbeArgs,
    repos: &[crate::credential::RepoRef],
    hosts: &[String],
    env: &dyn Environment,
) -> Result<Prepared, Error> {
    let set = resolve(probe, env)?;
    let settings = Settings::new(probe, &set)?;
    let repos = repositories(repos, env)?;
    let allow = allowed_origins(&settings, hosts, &set)?;
    let proxies = proxy_secrets(env);
    let (patterns, too_short) = Patterns::for_run(&set, &[], &proxies);
    redact::set_global(patterns.clone());
    Ok(Prepared {
        set,
        settings,
        repos,
        allow,
        proxies,
        patterns: (patterns, too_short),
    })
}

/// Runs the preflight (unless `skip`), prints its problems, and fetches the
/// bearer token of every OAuth consumer: what `exec` and `export` do before a
/// broker starts. `Err(code)` means stop with that exit code; `doing` names
/// what is not done then (e.g. `not starting make`).
pub async fn preflight_and_tokens(
    set: &CredentialSet,
    repos: &[crate::credential::RepoRef],
    settings: &Settings,
    skip: bool,
    doing: &str,
) -> Result<Result<Vec<Option<Bearer>>, Exit>, Error> {
    // The HTTP client (and the system CA bundle it loads) is only needed for a
    // preflight or an OAuth token: `--no-preflight` with a token skips it.
    let needs_http = !skip
        || set
            .credentials()
            .any(|c| c.kind() == crate::credential::Kind::OauthClientCredentials);
    if skip {
        // The preflight report would carry these; without it, say them here.
        crate::error::print_credential_warnings(set);
    }
    if !needs_http {
        return Ok(Ok(set.credentials().map(|_| None).collect()));
    }
    let preflight = Preflight::new(
        settings.http.clone(),
        settings.endpoints.clone(),
        settings.need,
    )?
    .with_lfs(settings.lfs)
    .with_jobs(settings.jobs);
    let mut known_tokens = Vec::new();
    if !skip {
        let (mut report, tokens) = preflight.run_keeping_tokens(set, repos).await;
        known_tokens = tokens;
        if repos.is_empty() {
            // Without a repository there is nothing to prove beyond the
            // credential's form: say so once, quietly, instead of warnings on
            // every build.
            report.problems.retain(|p| {
                !matches!(
                    p.code,
                    crate::codes::ProblemCode::NotVerified
                        | crate::codes::ProblemCode::RestEmailMissing
                )
            });
            tracing::info!(
                "no repository to prove the credential against (no --repo, not in Bitbucket \
                 Pipelines): pass --repo WORKSPACE/SLUG to check it before the build"
            );
        }
        crate::error::print_problems(&report);
        if !report.ok {
            crate::error::print_error(
                &format!("preflight failed (exit {}); {doing}", report.exit_code),
                None,
            );
            return Ok(Err(report.exit()));
        }
    }
    Ok(match preflight.bearer_tokens(set, known_tokens).await {
        Ok(tokens) => Ok(tokens),
        Err(report) => {
            crate::error::print_problems(&report);
            Err(report.exit())
        }
    })
}

/// The origins the broker may answer for: the `--git-url` host, `--host`
/// values and the config's `hosts`.
pub fn allowed_origins(
    settings: &Settings,
    hosts: &[String],
    set: &CredentialSet,
) -> Result<AllowList, Error> {
    let mut allow = AllowList::new(&settings.endpoints.git);
    for host in hosts.iter().chain(set.defaults.hosts.iter()) {
        allow.add(host)?;
    }
    Ok(allow)
}

/// The broker's repository allow-list: `--allow-repo` entries, plus the
/// `--repo` list with `--allow-checked`. Empty means no limit.
pub fn allow_list(
    given: &[String],
    checked: bool,
    repos: &[RepoRef],
) -> Result<Vec<RepoPattern>, Error> {
    let mut list = given
        .iter()
        .map(|entry| RepoPattern::parse(entry.trim()).map_err(Error::AllowRepo))
        .collect::<Result<Vec<_>, _>>()?;
    if checked {
        if repos.is_empty() {
            return Err(Error::AllowCheckedWithoutRepo);
        }
        for repo in repos {
            list.push(RepoPattern::parse(&repo.to_string()).map_err(Error::AllowRepo)?);
        }
    }
    Ok(list)
}

/// Passwords in the userinfo of `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` (either
/// case): they reach the child through its environment and must not reach the log.
pub fn proxy_secrets(env: &dyn Environment) -> Vec<(Secret, String, String)> {
    crate::bitbucket::PROXY_VARIABLES
        .iter()
        .filter_map(|name| {
            let value = env.var_os(name)?.into_string().ok()?;
            let url = url::Url::parse(&value).ok()?;
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8()
                    .ok()
                    .map(|c| c.into_owned())
            };
            let password = decode(url.password()?)?;
            let user = decode(url.username()).unwrap_or_default();
            Some((
                Secret::new(password),
                user,
                format!("the password in {name}"),
            ))
        })
        .collect()
}
