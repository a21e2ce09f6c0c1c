//! The manual: a man page per command, generated from the clap definitions
//! (the same text as `--help`) plus EXIT STATUS, ENVIRONMENT and EXAMPLES
//! sections written here, so `bbinject-check(1)` and friends exist and say
//! what a CI job needs. It reads no credential and touches no file except
//! the pages it is asked to write.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory as _;

use crate::cli::Cli;

/// What each command exits with.
fn exit_status(name: &str) -> &'static [(&'static str, &'static str)] {
    const PREFLIGHT: &[(&str, &str)] = &[
        ("0", "the credential works for every repository asked about"),
        (
            "2",
            "usage or configuration: no credential, NAME and NAME_FILE both set, a bad config or option",
        ),
        (
            "3",
            "Bitbucket rejected the credential (401/410: wrong, expired, revoked, an app password)",
        ),
        (
            "4",
            "authenticated but not allowed (403, 404 on a private repository, a missing scope, write needed)",
        ),
        (
            "5",
            "Bitbucket could not be reached (DNS, TLS, proxy, timeout, 5xx or 429 after retries)",
        ),
    ];
    match name {
        "check" => PREFLIGHT,
        "exec" => &[
            ("N", "the command's own exit status"),
            ("128+n", "the command was killed by signal n"),
            (
                "2-5",
                "the preflight or the set-up failed before the command started (as for check)",
            ),
            ("126", "the command could not be executed"),
            ("127", "the command was not found"),
        ],
        "export" => &[
            ("0", "the broker runs and the assignments were printed"),
            (
                "2-5",
                "the preflight or the set-up failed (as for check); no broker runs",
            ),
        ],
        "scrub" => &[
            ("0", "nothing found, or everything found was removed"),
            ("1", "--check: credentials were found"),
            (
                "2",
                "a path or file could not be read or written, or a credential is in a file included from outside the paths given",
            ),
        ],
        "credential" => &[
            (
                "0",
                "always, for git: a refusal is `quit=1` on stdout and one line on stderr",
            ),
            ("1", "git's input could not be read"),
        ],
        "completions" | "man" => &[("0", "success"), ("2", "a usage error")],
        _ => &[
            ("0", "success"),
            ("1", "scrub --check found credentials"),
            ("2-5", "as for bbinject-check(1)"),
            (
                "other",
                "bbinject exec passes the command's status through; see bbinject-exec(1)",
            ),
        ],
    }
}

const CREDENTIAL_ENV: &[(&str, &str)] = &[
    (
        "BITBUCKET_API_TOKEN",
        "an Atlassian API token with Bitbucket scopes",
    ),
    (
        "BITBUCKET_ACCESS_TOKEN",
        "a repository, project or workspace access token",
    ),
    (
        "BITBUCKET_OAUTH_CLIENT_ID, BITBUCKET_OAUTH_CLIENT_SECRET",
        "an OAuth consumer (client credentials)",
    ),
    (
        "BITBUCKET_APP_PASSWORD",
        "a legacy app password (removed by Bitbucket on 2026-07-28; diagnosed)",
    ),
    (
        "BITBUCKET_USERNAME",
        "the Bitbucket username (git username for API tokens and app passwords)",
    ),
    (
        "BITBUCKET_EMAIL",
        "the Atlassian account email (REST authentication of API tokens)",
    ),
    (
        "NAME_FILE",
        "each variable above may instead name a file holding the value",
    ),
    (
        "BBINJECT_CONFIG",
        "a YAML config with several credentials (as --config)",
    ),
    (
        "BITBUCKET_REPO_FULL_NAME",
        "inside Bitbucket Pipelines, the repository to check when no --repo is given",
    ),
    (
        "HTTPS_PROXY, NO_PROXY",
        "the proxy for the REST API and git probes",
    ),
    (
        "SSL_CERT_FILE",
        "a CA bundle to trust instead of the system's",
    ),
    ("RUST_LOG", "log filter (overrides -v)"),
];

fn environment(name: &str) -> Vec<(&'static str, &'static str)> {
    let mut vars = Vec::new();
    if matches!(name, "check" | "exec" | "export" | "") {
        vars.extend_from_slice(CREDENTIAL_ENV);
    }
    match name {
        "exec" | "export" => vars.extend_from_slice(&[
            (
                "GIT_CONFIG_COUNT",
                "entries the caller set are kept; ours are appended after them",
            ),
            (
                "GIT_ASKPASS, BBINJECT_SOCKET, BBINJECT_CAPABILITY",
                "set for the command (exec) or printed (export): how git reaches the broker",
            ),
        ]),
        "credential" => vars.push((
            "BBINJECT_SOCKET, BBINJECT_CAPABILITY",
            "the broker to ask, set by exec or export",
        )),
        "scrub" => vars.extend_from_slice(&[
            (
                "HOME, XDG_CONFIG_HOME",
                "where --global looks for ~/.gitconfig, ~/.git-credentials and git/config",
            ),
            ("GIT_CONFIG_GLOBAL", "the global git config file, when set"),
        ]),
        _ => {}
    }
    if name == "export" {
        vars.push((
            "BBINJECT_BROKER_READY_TIMEOUT_MS",
            "how long to wait for the detached broker (default 10000)",
        ));
    }
    vars
}

