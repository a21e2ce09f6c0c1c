//! The end-to-end demo, with no Bitbucket account: a local git server behind
//! HTTP Basic auth (the test harness's, `git http-backend` as CGI) and a mock
//! of the Bitbucket API, a throwaway token, then the real `bbinject check` and
//! `bbinject exec -- git clone` as a CI job would run them, and an audit of the
//! clone, `$HOME`, the temp dir and the captured output for the secret.
//!
//! Run: `cargo run --locked --example demo`

#[path = "../tests/support/background.rs"]
mod background;
#[path = "../tests/support/git_server.rs"]
mod git_server;
#[path = "support/mock_api.rs"]
mod mock_api;
use mock_api::mock_api;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use base64::Engine as _;

fn main() -> ExitCode {
    match demo() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo() -> Result<bool, String> {
    let bin = build_bbinject()?;
    let work = tempfile::Builder::new()
        .prefix("bbdemo")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let work = work.path();
    let token = throwaway_token();

    // The "Bitbucket" side: a repository behind Basic auth, and the REST API.
    let server_root = work.join("server");
    git_server::create_repo(
        &server_root,
        "acme/app",
        &[
            ("README.md", b"# acme/app\n"),
            ("src/main.rs", b"fn main() {}\n"),
        ],
    );
    let server = git_server::GitServer::builder(&server_root)
        .user("x-token-auth", &token)
        .start();
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let api = runtime.block_on(mock_api());

    // The build agent: a HOME with the classic `credential.helper=store`.
    let home = work.join("home");
    std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
    std::fs::write(home.join(".gitconfig"), "[credential]\n\thelper = store\n")
        .map_err(|e| e.to_string())?;

    let api_url = format!("{}/2.0", api.uri());
    let git_url = server.url();
    let clone_url = format!("{git_url}/acme/app.git");
    let clone_dir = work.join("app");
    let bbinject = |args: &[&str]| {
        let mut cmd = Command::new(&bin);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("GIT_CONFIG_GLOBAL", home.join(".gitconfig"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("TMPDIR", work)
            .env("BITBUCKET_ACCESS_TOKEN", &token)
            .current_dir(work)
            .args(args);
        cmd
    };

    println!(
        "bbinject demo: a local git server (Basic auth) at {git_url}, a mock Bitbucket API at {api_url}"
    );
    println!(
        "throwaway access token in BITBUCKET_ACCESS_TOKEN (fingerprint {})\n",
        fingerprint(&token)
    );

    let check_args = [
        "check",
        "--repo",
        "acme/app",
        "--api-url",
        &api_url,
        "--git-url",
        &git_url,
    ];
    println!("$ bbinject {}", check_args.join(" "));
    let check = capture(bbinject(&check_args))?;
    print_indented(&check.output);

    let exec_args = [
        "exec",
        "--repo",
        "acme/app",
        "--api-url",
        &api_url,
        "--git-url",
        &git_url,
        "--",
        "git",
        "clone",
        &clone_url,
        "app",
    ];
    println!("\n$ bbinject {}", exec_args.join(" "));
    let exec = capture(bbinject(&exec_args))?;
    print_indented(&exec.output);

    // The audit.
    let forms = secret_forms(&token);
    let mut ok = true;
    let mut report = |passed: bool, what: String| {
        println!("  {} {what}", if passed { "ok  " } else { "FAIL" });
        ok &= passed;
    };
    println!("\naudit:");
    report(check.success, "`bbinject check` passed (exit 0)".into());
    report(
        exec.success && clone_dir.join("src/main.rs").exists(),
        "the clone succeeded".into(),
    );
    let files = files_under(work);
    let leaking: Vec<&PathBuf> = files
        .iter()
        .filter(|f| {
            std::fs::read(f)
                .is_ok_and(|bytes| forms.iter().any(|form| contains(&bytes, form.as_bytes())))
        })
        .collect();
    report(
        leaking.is_empty(),
        format!(
            "the secret (raw, percent-encoded, base64, base64 of user:secret) is in none of {} files under the clone's .git, $HOME and the temp dir{}",
            files.len(),
            if leaking.is_empty() {
                String::new()
            } else {
                format!(": found in {leaking:?}")
            }
        ),
    );
    report(
        !home.join(".git-credentials").exists(),
        "~/.git-credentials was not written, although credential.helper=store is configured".into(),
    );
    let remote = std::fs::read_to_string(clone_dir.join(".git/config")).unwrap_or_default();
    report(
        remote.contains(&format!("url = {clone_url}")),
        "the clone's remote URL carries no credentials".into(),
    );
    let output = format!("{}{}", check.output, exec.output);
    report(
        !forms.iter().any(|f| output.contains(f.as_str())),
        "the captured output of both commands holds no form of the secret".into(),
    );
    let leftovers = std::fs::read_dir(work)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("bbi-"))
                .count()
        })
        .unwrap_or(0);
    report(
        leftovers == 0,
        "the broker's socket directory is gone".into(),
    );
    report(
        server
            .authorizations()
            .iter()
            .all(|a| a == &format!("x-token-auth:{token}"))
            && !server.authorizations().is_empty(),
        format!(
            "the git server saw {} authenticated requests, all with the right credential",
            server.authorizations().len()
        ),
    );
    println!(
        "\n{}",
        if ok {
            "demo: all checks passed"
        } else {
            "demo: SOME CHECKS FAILED"
        }
    );
    Ok(ok)
}

/// Builds the real binary with the same profile as this example.
fn build_bbinject() -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let release = exe.components().any(|c| c.as_os_str() == "release");
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "--locked", "--bin", "bbinject"]);
    if release {
        build.arg("--release");
    }
    let status = build
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("cargo build --bin bbinject failed".into());
    }
    // target/<profile>/examples/demo → target/<profile>/bbinject
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("bbinject"))
        .ok_or("cannot locate the target directory")?;
    if !bin.exists() {
        return Err(format!("{} was not built", bin.display()));
    }
    Ok(bin)
}

fn throwaway_token() -> String {
    use rand::Rng as _;
    let suffix: String = (0..32)
        .map(|_| char::from_digit(rand::rng().random_range(0..16), 16).unwrap_or('0'))
        .collect();
    format!("DEMO-throwaway-{suffix}")
}

fn fingerprint(token: &str) -> String {
    bbinject::secret::Secret::new(token.to_owned()).fingerprint()
}

fn secret_forms(token: &str) -> Vec<String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    vec![
        token.to_owned(),
        url::form_urlencoded::byte_serialize(token.as_bytes()).collect(),
        b64(token),
        b64(&format!("x-token-auth:{token}")),
    ]
}

struct Captured {
    success: bool,
    output: String,
}

fn capture(mut cmd: Command) -> Result<Captured, String> {
    let out = cmd.output().map_err(|e| e.to_string())?;
    Ok(Captured {
        success: out.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

fn print_indented(text: &str) {
    for line in text.lines() {
        println!("  | {line}");
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => out.push(entry.path()),
                _ => {}
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
