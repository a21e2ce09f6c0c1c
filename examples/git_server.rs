//! The test harness's git smart-HTTP server (git http-backend behind HTTP
//! Basic auth) as a standalone process, for tests that cannot link it in (the
//! container test in `.ci/docker.sh`).
//!
//! Run: `cargo run --example git_server -- ROOT USER PASSWORD` with bare
//! repositories at `ROOT/<workspace>/<slug>.git`; it prints its URL and serves
//! until killed.

#[path = "../tests/support/background.rs"]
mod background;
#[path = "../tests/support/git_server.rs"]
mod git_server;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, root, user, password] = args.as_slice() else {
        eprintln!("usage: git_server ROOT USER PASSWORD");
        std::process::exit(2);
    };
    let root = std::path::PathBuf::from(root);
    if !root.join("acme/app.git").exists() {
        git_server::create_repo(
            &root,
            "acme/app",
            &[("README.md", b"served by the test git server\n")],
        );
    }
    let server = git_server::GitServer::builder(&root)
        .user(user, password)
        .start();
    println!("{}", server.url());
    loop {
        std::thread::park();
    }
}
