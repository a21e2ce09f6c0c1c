//! Release polish: `--version`, shell completions, the man page.

use crate::support::Bb;

fn run(args: &[&str]) -> crate::support::Run {
    let bb = Bb::new().args(args);
    bb.run()
}

#[test]
fn version_names_the_commit_when_built_from_a_checkout() {
    let out = run(&["--version"]);
    assert_eq!(out.code(), 0, "{}", out.describe());
    let line = out.stdout.trim();
    let version = concat!("bbinject ", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(version), "{line}");
    if std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.git")).exists() {
        let stamp = line.strip_prefix(version).unwrap_or_default().trim();
        let inner = stamp.trim_start_matches('(').trim_end_matches(')');
        let (commit, date) = inner
            .split_once(' ')
            .unwrap_or_else(|| panic!("no commit in {line:?}"));
        assert!(
            commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit()),
            "{line}"
        );
        assert_eq!(date.len(), 10, "{line}");
    }
}

#[test]
fn completions_are_generated_for_every_shell_and_bash_parses_them() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = run(&["completions", shell]);
        assert_eq!(out.code(), 0, "{shell}: {}", out.describe());
        for word in ["bbinject", "check", "exec", "export", "scrub"] {
            assert!(out.stdout.contains(word), "{shell}: {word} missing");
        }
        if shell == "bash" {
            let dir = tempfile::tempdir().expect("tempdir");
            let file = dir.path().join("bbinject.bash");
            std::fs::write(&file, &out.stdout).expect("write");
            let status = std::process::Command::new("bash")
                .arg("-n")
                .arg(&file)
                .status()
                .expect("bash");
            assert!(status.success(), "the bash completion does not parse");
        }
    }
    assert_eq!(run(&["completions", "tcsh"]).code(), 2);
}

/// A reader that stops early (`| grep -q`, `| head`) closes the pipe: the
/// completions and the man page end quietly, without a panic. (Under wine
/// `bbinject.exe completions powershell | grep -q …` panicked in clap_complete.)
#[test]
fn completions_and_the_man_page_survive_a_closed_pipe() {
    for args in [
        ["completions", "zsh"],
        ["completions", "powershell"],
        ["man", "-v"],
    ] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = crate::support::Bb::new()
            .command()
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn man_dir_writes_a_page_per_command_each_with_exit_status_environment_and_examples() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(&["man", "--dir", &dir.path().display().to_string()]);
    assert_eq!(out.code(), 0, "{}", out.describe());
    for command in [
        "check",
        "exec",
        "export",
        "scrub",
        "credential",
        "completions",
        "man",
    ] {
        let page = dir.path().join(format!("bbinject-{command}.1"));
        let text =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(
            text.contains(&format!(".TH bbinject-{command} 1")),
            "{command}"
        );
        for section in [
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH \"EXIT STATUS\"",
            ".SH \"SEE ALSO\"",
        ] {
            assert!(text.contains(section), "{command}: {section}");
        }
        if ["check", "exec", "export", "scrub"].contains(&command) {
            assert!(
                text.contains(".SH ENVIRONMENT") && text.contains(".SH EXAMPLES"),
                "{command}"
            );
        }
        // The page documents only the options that apply to the command.
        let global_only = !["check", "exec", "export"].contains(&command);
        assert_eq!(
            !text.contains("\\-\\-config"),
            global_only,
            "{command}: --config"
        );
        assert_eq!(
            !text.contains("\\-\\-secrets\\-dir"),
            global_only,
            "{command}: --secrets-dir"
        );
    }
    assert!(dir.path().join("bbinject.1").exists());
    assert!(!dir.path().join("bbinject-broker.1").exists());
    assert!(!dir.path().join("bbinject-help.1").exists());
    // Every page the main page refers to exists.
    let main = std::fs::read_to_string(dir.path().join("bbinject.1")).expect("main page");
    for command in ["check", "exec", "export", "scrub"] {
        assert!(main.contains(&format!("bbinject\\-{command}")), "{command}");
    }
}

#[test]
fn the_man_page_is_roff_with_every_command() {
    let out = run(&["man"]);
    assert_eq!(out.code(), 0, "{}", out.describe());
    assert!(
        out.stdout.contains(".TH bbinject 1"),
        "{}",
        &out.stdout[..200.min(out.stdout.len())]
    );
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH SUBCOMMANDS",
        "bbinject\\-check",
        "bbinject\\-exec",
        "bbinject\\-scrub",
    ] {
        assert!(out.stdout.contains(section), "{section} missing");
    }
    assert!(
        !out.stdout.contains("bbinject\\-broker"),
        "the hidden broker subcommand is documented"
    );
}

/// A plain clone is the whole project: no code, test, bench, example, CI
/// script or Dockerfile reads from the folder around the checkout.
#[test]
fn nothing_reads_outside_the_checkout() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let outside = concat!("..", "/shared");
    let mut offenders = Vec::new();
    let mut scanned = 0;
    for top in [
        "src",
        "tests",
        "benches",
        "examples",
        ".ci",
        "fuzz/fuzz_targets",
        "Dockerfile",
        "build.rs",
    ] {
        let top = root.join(top);
        let files = if top.is_dir() {
            crate::support::files_under(&top)
        } else {
            vec![top]
        };
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            scanned += 1;
            if text.contains(outside) || text.contains(concat!("DESIGN", ".md")) {
                offenders.push(file.display().to_string());
            }
        }
    }
    assert!(scanned > 30, "only {scanned} files scanned");
    assert!(
        offenders.is_empty(),
        "these read or cite files outside the repository: {offenders:?}"
    );
}
