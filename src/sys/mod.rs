//! The platform layer: the few file-system facts that differ between Unix and
//! Windows (what a special file is, opening without blocking, who may read a
//! file, a file's identity and version, permission bits), so the modules that
//! read secret files, write configs and watch rotations stay platform-neutral.
//! It also says which executable a process runs and its parent (for the
//! audit log). On Windows it holds the Win32 calls behind the broker's named pipe
//! and `exec`'s job object. It never reads a file's content and never decides
//! policy.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::*;

#[cfg(windows)]
#[allow(unsafe_code)]
mod windows;
#[cfg(windows)]
pub use windows::*;

/// A file's identity and version, as cheap to read as one `stat`: a rotation
/// by atomic rename, a rewrite in place, a truncation all change it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    id: (u64, u64),
    size: u64,
    modified: Option<std::time::SystemTime>,
    changed: (i64, i64),
}
