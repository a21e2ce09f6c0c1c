//! Builds fetch private dependencies through their package managers, not
//! only through `git clone`: the real Cargo, npm, pip and Go run inside
//! `bbinject exec` against the test git smart-HTTP server, with private caches,
//! and every file they wrote is scanned for the secret afterwards. So are
//! SSH-style submodule URLs (`--rewrite-ssh`).

use crate::support::exec_world::{TOKEN_USER, World};
use crate::support::git_server::{GitServer, create_repo, run_git};
use crate::support::{Bb, FAKE_ACCESS_TOKEN};

/// The real home's rustup, so `cargo` runs with an isolated HOME.
fn rustup_home() -> String {
    std::env::var("RUSTUP_HOME")
        .unwrap_or_else(|_| format!("{}/.rustup", std::env::var("HOME").unwrap_or_default()))
}

fn tool(name: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn cargo_fetches_a_private_git_dependency_with_its_defaults() {
    let w = World::new(&[(
        "acme/lib",
        &[
            (
                "Cargo.toml",
                b"[package]\nname = \"lib\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
            ),
            ("src/lib.rs", b"pub fn answer() -> u32 { 42 }\n"),
        ],
    )]);
    let project = w.dir("app");
    std::fs::create_dir_all(project.join("src")).expect("mkdir");
    std::fs::write(
        project.join("Cargo.toml"),
        format!(
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nlib = {{ git = \"{}/acme/lib.git\" }}\n",
            w.server.url()
        ),
    )
    .expect("manifest");
    std::fs::write(project.join("src/main.rs"), "fn main() {}\n").expect("main");
    let cargo_home = w.bb.path("cargo-home").display().to_string();
    let rustup = rustup_home();
    let envs = [
        ("CARGO_HOME", cargo_home.as_str()),
        ("RUSTUP_HOME", rustup.as_str()),
    ];
    let run = w.exec(&[], &project, &envs, "cargo fetch 2>&1 && echo fetched");
    assert!(run.stdout.contains("fetched"), "{}", run.describe());
    assert!(
        !w.server.authorizations_for("acme/lib").is_empty(),
        "the server saw no credential"
    );
    w.assert_clean(&run);

    // The caller's choice wins: with libgit2 (Cargo's default backend) the
    // credential never reaches git's helpers, which is why exec sets the CLI.
    std::fs::remove_dir_all(&cargo_home).expect("clean cargo home");
    let _ = std::fs::remove_file(project.join("Cargo.lock"));
    let envs = [
        ("CARGO_HOME", cargo_home.as_str()),
        ("RUSTUP_HOME", rustup.as_str()),
        ("CARGO_NET_GIT_FETCH_WITH_CLI", "false"),
    ];
    let run = w.exec(&[], &project, &envs, "cargo fetch 2>&1 && echo fetched");
    assert!(!run.stdout.contains("fetched"), "{}", run.describe());
    w.assert_clean(&run);
}

#[test]
fn ssh_style_submodule_urls_go_over_https_with_rewrite_ssh_and_fail_clearly_without() {
    let w = World::new(&[
        ("acme/lib", &[("lib.txt", b"lib\n")]),
        ("acme/tools", &[("tools.txt", b"tools\n")]),
    ]);
    // A superproject whose .gitmodules uses both SSH spellings.
    let work = w.dir("super-src");
    run_git(&work, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(work.join("README.md"), "super\n").expect("write");
    std::fs::write(
        work.join(".gitmodules"),
        "[submodule \"lib\"]\n\tpath = lib\n\turl = git@127.0.0.1:acme/lib.git\n[submodule \"tools\"]\n\tpath = tools\n\turl = ssh://git@127.0.0.1/acme/tools.git\n",
    )
    .expect("gitmodules");
    // Gitlinks pointing at the submodules' commits.
    for (path, repo) in [("lib", "acme/lib"), ("tools", "acme/tools")] {
        let head = run_git(
            &w.root.path().join(format!("{repo}.git")),
            &["rev-parse", "HEAD"],
        );
        run_git(
            &work,
            &[
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("160000,{},{path}", head.trim()),
            ],
        );
    }
    run_git(&work, &["add", "README.md", ".gitmodules"]);
    run_git(&work, &["commit", "--quiet", "-m", "super"]);
    let bare = w.root.path().join("acme/super.git");
    run_git(
        w.root.path(),
        &[
            "clone",
            "--quiet",
            "--bare",
            work.to_str().expect("utf8"),
            bare.to_str().expect("utf8"),
        ],
    );

    let url = w.server.url();
    let cwd = w.dir("clones");
    let clone = format!("git clone -q --recurse-submodules --jobs 2 {url}/acme/super.git with");
    let run = w.exec(&["--rewrite-ssh"], &cwd, &[], &clone);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(cwd.join("with/lib/lib.txt").exists(), "{}", run.describe());
    assert!(
        cwd.join("with/tools/tools.txt").exists(),
        "{}",
        run.describe()
    );
    // Nothing was written to the clone's config: the rules live in the environment.
    let config = std::fs::read_to_string(cwd.join("with/.git/config")).expect("config");
    assert!(!config.contains("insteadOf"), "{config}");
    // A push from the submodule goes the same way.
    let push = "cd with/lib && echo more >> lib.txt && git commit -qam more && git push -q origin HEAD:main && echo pushed";
    let run = w.exec(&["--rewrite-ssh"], &cwd, &[], push);
    assert!(run.stdout.contains("pushed"), "{}", run.describe());
    w.assert_clean(&run);

    // Without the flag: ssh, which cannot work here, and says so.
    let clone = format!(
        "git clone -q --recurse-submodules {url}/acme/super.git without 2>&1; echo exit=$?"
    );
    let run = w.exec(&[], &cwd, &[("GIT_SSH_COMMAND", "false")], &clone);
    assert!(!run.stdout.contains("exit=0"), "{}", run.describe());
    assert!(
        run.stdout.contains("git@127.0.0.1:acme/lib.git") || run.stdout.contains("ssh://"),
        "{}",
        run.describe()
    );
    w.assert_clean(&run);
}

#[test]
fn npm_installs_a_private_git_dependency() {
    assert!(tool("npm"), "npm is on this machine (node 20)");
    let w = World::new(&[(
        "acme/pkg",
        &[
            (
                "package.json",
                b"{\"name\": \"acme-pkg\", \"version\": \"1.0.0\", \"main\": \"index.js\"}\n",
            ),
            ("index.js", b"module.exports = 42;\n"),
        ],
    )]);
    let project = w.dir("npm-app");
    std::fs::write(
        project.join("package.json"),
        "{\"name\": \"app\", \"version\": \"1.0.0\"}\n",
    )
    .expect("package.json");
    let cache = w.bb.path("npm-cache").display().to_string();
    let script = format!(
        "npm install --no-audit --no-fund --cache \"$NPM_CACHE\" git+{}/acme/pkg.git 2>&1 && node -e 'console.log(require(\"acme-pkg\"))'",
        w.server.url()
    );
    // Any registry request would fail: the dependency comes from git only.
    let envs = [
        ("NPM_CACHE", cache.as_str()),
        ("npm_config_registry", "http://127.0.0.1:9/"),
        ("npm_config_update_notifier", "false"),
    ];
    let run = w.exec(&[], &project, &envs, &script);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(run.stdout.trim_end().ends_with("42"), "{}", run.describe());
    w.assert_clean(&run);
}

#[test]
fn pip_installs_a_private_git_dependency() {
    assert!(
        tool("pip3") || tool("pip"),
        "pip is on this machine (Python 3.11)"
    );
    // A build backend of its own (stdlib only), so pip needs nothing from PyPI.
    let w = World::new(&[(
        "acme/pypkg",
        &[
            (
                "pyproject.toml",
                b"[build-system]\nrequires = []\nbuild-backend = \"backend\"\nbackend-path = [\".\"]\n",
            ),
            ("backend.py", include_bytes!("../fixtures/python/backend.py")),
            ("acme_pypkg.py", b"ANSWER = 42\n"),
        ],
    )]);
    let project = w.dir("py");
    let cache = w.bb.path("pip-cache").display().to_string();
    let target = w.bb.path("site").display().to_string();
    let script = format!(
        "python3 -m pip install --quiet --no-deps --target \"$TARGET\" git+{}/acme/pypkg.git 2>&1 && PYTHONPATH=\"$TARGET\" python3 -c 'import acme_pypkg; print(acme_pypkg.ANSWER)'",
        w.server.url()
    );
    let run = w.exec(
        &[],
        &project,
        &[
            ("PIP_CACHE_DIR", &cache),
            ("TARGET", &target),
            ("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
            ("PIP_ROOT_USER_ACTION", "ignore"),
            ("PIP_NO_INDEX", "1"),
        ],
        &script,
    );
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(run.stdout.trim_end().ends_with("42"), "{}", run.describe());
    w.assert_clean(&run);
}

#[test]
fn go_downloads_a_private_module() {
    if !tool("go") {
        // Go is installed by .ci/run (apt golang-go); say so loudly elsewhere.
        panic!("go is not installed: `apt-get install golang-go` (CI installs it)");
    }
    let w = World::new(&[(
        "acme/gomod",
        &[
            ("go.mod", b"module example.com/acme/gomod.git\n\ngo 1.19\n"),
            ("answer.go", b"package gomod\n\nconst Answer = 42\n"),
        ],
    )]);
    // Go names modules by domain; the agent's git config sends that domain to
    // the test server, as a mirror or proxy set-up would.
    std::fs::write(
        w.bb.home().join(".gitconfig"),
        format!(
            "[url \"{}/\"]\n\tinsteadOf = https://example.com/\n[user]\n\tname = CI\n\temail = ci@example.invalid\n",
            w.server.url()
        ),
    )
    .expect("gitconfig");
    let project = w.dir("go-app");
    std::fs::write(project.join("go.mod"), "module app\n\ngo 1.19\n").expect("go.mod");
    std::fs::write(
        project.join("main.go"),
        "package main\n\nimport (\n\t\"fmt\"\n\tgomod \"example.com/acme/gomod.git\"\n)\n\nfunc main() { fmt.Println(gomod.Answer) }\n",
    )
    .expect("main.go");
    let gopath = w.bb.path("gopath").display().to_string();
    let gocache = w.bb.path("gocache").display().to_string();
    let modcache = format!("{gopath}/pkg/mod");
    let envs = [
        ("GOPATH", gopath.as_str()),
        ("GOMODCACHE", modcache.as_str()),
        ("GOCACHE", gocache.as_str()),
        ("GOPRIVATE", "example.com"),
        ("GOPROXY", "off"),
        ("GOFLAGS", "-mod=mod"),
        ("GOTOOLCHAIN", "local"),
    ];
    let run = w.exec(&[], &project, &envs, "go run . 2>&1");
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(run.stdout.trim_end().ends_with("42"), "{}", run.describe());
    // The module cache is read-only; make it removable for the temp dir's cleanup.
    let _ = std::process::Command::new("chmod")
        .args(["-R", "u+w", &gopath])
        .status();
    w.assert_clean(&run);
}

/// A pointer file for `content`, and the object's id, as git-lfs writes them.
fn lfs_pointer(content: &[u8]) -> (String, String) {
    use sha2::Digest as _;
    let oid = format!("{:x}", sha2::Sha256::digest(content));
    let pointer = format!(
        "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {}\n",
        content.len()
    );
    (oid, pointer)
}

#[test]
fn git_lfs_clones_and_pushes_whether_anonymous_requests_get_403_or_401() {
    assert!(
        tool("git-lfs"),
        "git-lfs is installed (CI: apt-get install git-lfs)"
    );
    for anonymous in [403, 401] {
        let content = b"large binary content\n";
        let (oid, pointer) = lfs_pointer(content);
        let root = tempfile::tempdir().expect("tempdir");
        create_repo(
            root.path(),
            "acme/assets",
            &[
                (
                    ".gitattributes",
                    b"*.bin filter=lfs diff=lfs merge=lfs -text\n",
                ),
                ("model.bin", pointer.as_bytes()),
            ],
        );
        std::fs::create_dir_all(root.path().join("lfs-objects")).expect("mkdir");
        std::fs::write(root.path().join("lfs-objects").join(&oid), content).expect("object");
        let server = GitServer::builder(root.path())
            .user(TOKEN_USER, FAKE_ACCESS_TOKEN)
            .lfs(anonymous)
            .start();
        let w = World {
            root,
            server,
            bb: Bb::new().env("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN),
        };
        std::fs::write(
            w.bb.home().join(".gitconfig"),
            "[credential]\n\thelper = store\n[user]\n\tname = CI\n\temail = ci@example.invalid\n\
             [filter \"lfs\"]\n\tclean = git-lfs clean -- %f\n\tsmudge = git-lfs smudge -- %f\n\
             \tprocess = git-lfs filter-process\n\trequired = true\n",
        )
        .expect("gitconfig");
        let cwd = w.dir("work");
        if anonymous == 403 {
            // Control: without `lfs.<origin>.access=basic` (overridden here on
            // git's command line), git-lfs tries anonymously first, gets 403,
            // and never asks for credentials: what exec fixes.
            let script = format!(
                "git -c lfs.{url}/.access=none clone -q {url}/acme/assets.git control 2>&1; echo exit=$?",
                url = w.server.url()
            );
            let run = w.exec(&[], &cwd, &[], &script);
            assert!(!run.stdout.contains("exit=0"), "{}", run.describe());
            assert!(
                run.stdout.contains("Authorization error"),
                "{}",
                run.describe()
            );
            w.assert_clean(&run);
        }
        let script = format!(
            "git clone -q {}/acme/assets.git assets 2>&1 && cat assets/model.bin",
            w.server.url()
        );
        let run = w.exec(&[], &cwd, &[], &script);
        assert_eq!(run.code(), 0, "anonymous {anonymous}: {}", run.describe());
        assert!(
            run.stdout.contains("large binary content"),
            "anonymous {anonymous}: the pointer was not smudged:\n{}",
            run.describe()
        );
        // Push a new object: the pre-push hook uploads it through the batch API.
        let push = "cd assets && git lfs install --local >/dev/null && \
                    printf 'another large file\\n' > second.bin && git add second.bin && \
                    git commit -qm second && git push -q origin HEAD:main 2>&1 && echo pushed";
        let run = w.exec(&[], &cwd, &[], push);
        assert!(
            run.stdout.contains("pushed"),
            "anonymous {anonymous}: {}",
            run.describe()
        );
        let (second, _) = lfs_pointer(b"another large file\n");
        assert!(
            w.root.path().join("lfs-objects").join(second).exists(),
            "anonymous {anonymous}: the object was not uploaded"
        );
        w.assert_clean(&run);
    }
}
