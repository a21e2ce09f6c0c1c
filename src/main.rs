//! The `bbinject` binary: parse, set up logging, run, map the outcome to an
//! exit code. Everything else lives in the library.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    // reqwest is built without a default TLS provider; without this, building
    // the HTTP client panics.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = bbinject::cli::Cli::parse();
    bbinject::logging::init(cli.verbose);
    match bbinject::run(cli) {
        Ok(code) => code.into(),
        Err(error) => {
            bbinject::error::print(&error);
            error.exit_code().into()
        }
    }
}
