//! The test harness's git smart-HTTP server (git http-backend behind HTTP
//! Basic auth) as a standalone process, for tests that cannot link it in (the
//! container test in `.ci/docker.sh`).
//!
//! Run: `cargo run --example git_server -- ROOT USER PASSWORD` with bare
//! repositories at `ROOT/<workspace>/<slug>.git`; it prints the git URL, then
//! the URL of a mock REST API (`--api-url`) that knows `acme/app`, and serves
//! until killed.

#[path = "../tests/support/background.rs"]
mod background;
#[path = "../tests/support/git_server.rs"]
mod git_server;
#[path = "support/mock_api.rs"]
mod mock_api;

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
    let Ok(runtime) = tokio::runtime::Runtime::new() else {
        eprintln!("git_server: cannot start a tokio runtime");
        std::process::exit(1);
    };
    let api = runtime.block_on(mock_api::mock_api());
    println!("{}", server.url());
    println!("{}/2.0", api.uri());
    loop {
        std::thread::park();
    }
}
