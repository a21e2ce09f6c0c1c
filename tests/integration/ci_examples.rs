//! `ci-examples/` (and the README's shell examples) cannot rot: every YAML file
//! parses, and every `bbinject …` command line in them is accepted by the same
//! clap definitions the binary uses.

use std::path::{Path, PathBuf};

use bbinject::cli::Cli;
use clap::Parser as _;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readdir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The `bbinject …` command that starts at `start` in `text`, cut where the
/// surrounding syntax ends it: the quote or `$(` it was opened with, a pipe, a
/// redirection, `&&`, `;`, or the end of the line.
fn command_at(text: &str, start: usize) -> String {
    let before = text[..start].trim_end_matches(' ');
    let rest = &text[start..];
    let line = rest.lines().next().unwrap_or_default();
    let closer = if before.ends_with("$(") {
        Some(')')
    } else if before.ends_with('\'') {
        Some('\'')
    } else if before.ends_with('"') {
        Some('"')
    } else {
        None
    };
    let mut end = closer.and_then(|c| line.find(c)).unwrap_or(line.len());
    for stop in [" | ", " >> ", " > ", " && ", "; ", " # "] {
        if let Some(i) = line[..end].find(stop) {
            end = end.min(i);
        }
    }
    line[..end].trim().to_owned()
}

/// Every `bbinject …` command line in `text` (not `bbinject-…` words or paths).
fn commands_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("bbinject ") {
        let start = from + i;
        let preceded_ok = start == 0
            || !text[..start]
                .ends_with(|c: char| c.is_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'));
        // Prose in a comment (`# …`, `// …`) is not a command.
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let before = text[line_start..start].trim_start();
        let in_comment =
            before.starts_with('#') || before.starts_with("//") || before.contains(" # ");
        // On a `docker …` line, `bbinject` is the image's name, not a command.
        let image_name = before.starts_with("docker ");
        if preceded_ok && !in_comment && !image_name {
            out.push(command_at(text, start));
        }
        from = start + "bbinject ".len();
    }
    out
}

/// `command: ["bbinject", …]` sequences in a parsed YAML document.
fn argv_lists(value: &serde_json::Value, out: &mut Vec<Vec<String>>) {
    match value {
        serde_json::Value::Array(items) => {
            if items.first().and_then(|v| v.as_str()) == Some("bbinject") {
                out.push(
                    items
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                );
            } else {
                items.iter().for_each(|v| argv_lists(v, out));
            }
        }
        serde_json::Value::Object(map) => map.values().for_each(|v| argv_lists(v, out)),
        _ => {}
    }
}

fn accepted(argv: &[String]) -> Result<(), String> {
    Cli::try_parse_from(argv)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn every_command_in_ci_examples_is_accepted_by_the_cli() {
    let dir = root().join("ci-examples");
    let files = files_under(&dir);
    let mut checked = 0;
    let mut systems = std::collections::BTreeSet::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        let mut argvs: Vec<Vec<String>> = Vec::new();
        let name = file.display().to_string();
        if name.ends_with(".yml") || name.ends_with(".yaml") {
            let value: serde_json::Value = serde_saphyr::from_str(&text)
                .unwrap_or_else(|e| panic!("{name} is not valid YAML: {e}"));
            argv_lists(&value, &mut argvs);
        }
        for command in commands_in(&text) {
            // Array form (`"bbinject", "--secrets-dir", …`) is covered above.
            if command.contains("\", \"") {
                continue;
            }
            let argv = shlex::split(&command)
                .unwrap_or_else(|| panic!("{name}: cannot split {command:?}"));
            argvs.push(argv);
        }
        assert!(!argvs.is_empty(), "{name} has no bbinject command");
        for argv in argvs {
            if let Err(e) = accepted(&argv) {
                panic!("{name}: the CLI rejects {argv:?}:\n{e}");
            }
            checked += 1;
        }
        systems.insert(
            file.strip_prefix(&dir)
                .expect("prefix")
                .components()
                .next()
                .map(|c| c.as_os_str().to_string_lossy().into_owned()),
        );
    }
    assert!(
        systems.len() >= 6,
        "examples for TeamCity, Jenkins, Pipelines, GitHub, GitLab, Kubernetes: {systems:?}"
    );
    assert!(checked >= 20, "only {checked} commands found");
}

#[test]
fn every_command_in_the_readme_shell_blocks_is_accepted() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let mut in_shell = false;
    let mut checked = 0;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_shell = line == "```sh";
            continue;
        }
        if !in_shell {
            continue;
        }
        for command in commands_in(line) {
            let argv = shlex::split(&command).unwrap_or_else(|| panic!("cannot split {command:?}"));
            if let Err(e) = accepted(&argv) {
                panic!("README: the CLI rejects {argv:?}:\n{e}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 6, "only {checked} README commands found");
}

#[test]
fn the_extractor_finds_commands_in_every_syntax() {
    let cases = [
        (
            "sh 'bbinject check --repo acme/app'",
            "bbinject check --repo acme/app",
        ),
        (
            "eval \"$(bbinject export --ttl 10m)\"",
            "bbinject export --ttl 10m",
        ),
        (
            "scriptContent = \"bbinject exec -- make\"",
            "bbinject exec -- make",
        ),
        (
            "- bbinject export --format github >> \"$GITHUB_ENV\"",
            "bbinject export --format github",
        ),
        (
            "bbinject check --format json | tee x",
            "bbinject check --format json",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(commands_in(text), [expected], "{text}");
    }
    assert!(commands_in("/usr/bin/bbinject-askpass x and ./bbinject/x").is_empty());
    assert!(commands_in("# run bbinject check first\nimage: x # with bbinject inside").is_empty());
    assert!(commands_in("docker run --rm -e X bbinject git clone url").is_empty());
}
