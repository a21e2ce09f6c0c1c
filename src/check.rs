//! `bbinject check`: turns the command line (and config defaults) into
//! validated settings, runs the preflight and prints the report.
//!
//! The report goes to stdout (text or JSON); errors that stop the check before
//! it starts go to stderr as one line and a hint, and, with `--format json`,
//! also to stdout as a report with a `configuration` problem. It starts no
//! broker and no process; its set-up is `settings`, its probes `bitbucket`.

use crate::bitbucket::{Preflight, Problem, Report};
use crate::broker::policy::Origin;
use crate::cli::{CheckArgs, Format};
use crate::credential::{Environment, RepoPattern};
use crate::error::{self, Error, Exit};
use crate::settings::{Settings, allowed_origins, repositories, resolve};

pub async fn run(args: &CheckArgs, env: &dyn Environment) -> Exit {
    let prepared = (|| {
        let set = resolve(&args.probe, env)?;
        let settings = Settings::new(&args.probe, &set)?;
        let repos = repositories(&args.repos, env)?;
        let hosts = allowed_origins(&settings, &[], &set)?.origins().to_vec();
        let rewrite_ssh = set.defaults.rewrite_ssh || flag_set(env, "BBINJECT_REWRITE_SSH");
        let preflight = Preflight::new(settings.http, settings.endpoints, settings.need)?
            .with_lfs(settings.lfs)
            .with_jobs(settings.jobs);
        Ok::<_, Error>((set, repos, preflight, hosts, rewrite_ssh))
    })();
    let (set, repos, preflight, hosts, rewrite_ssh) = match prepared {
        Ok(p) => p,
        Err(e) => {
            error::print(&e);
            if args.format == Format::Json {
                let mut report = Report::new(args.probe.need.unwrap_or_default());
                report.push(Problem::error(e.code(), e.to_string(), e.hint()));
                let _ = error::write_report(&report.to_json());
            }
            return e.exit_code();
        }
    };
    // Our log lines and the report go through the redactor too: server text is
    // already scrubbed, this is the second lock.
    crate::redact::set_global(
        crate::redact::Patterns::for_run(&set, &[], &crate::settings::proxy_secrets(env)).0,
    );
    let mut report = preflight.run(&set, &repos).await;
    // Repositories a build may touch (BBINJECT_ALLOW_REPO, config `allow:`)
    // that this check did not prove.
    let checked: Vec<String> = repos
        .iter()
        .map(|r| r.to_string().to_ascii_lowercase())
        .collect();
    let from_env = env
        .var_os("BBINJECT_ALLOW_REPO")
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut unchecked: Vec<String> = from_env
        .split(',')
        .filter_map(|e| RepoPattern::parse(e.trim()).ok())
        .chain(set.credentials().flat_map(|c| c.allow.iter().cloned()))
        .filter_map(|p| p.exact())
        .filter(|repo| !checked.contains(repo))
        .collect();
    unchecked.sort();
    unchecked.dedup();
    for repo in unchecked {
        report.push(Problem::warning(
            crate::codes::ProblemCode::AllowRepoNotChecked,
            format!("{repo} is on the allow-list but was not checked"),
            format!("add --repo {repo} so the preflight proves the credential works for it"),
        ));
    }
    if !rewrite_ssh && let Some(entries) = gitmodules_entries() {
        for (submodule, url) in ssh_submodules(&entries, &hosts) {
            report.push(Problem::warning(
                crate::codes::ProblemCode::SshSubmoduleUrl,
                format!(
                    "submodule {submodule} in .gitmodules uses the SSH URL {url}: git will use \
                     ssh for it, not the credential"
                ),
                "run the build with `bbinject exec --rewrite-ssh` (or BBINJECT_REWRITE_SSH=1), \
                 which sends it over HTTPS through the broker",
            ));
        }
    }
    let written = match args.format {
        Format::Text => error::write_report(&report.render_text()),
        Format::Json => error::write_report(&report.to_json()),
    };
    if let Err(reason) = written {
        error::print_error(&reason, Some("check where stdout goes (a full disk?)"));
        return Exit::Usage;
    }
    report.exit()
}

