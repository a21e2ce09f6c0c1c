//! Integration tests: one test binary driving the built `bbinject` against
//! real git, a real git smart-HTTP server and Bitbucket API mocks.
//!
//! Unix only: they drive Linux git, shells and package managers. The Windows
//! build is checked by its unit tests and `.ci/windows.sh`, under wine.
#![cfg(unix)]

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod check;
mod ci_examples;
mod exec;
mod export;
mod hostile;
mod least_privilege;
mod long_builds;
mod messages;
mod package_managers;
mod redact;
mod release;
mod scrub;
