//! `ci-examples/` (and the README's shell examples) cannot rot: every YAML file
//! parses, and every `bbinject …` command line in them is accepted by the same
//! clap definitions the binary uses.

use std::path::PathBuf;

use crate::support::files_under;

use bbinject::cli::Cli;
use clap::Parser as _;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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
    assert!(checked >= 15, "only {checked} commands found");
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

/// The canonical places: the repository (releases) and the image registry.
const RELEASES: &str = "https://github.com/bbinject/bbinject/releases/download/";
const IMAGES: &str = "ghcr.io/bbinject/";

/// Every file a user copies an install step from.
fn install_sources() -> Vec<PathBuf> {
    let mut files = files_under(&root().join("ci-examples"));
    files.extend(["README.md", "pipe/pipe.yml", "Dockerfile"].map(|f| root().join(f)));
    files
}

/// The install snippets in `text`: from `v=…; f=bbinject-…` to the line that
/// installs, made runnable as POSIX sh (Kotlin's `${'$'}` is a `$`, TeamCity's
/// `%…%` parameters and /usr/local/bin become variables the test sets).
fn install_snippets(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !line.contains("; f=bbinject-") {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let mut snippet = String::new();
        for line in &lines[i..] {
            let line = line.get(indent..).unwrap_or(line.trim_start());
            snippet.push_str(line);
            snippet.push('\n');
            if snippet.contains("install -") && !line.trim_end().ends_with('\\') {
                break;
            }
        }
        out.push(
            snippet
                .replace("${'$'}", "$")
                .replace("%system.teamcity.build.tempDir%", "$TC_TEMP")
                .replace("%env.PATH%", "$PATH")
                .replace("/usr/local/bin/", "$BIN/"),
        );
    }
    out
}

#[test]
fn every_install_step_names_the_same_release_and_checks_it_before_use() {
    let version = env!("CARGO_PKG_VERSION");
    let mut snippets = 0;
    for file in install_sources() {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(&file).expect("read");
        for placeholder in ["ghcr.io/acme", "acme/bbinject", "cargo install --git"] {
            assert!(
                !text.contains(placeholder),
                "{name} still says {placeholder}"
            );
        }
        // Image references: one registry, the release's version.
        for (at, _) in text.match_indices(IMAGES) {
            let reference: String = text[at..]
                .chars()
                .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | ',' | ')' | '`'))
                .collect();
            let (image, tag) = reference
                .rsplit_once(':')
                .unwrap_or_else(|| panic!("{name}: {reference} has no tag"));
            assert!(
                ["bbinject", "bbinject-bin", "bbinject-pipe"]
                    .iter()
                    .any(|i| image == format!("{IMAGES}{i}")),
                "{name}: unknown image {image}"
            );
            assert_eq!(tag, version, "{name}: {reference}");
        }
        // Downloads: the pinned version, then SHA256SUMS of the same release,
        // checked before the binary is installed.
        if !text.contains(RELEASES) {
            continue;
        }
        let found = install_snippets(&text);
        assert!(
            !found.is_empty() || !powershell_installs(&text).is_empty(),
            "{name} downloads without `v=…; f=…` or a PowerShell install"
        );
        for snippet in found {
            let pin = format!("v={version}; f=bbinject-$v-x86_64-unknown-linux-musl");
            assert!(snippet.starts_with(&pin), "{name}: {snippet}");
            let binary = snippet.find(&format!("{RELEASES}v$v/$f")).expect("binary");
            let sums = snippet
                .find(&format!("{RELEASES}v$v/SHA256SUMS"))
                .expect("sums");
            let check = snippet.find("sha256sum -c -").expect("check");
            let install = snippet
                .find("&& install -")
                .expect("install after the check");
            assert!(
                binary < check && sums < check && check < install,
                "{name}: {snippet}"
            );
            snippets += 1;
        }
    }
    assert!(snippets >= 5, "only {snippets} install snippets found");
    // Every CI system's example installs bbinject one of the three ways.
    for file in files_under(&root().join("ci-examples")) {
        let text = std::fs::read_to_string(&file).expect("read");
        assert!(
            text.contains(RELEASES) || text.contains(IMAGES),
            "{} has no install step",
            file.display()
        );
    }
}