/// Whether a boolean environment variable is set to a true value.
fn flag_set(env: &dyn Environment, name: &str) -> bool {
    env.var_os(name).is_some_and(|v| {
        !matches!(
            v.to_string_lossy().to_ascii_lowercase().as_str(),
            "" | "0" | "false" | "no" | "off"
        )
    })
}

/// The most of `.gitmodules` read: a real one is a few KiB.
const MAX_GITMODULES_BYTES: u64 = 1024 * 1024;

/// `./.gitmodules`, read as a bounded regular file (a FIFO, a device, a link
/// to `/dev/zero` or a huge file is skipped, never waited on or read whole)
/// and parsed by git itself. `None` when there is none, or it cannot be read
/// or parsed (said at debug level: this is only a hint).
fn gitmodules_entries() -> Option<Vec<crate::gitconfig::Entry>> {
    let path = std::path::Path::new(".gitmodules");
    let (bytes, _) = match crate::fsutil::read_regular_file(path, MAX_GITMODULES_BYTES) {
        Ok(read) => read,
        Err(crate::fsutil::FileProblem::Missing) => return None,
        Err(problem) => {
            tracing::debug!(
                "not reading .gitmodules: {}",
                problem.describe(MAX_GITMODULES_BYTES)
            );
            return None;
        }
    };
    let text = std::str::from_utf8(&bytes).ok()?;
    crate::gitconfig::entries(text)
        .map_err(|e| tracing::debug!("not reading .gitmodules: {e}"))
        .ok()
}

/// `(submodule, url)` for each `.gitmodules` URL (`submodule.<name>.url`, as
/// git lists it) that is SSH-style (`git@host:` or `ssh://git@host/`) for one
/// of `hosts`.
fn ssh_submodules(entries: &[crate::gitconfig::Entry], hosts: &[Origin]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (key, value) in entries {
        let Some(submodule) = key
            .strip_prefix("submodule.")
            .and_then(|rest| rest.strip_suffix(".url"))
        else {
            continue;
        };
        let url = value.trim();
        let ssh_host = url
            .strip_prefix("ssh://git@")
            .map(|rest| rest.split(['/', ':']).next().unwrap_or_default())
            .or_else(|| {
                url.strip_prefix("git@")
                    .and_then(|rest| rest.split_once(':'))
                    .map(|(host, _)| host)
            });
        if let Some(host) = ssh_host
            && hosts
                .iter()
                .any(|o| o.hostname().eq_ignore_ascii_case(host))
        {
            found.push((submodule.to_owned(), url.to_owned()));
        }
    }
    found
}

// These run git: the Windows unit tests run under wine, which has no git.
#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn ssh_submodule_urls_of_allowed_hosts_are_found() {
        let hosts = [Origin {
            scheme: "https".into(),
            host: "bitbucket.org".into(),
        }];
        let gitmodules = "[submodule \"lib\"]\n\tpath = lib\n\turl = git@bitbucket.org:acme/lib.git\n\
                          [submodule \"tools\"]\n\turl = ssh://git@bitbucket.org/acme/tools.git\n\
                          [submodule \"web\"]\n\turl = https://bitbucket.org/acme/web.git\n\
                          [submodule \"other\"]\n\turl = git@github.com:acme/other.git\n";
        let entries = crate::gitconfig::entries(gitmodules).expect("parsed by git");
        let found = ssh_submodules(&entries, &hosts);
        assert_eq!(
            found,
            [
                (
                    "lib".to_owned(),
                    "git@bitbucket.org:acme/lib.git".to_owned()
                ),
                (
                    "tools".to_owned(),
                    "ssh://git@bitbucket.org/acme/tools.git".to_owned()
                ),
            ]
        );
    }
}
