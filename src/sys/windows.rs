//! Windows: no FIFOs, sockets or devices on the file system paths bbinject
//! reads, no mode bits (ACLs are not inspected: SECURITY.md, Windows), and a
//! file's identity from its size and times (the volume serial and file index
//! are not in stable std).

use std::fs::{File, FileType, Metadata, OpenOptions};
use std::path::Path;

use super::FileStamp;

pub fn special_file_kind(_file_type: FileType) -> &'static str {
    "not a regular file"
}

/// Reading a regular file never blocks for a writer on Windows.
pub fn open_read_nonblocking(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).open(path)
}

/// Not known from the metadata on Windows (access is by ACL).
pub fn readable_by_others(_metadata: &Metadata) -> Option<(&'static str, String)> {
    None
}

pub fn file_stamp(metadata: &Metadata) -> FileStamp {
    let since_epoch = |t: Option<std::time::SystemTime>| {
        t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or((0, 0), |d| {
                (
                    i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                    i64::from(d.subsec_nanos()),
                )
            })
    };
    FileStamp {
        id: (0, 0),
        size: metadata.len(),
        modified: metadata.modified().ok(),
        // A rename over the file gives it the new file's creation time.
        changed: since_epoch(metadata.created().ok()),
    }
}

pub fn dir_identity(path: &Path, _metadata: &Metadata) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// Read-only or not is all Windows keeps.
pub fn mode(metadata: &Metadata) -> u32 {
    if metadata.permissions().readonly() {
        0o444
    } else {
        0o644
    }
}

pub fn create_with_mode(options: &mut OpenOptions, _mode: u32) -> &mut OpenOptions {
    options
}

pub fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    let mut permissions = std::fs::metadata(path)?.permissions();
    permissions.set_readonly(mode & 0o222 == 0);
    std::fs::set_permissions(path, permissions)
}
