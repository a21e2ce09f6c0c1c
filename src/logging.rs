//! Log set-up: tracing to stderr, level from `RUST_LOG` or `-v`, colour only
//! when stderr is a terminal and `NO_COLOR` is unset.
//!
//! Only bbinject's own events are printed: the `log` bridge is not enabled,
//! and events of any other target (a dependency's `tracing` events: tokio,
//! hyper, reqwest) are dropped whatever `RUST_LOG` says, so a dependency's
//! trace output, which may include raw protocol bytes, can never print a
//! header at `RUST_LOG=trace`. Every line is written through the redactor
//! with the secrets of the run.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Whether an event or span of `target` is bbinject's own.
fn is_ours(target: &str) -> bool {
    target == "bbinject" || target.starts_with("bbinject::")
}

pub fn init(verbosity: u8) {
    let default = match verbosity {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let layer = tracing_subscriber::fmt::layer()
        // Every event is redacted with the secrets known at the time.
        .with_writer(crate::redact::RedactingStderr)
        .with_ansi(colour)
        .with_target(false)
        .with_filter(filter)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            is_ours(meta.target())
        }));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_bbinject_targets_are_ours() {
        for ours in ["bbinject", "bbinject::broker::server"] {
            assert!(super::is_ours(ours), "{ours}");
        }
        for theirs in [
            "hyper::proto",
            "reqwest::connect",
            "tokio",
            "bbinjectx",
            "rustls",
        ] {
            assert!(!super::is_ours(theirs), "{theirs}");
        }
    }
}
