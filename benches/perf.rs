//! The performance suite: every measurement runs against its baseline in the
//! same run, interleaved, several times; it prints medians and the ratio.
//! No timing assertions: the numbers go in README.md ("Performance").
//!
//! Run: `cargo bench --locked --bench perf` (all), or name sections:
//! `cargo bench --locked --bench perf -- redaction latency overhead clone preflight many credentials memory`.
//! `BBINJECT_PERF_MIB` sets the size of the streamed log (default 1024);
//! `BBINJECT_PERF_SAMPLES=1` prints every sample, not only the medians.
//! `BBINJECT_PERF_BIN=PATH` runs the latency rows with another build of the
//! binary, e.g. the static release one from `.ci/release`.

#[path = "../tests/support/background.rs"]
mod background;
#[path = "../tests/support/git_server.rs"]
mod git_server;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bbinject");
const SECRET: &str = "ATCTT3xFAKE-perf-token-0123456789abcdef";
const RUNS: usize = 5;

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let work = tempfile::Builder::new()
        .prefix("bbperf")
        .tempdir_in(target_dir())
        .expect("tempdir");
    println!("machine: {} cores, {}", cores(), cpu_model());
    println!(
        "{:<58} {:>12} {:>12} {:>8}",
        "measurement (median of runs)", "ours", "baseline", "ratio"
    );

    if wanted("redaction") || wanted("memory") {
        let mib: u64 = std::env::var("BBINJECT_PERF_MIB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1024);
        let log = work.path().join("build.log");
        let secrets = write_build_log(&log, mib << 20);
        if wanted("redaction") {
            redaction(&log, mib, secrets);
        }
        if wanted("memory") {
            memory(work.path(), &log, mib);
        }
    }
    if wanted("latency") {
        latency(work.path());
    }
    if wanted("many") {
        many_repositories();
    }
    if wanted("credentials") {
        many_credentials(work.path());
    }
    if wanted("overhead") {
        overhead();
    }
    if wanted("clone") || wanted("preflight") {
        let root = work.path().join("server");
        let files: Vec<(String, Vec<u8>)> = (0..3000)
            .map(|i| {
                (
                    format!("src/mod{}/file{i}.rs", i % 50),
                    format!("// file {i}\npub fn f{i}() -> u32 {{ {i} }}\n").into_bytes(),
                )
            })
            .collect();
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, c)| (n.as_str(), c.as_slice()))
            .collect();
        git_server::create_repo(&root, "acme/big", &refs);
        let server = git_server::GitServer::builder(&root)
            .user("x-token-auth", SECRET)
            .start();
        if wanted("clone") {
            clone(work.path(), &server);
        }
        if wanted("preflight") {
            preflight(&server);
        }
    }
}

fn target_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&dir).expect("target dir");
    dir
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// A build log: compiler, download and test lines, with a secret every ~8 MiB.
fn write_build_log(path: &Path, bytes: u64) -> u64 {
    let mut out =
        std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).expect("log"));
    let mut written = 0u64;
    let mut secrets = 0u64;
    let mut i = 0u64;
    while written < bytes {
        let line = match i % 7 {
            0 => format!(
                "[2026-11-21T12:{:02}:{:02}Z] Compiling crate-{i} v1.{}.{} (/home/ci/agent/work/acme-app/crates/crate-{i})\n",
                i % 60,
                i % 59,
                i % 13,
                i % 7
            ),
            1 => format!(
                "  Downloaded serde_derive v1.0.{} (registry `crates-io`)\n",
                i % 300
            ),
            2 => format!("test tests::case_{i} ... ok\n"),
            3 => format!(
                "remote: Counting objects: {}% ({}/{}), done.\r",
                i % 100,
                i % 977,
                977
            ),
            4 => format!(
                "warning: unused variable: `x{i}` --> src/lib.rs:{}:{}\n",
                i % 900,
                i % 80
            ),
            5 => format!(
                "+ curl -sS https://api.bitbucket.org/2.0/repositories/acme/app-{i} -o out.json\n"
            ),
            _ => format!(
                "Step {i}/99999 : RUN make -j2 target-{i} && ./scripts/check.sh --verbose\n"
            ),
        };
        written += line.len() as u64;
        out.write_all(line.as_bytes()).expect("write");
        if i % 80_000 == 40_000 {
            let leak = format!("Authorization: token={SECRET} (oops)\n");
            written += leak.len() as u64;
            secrets += 1;
            out.write_all(leak.as_bytes()).expect("write");
        }
        i += 1;
    }
    out.flush().expect("flush");
    secrets
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", script])
        .env("BITBUCKET_ACCESS_TOKEN", SECRET)
        .env_remove("GIT_SSL_CAINFO")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null());
    c
}

