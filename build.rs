//! Stamps `--version` with the git commit when built from a checkout, e.g.
//! `bbinject 0.1.0 (3f1c9a0be2d4 2026-11-22)`; a build from a source archive
//! says only the version. A build without `.git` (the Docker build context)
//! gets the same stamp from `BBINJECT_COMMIT` and `BBINJECT_COMMIT_DATE`, so
//! the image's binary is byte-for-byte the release's.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    let given = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    println!("cargo:rerun-if-env-changed=BBINJECT_COMMIT");
    println!("cargo:rerun-if-env-changed=BBINJECT_COMMIT_DATE");
    let stamped = match (
        given("BBINJECT_COMMIT").or_else(|| git(&["rev-parse", "--short=12", "HEAD"])),
        given("BBINJECT_COMMIT_DATE").or_else(|| git(&["log", "-1", "--format=%cs"])),
    ) {
        (Some(commit), Some(date)) if !commit.is_empty() => format!("{version} ({commit} {date})"),
        _ => version.to_owned(),
    };
    println!("cargo:rustc-env=BBINJECT_VERSION={stamped}");
    // Rebuild when HEAD moves (a commit, a checkout).
    if let Some(git_dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={git_dir}/{reference}");
        }
        println!("cargo:rerun-if-changed={git_dir}/packed-refs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
