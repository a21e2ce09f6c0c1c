//! The broker: the one process that holds the secret, and the two front doors
//! git reaches it through (ARCHITECTURE.md §4).
//!
//! The broker listens on a Unix socket in a fresh `0700` directory (Windows:
//! a named pipe only the current user may open; see [`transport`]) and
//! answers a request only when the peer runs as our user, presents the capability from
//! the child's environment (compared in constant time), and asks for an
//! allowed origin (exact host match, `https`, or `http` only for a loopback
//! host named explicitly) within `--max-uses`. The front doors —
//! `bbinject credential get` (git's credential-helper protocol) and the
//! `GIT_ASKPASS` shim — are thin clients: they never see a secret they are not
//! about to hand to git, never read git's stdin in askpass mode, and never
//! write anything to disk. Nothing in this module logs a secret; a refusal is
//! one line naming host, path and reason.

// Only `transport` differs between Unix (a socket with peer credentials)
// and Windows (a named pipe with a per-user ACL).
pub mod audit;
pub mod capability;
pub mod child_env;
pub mod client;
pub mod detached;
pub mod policy;
pub mod protocol;
pub mod renew;
pub mod server;
pub mod transport;

/// Environment variable naming the broker's socket, for the front doors.
pub const ENV_SOCKET: &str = "BBINJECT_SOCKET";
/// Environment variable holding the capability, for the front doors.
pub const ENV_CAPABILITY: &str = "BBINJECT_CAPABILITY";