fn time(mut cmd: Command) -> Duration {
    let start = Instant::now();
    let status = cmd.status().expect("run");
    let elapsed = start.elapsed();
    assert!(status.success(), "{cmd:?} failed");
    elapsed
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs `ours` and each baseline alternately `runs` times; returns medians.
fn compare(runs: usize, mut each: Vec<Box<dyn FnMut() -> Duration + '_>>) -> Vec<Duration> {
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); each.len()];
    for _ in 0..runs {
        for (i, f) in each.iter_mut().enumerate() {
            samples[i].push(f());
        }
    }
    if std::env::var_os("BBINJECT_PERF_SAMPLES").is_some() {
        for (i, s) in samples.iter().enumerate() {
            let ms: Vec<String> = s
                .iter()
                .map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
                .collect();
            println!("  samples[{i}] (ms): {}", ms.join(" "));
        }
    }
    samples.into_iter().map(median).collect()
}

fn row(name: &str, ours: Duration, baseline: Duration) {
    println!(
        "{name:<58} {:>10.1}ms {:>10.1}ms {:>8.3}",
        ours.as_secs_f64() * 1e3,
        baseline.as_secs_f64() * 1e3,
        ours.as_secs_f64() / baseline.as_secs_f64()
    );
}

fn redaction(log: &Path, mib: u64, secrets: u64) {
    let log = log.display().to_string();
    // Sanity first: every secret in the log is masked.
    let masked = Command::new(BIN)
        .args(["exec", "--no-preflight", "--", "cat", &log])
        .env("BITBUCKET_ACCESS_TOKEN", SECRET)
        .stdout(Stdio::piped())
        .output()
        .expect("run");
    let text = masked.stdout;
    let found = text
        .windows(SECRET.len())
        .filter(|w| *w == SECRET.as_bytes())
        .count();
    let masks = text.windows(6).filter(|w| w == b"=**** ").count() as u64;
    assert_eq!((found, masks), (0, secrets), "redaction sanity check");

    let medians = compare(
        RUNS,
        vec![
            Box::new(|| {
                time(sh(&format!(
                    "'{BIN}' exec --no-preflight -- cat '{log}' > /dev/null"
                )))
            }),
            Box::new(|| time(sh(&format!("cat '{log}' | cat > /dev/null")))),
            Box::new(|| time(sh(&format!("sed 's/{SECRET}/****/g' '{log}' > /dev/null")))),
        ],
    );
    let mb = mib as f64 * 1.048576;
    row(
        &format!("redaction: exec -- cat {mib} MiB vs cat | cat"),
        medians[0],
        medians[1],
    );
    row(
        &format!("redaction: exec -- cat {mib} MiB vs sed s/SECRET/****/g"),
        medians[0],
        medians[2],
    );
    println!(
        "  throughput: exec {:.0} MB/s, cat|cat {:.0} MB/s, sed {:.0} MB/s; {secrets} secrets masked",
        mb / medians[0].as_secs_f64(),
        mb / medians[1].as_secs_f64(),
        mb / medians[2].as_secs_f64()
    );
}

fn memory(work: &Path, log: &Path, mib: u64) {
    let small = work.join("small.log");
    let small_mib = (mib / 16).max(1);
    std::fs::write(
        &small,
        std::fs::read(log)
            .map(|b| b[..(small_mib << 20) as usize].to_vec())
            .unwrap_or_default(),
    )
    .expect("small log");
    let rss = peak_rss_kib;
    let ours_small = rss(&format!(
        "'{BIN}' exec --no-preflight -- cat '{}'",
        small.display()
    ));
    let ours = rss(&format!(
        "'{BIN}' exec --no-preflight -- cat '{}'",
        log.display()
    ));
    let cat = rss(&format!("cat '{}'", log.display()));
    println!(
        "memory: peak RSS of exec streaming {mib} MiB: {:.1} MiB ({small_mib} MiB: {:.1} MiB); cat alone: {:.1} MiB",
        ours as f64 / 1024.0,
        ours_small as f64 / 1024.0,
        cat as f64 / 1024.0
    );
}