/// The PowerShell installs (README, Windows agents' examples), which cannot
/// run here (no PowerShell on Linux CI): each pins this release, takes its
/// SHA256SUMS, and compares the hash (failing with `throw`) before the exe is
/// moved into place.
#[test]
fn every_windows_install_pins_the_release_and_checks_the_hash_before_use() {
    let version = env!("CARGO_PKG_VERSION");
    let mut found = Vec::new();
    for file in install_sources() {
        let text = std::fs::read_to_string(&file).expect("read");
        for block in powershell_installs(&text) {
            let name = file.display();
            assert!(
                block.starts_with(&format!("$v = '{version}'")),
                "{name}: {block}"
            );
            let at = |needle: &str| {
                block
                    .find(needle)
                    .unwrap_or_else(|| panic!("{name}: no {needle} in {block}"))
            };
            assert!(block.contains("\"bbinject-$v-x86_64-pc-windows-gnu.exe\""));
            let base = at(&format!("\"{RELEASES}v$v\""));
            let sums = at("SHA256SUMS");
            let hash = at("Get-FileHash");
            let refuse = at("throw");
            let install = at("Move-Item");
            assert!(
                base < sums && sums < hash && hash < refuse && refuse < install,
                "{name}: {block}"
            );
            found.push(name.to_string());
        }
    }
    for needed in ["README.md", "Jenkinsfile.windows"] {
        assert!(
            found.iter().any(|f| f.ends_with(needed)),
            "no PowerShell install in {needed}: {found:?}"
        );
    }
}

/// The PowerShell install blocks in `text`: from `$v = '…'` to the line that
/// moves the checked exe into place.
fn powershell_installs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("$v = '") {
        let start = from + i;
        let end = text[start..]
            .find("Move-Item")
            .map(|m| start + m + text[start + m..].find('\n').unwrap_or(0))
            .unwrap_or(text.len());
        out.push(text[start..end].to_owned());
        from = end;
    }
    out
}

/// Each install snippet, run as written against a fake release (a `curl` that
/// serves a local directory): it installs a working binary; with a tampered
/// binary it fails and installs nothing, under a shell without `set -e`.
#[test]
fn every_install_snippet_installs_a_checked_binary_and_refuses_a_tampered_one() {
    use sha2::Digest as _;
    let version = env!("CARGO_PKG_VERSION");
    let asset = format!("bbinject-{version}-x86_64-unknown-linux-musl");
    let real = std::fs::read(env!("CARGO_BIN_EXE_bbinject")).expect("binary");
    let sums = format!("{:x}  {asset}\n", sha2::Sha256::digest(&real));
    let mut ran = 0;
    for file in install_sources() {
        let text = std::fs::read_to_string(&file).expect("read");
        for snippet in install_snippets(&text) {
            for tampered in [false, true] {
                let dir = tempfile::tempdir().expect("tempdir");
                let release = dir.path().join("release");
                let fakebin = dir.path().join("fakebin");
                let work = dir.path().join("work");
                for d in [&release, &fakebin, &work, &dir.path().join("bin")] {
                    std::fs::create_dir_all(d).expect("mkdir");
                }
                let mut served = real.clone();
                if tampered {
                    served.push(0);
                }
                std::fs::write(release.join(&asset), &served).expect("asset");
                std::fs::write(release.join("SHA256SUMS"), &sums).expect("sums");
                let curl = fakebin.join("curl");
                std::fs::write(
                    &curl,
                    format!(
                        "#!/bin/sh\n[ \"$1\" = -fsSLO ] || exit 2\n\
                         case \"$2\" in {RELEASES}v{version}/*) ;; *) exit 22;; esac\n\
                         cp \"$FAKE_RELEASE/${{2##*/}}\" . || exit 22\n"
                    ),
                )
                .expect("curl");
                std::fs::set_permissions(
                    &curl,
                    std::os::unix::fs::PermissionsExt::from_mode(0o755),
                )
                .expect("chmod");
                let run = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(&snippet)
                    .current_dir(&work)
                    .env_clear()
                    .env("PATH", format!("{}:/usr/bin:/bin", fakebin.display()))
                    .env("FAKE_RELEASE", &release)
                    .env("BIN", dir.path().join("bin"))
                    .env("TC_TEMP", dir.path().join("tc"))
                    .env("RUNNER_TEMP", dir.path().join("runner"))
                    .env("GITHUB_PATH", dir.path().join("github_path"))
                    .output()
                    .expect("sh");
                let status = run.status;
                let installed: Vec<PathBuf> = crate::support::files_under(dir.path())
                    .into_iter()
                    .filter(|p| p.file_name().is_some_and(|n| n == "bbinject"))
                    .collect();
                let place = file.display();
                if tampered {
                    assert!(
                        !status.success(),
                        "{place}: a tampered binary passed:\n{snippet}"
                    );
                    assert!(installed.is_empty(), "{place}: installed {installed:?}");
                } else {
                    assert!(status.success(), "{place}: {status}:\n{snippet}");
                    let [bin] = installed.as_slice() else {
                        panic!("{place}: installed {installed:?}\n{snippet}");
                    };
                    let out = std::process::Command::new(bin).arg("--version").output();
                    assert!(
                        out.is_ok_and(|o| o.status.success()),
                        "{place}: the installed binary does not run"
                    );
                }
                ran += 1;
            }
        }
    }
    assert!(ran >= 10, "only {ran} snippet runs");
}
