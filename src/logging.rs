//! Log set-up: tracing to stderr, level from `RUST_LOG` or `-v`, colour only
//! when stderr is a terminal and `NO_COLOR` is unset.
//!
//! Only bbinject's own events are collected (the `log` bridge is not enabled),
//! so a dependency's trace output, which may include raw protocol bytes, can
//! never print a header at `RUST_LOG=trace`; and every line is written through
//! the redactor with the secrets of the run.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

pub fn init(verbosity: u8) {
    let default = match verbosity {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Every event is redacted with the secrets known at the time.
        .with_writer(crate::redact::RedactingStderr)
        .with_ansi(colour)
        .with_target(false)
        .try_init();
}