fn latency(work: &Path) {
    const N: u32 = 200;
    let input = "printf 'protocol=https\\nhost=bitbucket.org\\npath=acme/app.git\\nusername=x-token-auth\\n\\n'";
    let repeat = |body: String| {
        format!("i=0; while [ $i -lt {N} ]; do {body} > /dev/null; i=$((i+1)); done")
    };
    let askpass = work.join("askpass.sh");
    std::fs::write(&askpass, "#!/bin/sh\necho fixed-password\n").expect("askpass");
    // The suite drives sh and Linux git: Unix only (it builds elsewhere).
    #[cfg(unix)]
    std::fs::set_permissions(
        &askpass,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let shell_helper = "'!f() { echo username=x-token-auth; echo password=fixed-password; }; f'";
    let isolated = |mut cmd: Command| {
        cmd.env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("HOME", work);
        cmd
    };
    // The binary whose front doors are measured: this build, or another one.
    let bin = std::env::var("BBINJECT_PERF_BIN").unwrap_or_else(|_| BIN.to_owned());
    println!("  latency rows with {bin}");
    // A loop of `git credential fill` run as the child of `bbinject exec`.
    let in_exec = |body: String| {
        let mut c = Command::new(&bin);
        c.args(["exec", "--no-preflight", "--", "sh", "-c", &repeat(body)])
            .env("BITBUCKET_ACCESS_TOKEN", SECRET)
            .stdin(Stdio::null());
        isolated(c)
    };
    // The baselines run inside the same `exec` too, so that only the answering
    // program differs: our helper vs a shell function, our askpass vs a script.
    let medians = compare(
        RUNS,
        vec![
            // Our helper, registered by exec for bitbucket.org.
            Box::new(|| time(in_exec(format!("{input} | git credential fill"))) / N),
            Box::new(|| {
                time(in_exec(format!(
                    "{input} | git -c credential.helper= -c credential.helper={shell_helper} credential fill"
                ))) / N
            }),
            // Our askpass alone: our helper entry blanked, so git asks GIT_ASKPASS.
            Box::new(|| {
                time(in_exec(format!(
                    "{input} | GIT_CONFIG_VALUE_1= git credential fill"
                ))) / N
            }),
            Box::new(|| {
                time(in_exec(format!(
                    "{input} | GIT_CONFIG_VALUE_1= GIT_ASKPASS='{}' git credential fill",
                    askpass.display()
                ))) / N
            }),
        ],
    );
    row(
        "latency: git credential fill via our helper vs shell helper",
        medians[0],
        medians[1],
    );
    row(
        "latency: git credential fill via our askpass vs shell script",
        medians[2],
        medians[3],
    );
}

fn overhead() {
    let medians = compare(
        21,
        vec![
            Box::new(|| {
                let mut c = Command::new(BIN);
                c.args(["exec", "--no-preflight", "--", "true"])
                    .env("BITBUCKET_ACCESS_TOKEN", SECRET);
                time(c)
            }),
            Box::new(|| time(Command::new("true"))),
        ],
    );
    row(
        "overhead: exec --no-preflight -- true vs true",
        medians[0],
        medians[1],
    );
}

fn clone(work: &Path, server: &git_server::GitServer) {
    let url = format!("{}/acme/big.git", server.url());
    let in_url = url.replace("http://", &format!("http://x-token-auth:{SECRET}@"));
    let n = std::cell::Cell::new(0);
    let fresh = || {
        n.set(n.get() + 1);
        work.join(format!("clone-{}", n.get()))
            .display()
            .to_string()
    };
    // The server side (http-backend, pack generation) scatters by tens of ms:
    // more runs than elsewhere.
    let medians = compare(
        15,
        vec![
            Box::new(|| {
                let dst = fresh();
                let mut c = Command::new(BIN);
                c.args([
                    "exec",
                    "--no-preflight",
                    "--git-url",
                    &server.url(),
                    "--",
                    "git",
                    "clone",
                    "-q",
                    &url,
                    &dst,
                ])
                .env("BITBUCKET_ACCESS_TOKEN", SECRET)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null");
                let d = time(c);
                let _ = std::fs::remove_dir_all(&dst);
                d
            }),
            Box::new(|| {
                let dst = fresh();
                let mut c = Command::new("git");
                c.args(["clone", "-q", &in_url, &dst])
                    .env("GIT_CONFIG_NOSYSTEM", "1")
                    .env("GIT_CONFIG_GLOBAL", "/dev/null");
                let d = time(c);
                let _ = std::fs::remove_dir_all(&dst);
                d
            }),
        ],
    );
    row(
        "clone: exec -- git clone (3000 files) vs token in URL",
        medians[0],
        medians[1],
    );
}

fn preflight(server: &git_server::GitServer) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let api = runtime.block_on(async {
        use wiremock::matchers::{method, path};
        let api = wiremock::MockServer::start().await;
        wiremock::Mock::given(method("GET"))
            .and(path("/2.0/repositories/acme/big"))
            .respond_with(
                wiremock::ResponseTemplate::new(200)
                    .insert_header("x-credential-type", "repo_access_token")
                    .set_body_string(r#"{"is_private":true}"#),
            )
            .mount(&api)
            .await;
        api
    });
    let api_url = format!("{}/2.0", api.uri());
    let git = server.url();
    let medians = compare(
        11,
        vec![
            Box::new(|| {
                let mut c = Command::new(BIN);
                c.args([
                    "check",
                    "--repo",
                    "acme/big",
                    "--api-url",
                    &api_url,
                    "--git-url",
                    &git,
                ])
                .env("BITBUCKET_ACCESS_TOKEN", SECRET)
                .stdout(Stdio::null());
                time(c)
            }),
            Box::new(|| {
                // The same two requests with curl.
                time(sh(&format!(
                    "curl -sf -H 'Authorization: Bearer {SECRET}' {api_url}/repositories/acme/big > /dev/null && \
                     curl -sf -u x-token-auth:{SECRET} '{git}/acme/big.git/info/refs?service=git-upload-pack' > /dev/null"
                )))
            }),
        ],
    );
    row(
        "preflight: check --repo (API + git probe) vs two curl calls",
        medians[0],
        medians[1],
    );
}

/// `check` of 1, 10 and 30 repositories against a mock that answers every
/// request (REST and git) after 0.2 s: the ratio to one repository shows how
/// many round trips the preflight costs, whatever the number of repositories.
fn many_repositories() {
    const LATENCY: Duration = Duration::from_millis(200);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let api = runtime.block_on(async {
        use wiremock::matchers::{method, path_regex};
        let api = wiremock::MockServer::start().await;
        wiremock::Mock::given(method("GET"))
            .and(path_regex(r"^/2\.0/repositories/acme/r\d+$"))
            .respond_with(
                wiremock::ResponseTemplate::new(200)
                    .insert_header("x-credential-type", "repo_access_token")
                    .set_body_string(r#"{"is_private":true}"#)
                    .set_delay(LATENCY),
            )
            .mount(&api)
            .await;
        wiremock::Mock::given(method("GET"))
            .and(path_regex(r"^/acme/r\d+\.git/info/refs$"))
            .respond_with(
                wiremock::ResponseTemplate::new(200)
                    .set_body_raw(
                        "001e# service=git-upload-pack\n0000",
                        "application/x-git-upload-pack-advertisement",
                    )
                    .set_delay(LATENCY),
            )
            .mount(&api)
            .await;
        api
    });
    let check = |n: usize| {
        let api_url = format!("{}/2.0", api.uri());
        let git = api.uri();
        move || {
            let mut c = Command::new(BIN);
            c.args(["check", "--api-url", &api_url, "--git-url", &git]);
            for i in 0..n {
                c.args(["--repo", &format!("acme/r{i}")]);
            }
            c.env("BITBUCKET_ACCESS_TOKEN", SECRET)
                .stdout(Stdio::null());
            time(c)
        }
    };
    let medians = compare(
        RUNS,
        vec![Box::new(check(1)), Box::new(check(10)), Box::new(check(30))],
    );
    row(
        "preflight: 10 repositories vs 1 (0.2 s latency)",
        medians[1],
        medians[0],
    );
    row(
        "preflight: 30 repositories vs 1 (0.2 s latency)",
        medians[2],
        medians[0],
    );
}

/// The secret of credential `i`: `ATCTT3x` and 100 pseudo-random URL-safe
/// characters, like a real access token. Random tails matter: tokens that
/// share long runs would let the automaton's prefilter skip most of a log,
/// which real ones do not.
fn access_token(i: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (i as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let tail: String = (0..100)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(ALPHABET[(x % 64) as usize])
        })
        .collect();
    format!("ATCTT3x{tail}")
}

/// A config with `n` access-token credentials, one per repository, as an
/// organisation that gives each repository its own token has.
fn credentials_config(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join(format!("credentials-{n}.yaml"));
    let mut yaml = String::from("credentials:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  - name: r{i}\n    kind: access_token\n    match: [w{i}/r]\n    secret: {}\n",
            access_token(i)
        ));
    }
    std::fs::write(&path, yaml).expect("config");
    path
}

