//! `bbinject check`: turns the command line (and config defaults) into
//! validated settings, runs the preflight and prints the report.
//!
//! The report goes to stdout (text or JSON); errors that stop the check before
//! it starts go to stderr as one line and a hint, and, with `--format json`,
//! also to stdout as a report with a `configuration` problem. It starts no
//! broker and no process; its set-up is `settings`, its probes `bitbucket`.

use std::io::Write as _;

use crate::bitbucket::{Preflight, Problem, Report};
use crate::cli::{CheckArgs, Format};
use crate::credential::Environment;
use crate::error::{self, Error, Exit};
use crate::settings::{Settings, repositories, resolve};

pub async fn run(args: &CheckArgs, env: &dyn Environment) -> Exit {
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
        crate::redact::Patterns::for_run(&set, &[], &crate::settings::proxy_secrets(env)).0,
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