/// Escapes text for a roff line: backslashes, and a leading `.` or `'`.
fn roff_text(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

fn tagged(out: &mut String, items: &[(&str, &str)]) {
    for (tag, text) in items {
        out.push_str(&format!(
            ".TP\n\\fB{}\\fR\n{}\n",
            roff_text(tag),
            roff_text(text)
        ));
    }
}

/// The `Examples:` lines of a command's after-help, as an EXAMPLES section.
fn examples(cmd: &clap::Command) -> String {
    let Some(after) = cmd.get_after_help().map(ToString::to_string) else {
        return String::new();
    };
    let lines: Vec<&str> = after
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("Examples"))
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let mut out = String::from(".SH EXAMPLES\n.nf\n");
    for line in lines {
        out.push_str(&roff_text(line.trim_start()));
        out.push('\n');
    }
    out.push_str(".fi\n");
    out
}

/// One page: clap's sections, then ours.
fn page(cmd: clap::Command, name: &str, out: &mut dyn Write) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(out)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(out)?;
    }
    let mut extra = String::from(".SH \"EXIT STATUS\"\n");
    tagged(&mut extra, exit_status(name));
    let env = environment(name);
    if !env.is_empty() {
        extra.push_str(".SH ENVIRONMENT\n");
        tagged(&mut extra, &env);
    }
    extra.push_str(&examples(&cmd));
    extra.push_str(".SH \"SEE ALSO\"\n");
    let others: Vec<String> = pages()
        .into_iter()
        .filter(|(_, n)| n != name)
        .map(|(cmd, _)| {
            format!(
                "\\fB{}\\fR(1)",
                roff_text(cmd.get_display_name().unwrap_or("bbinject"))
            )
        })
        .chain(["\\fBgit\\-credential\\fR(1)".to_owned()])
        .collect();
    extra.push_str(&others.join(", "));
    extra.push('\n');
    out.write_all(extra.as_bytes())?;
    man.render_version_section(out)
}

/// Every page: the main command (name "") and each visible subcommand.
fn pages() -> Vec<(clap::Command, String)> {
    let mut cmd = Cli::command();
    cmd.build();
    let mut pages = vec![(cmd.clone(), String::new())];
    // clap adds `help` when it builds the command; `--help` covers it.
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let sub = sub.clone().version(env!("BBINJECT_VERSION"));
        let name = sub.get_name().to_owned();
        pages.push((sub, name));
    }
    pages
}

/// The main page, `bbinject(1)`.
pub fn write_main(out: &mut dyn Write) -> std::io::Result<()> {
    let (cmd, name) = pages().swap_remove(0);
    page(cmd, &name, out)
}

/// Writes `bbinject.1` and `bbinject-<command>.1` for every command into
/// `dir`; returns the files written.
pub fn write_all(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (cmd, name) in pages() {
        let file = dir.join(format!(
            "{}.1",
            cmd.get_display_name().unwrap_or_else(|| cmd.get_name())
        ));
        let mut text = Vec::new();
        page(cmd, &name, &mut text)?;
        std::fs::write(&file, text)?;
        written.push(file);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_visible_command_has_a_page_with_our_sections() {
        let pages = pages();
        let names: Vec<&str> = pages.iter().map(|(_, n)| n.as_str()).collect();
        for expected in [
            "",
            "check",
            "exec",
            "export",
            "scrub",
            "credential",
            "completions",
            "man",
        ] {
            assert!(names.contains(&expected), "{expected:?} in {names:?}");
        }
        assert!(!names.contains(&"broker"));
        for (cmd, name) in pages {
            let mut out = Vec::new();
            page(cmd, &name, &mut out).expect("render");
            let text = String::from_utf8(out).expect("utf-8");
            for section in [
                ".SH NAME",
                ".SH SYNOPSIS",
                ".SH \"EXIT STATUS\"",
                ".SH \"SEE ALSO\"",
            ] {
                assert!(text.contains(section), "{name}: {section}");
            }
        }
    }

    #[test]
    fn roff_text_escapes_what_roff_would_read_as_markup() {
        assert_eq!(roff_text(".hidden"), "\\&.hidden");
        assert_eq!(roff_text("a\\b-c"), "a\\\\b\\-c");
    }
}