/// Peak RSS of `cmd` in KiB (GNU time).
fn peak_rss_kib(cmd: &str) -> u64 {
    let out = sh(&format!("/usr/bin/time -f %M {cmd} > /dev/null"))
        .stderr(Stdio::piped())
        .output()
        .expect("time");
    String::from_utf8_lossy(&out.stderr)
        .trim()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

/// Thousands of credentials: `exec` start-up and peak memory with 5,000
/// against 1, and redaction throughput with 5,000 against 10.
fn many_credentials(work: &Path) {
    let configs: Vec<(usize, PathBuf)> = [1, 10, 5000]
        .into_iter()
        .map(|n| (n, credentials_config(work, n)))
        .collect();
    let exec_true = |config: &Path| {
        format!(
            "'{BIN}' exec --config '{}' --no-preflight -- true",
            config.display()
        )
    };
    let medians = compare(
        RUNS,
        vec![
            Box::new(|| time(sh(&exec_true(&configs[2].1)))),
            Box::new(|| time(sh(&exec_true(&configs[0].1)))),
        ],
    );
    row(
        "credentials: exec -- true, 5000 credentials vs 1",
        medians[0],
        medians[1],
    );
    let rss_many = peak_rss_kib(&exec_true(&configs[2].1));
    let rss_one = peak_rss_kib(&exec_true(&configs[0].1));
    println!(
        "  peak RSS: 5000 credentials {:.1} MiB, 1 credential {:.1} MiB",
        rss_many as f64 / 1024.0,
        rss_one as f64 / 1024.0
    );
    // Redaction throughput: a 256 MiB log with one of the 5,000 secrets in it.
    let log = work.join("credentials.log");
    let mut text = Vec::with_capacity(256 << 20);
    let line = b"compiling module 0042 with flags -O2 -g, linking ok, tests 118 passed\n";
    while text.len() < (256 << 20) {
        text.extend_from_slice(line);
    }
    text.extend_from_slice(format!("token={}\n", access_token(7)).as_bytes());
    std::fs::write(&log, &text).expect("log");
    let cat = |config: &Path| {
        format!(
            "'{BIN}' exec --config '{}' --no-preflight -- cat '{}'",
            config.display(),
            log.display()
        )
    };
    let masked = sh(&cat(&configs[2].1)).output().expect("run").stdout;
    assert!(
        masked.ends_with(b"token=****\n"),
        "the secret of credential 7 of 5000 was not masked"
    );
    let medians = compare(
        RUNS,
        vec![
            Box::new(|| time(sh(&format!("{} > /dev/null", cat(&configs[2].1))))),
            Box::new(|| time(sh(&format!("{} > /dev/null", cat(&configs[1].1))))),
        ],
    );
    row(
        "credentials: exec -- cat 256 MiB, 5000 credentials vs 10",
        medians[0],
        medians[1],
    );
}
