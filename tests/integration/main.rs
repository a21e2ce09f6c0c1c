//! Integration tests: one test binary driving the built `bbinject` against
//! real git, a real git smart-HTTP server and Bitbucket API mocks.

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod check;
mod ci_examples;
mod exec;
mod export;
mod least_privilege;
mod long_builds;
mod messages;
mod package_managers;
mod redact;
mod release;
mod scrub;
