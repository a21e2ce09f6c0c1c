//! The `bbinject` binary: parse, set up logging, run, map the outcome to an
//! exit code. Everything else lives in the library; `main` must never grow
//! logic beyond the fast paths git needs (askpass, `credential get`).

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    // Before any secret is read: no ptrace or /proc/<pid>/mem|environ access by
    // other processes of the same user, and no core dump of this process. (The
    // core size limit is left alone: the child would inherit it.)
    #[cfg(target_os = "linux")]
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);

    // Invoked as GIT_ASKPASS (the binary itself): git passes the prompt as
    // the only argument, and there is no shell to add a subcommand. No
    // subcommand has a space in it; a prompt always has.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if bbinject::broker::client::is_askpass_call(&args) {
        return bbinject::broker::client::askpass_main(args);
    }
    // `bbinject credential get|store|erase`: git starts this once per
    // credential request, so it skips clap and logging set-up too.
    if let [_, command, action] = args.as_slice()
        && command == "credential"
        && let Some(action @ ("get" | "store" | "erase")) = action.to_str()
    {
        return bbinject::broker::client::helper_main(action);
    }

    // reqwest is built without a default TLS provider; without this, building
    // the HTTP client panics.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = match bbinject::cli::Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(error) => return bbinject::error::usage(&error, &args).into(),
    };
    bbinject::logging::init(cli.verbose);
    match bbinject::run(cli) {
        // Windows: a child's 32-bit exit code, whole (ExitCode holds a byte).
        Ok(bbinject::error::Exit::Status(code)) => std::process::exit(code),
        Ok(code) => code.into(),
        Err(error) => {
            bbinject::error::print(&error);
            error.exit_code().into()
        }
    }
}
