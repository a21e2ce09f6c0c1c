//! Bounded reads of regular files, for everything bbinject reads from a path
//! a user gives (secret files, the secrets directory, `--config`,
//! `--ca-file`): a FIFO, socket or device is refused without blocking (the
//! file is opened non-blocking and checked through its handle), and no file is
//! read past its bound. It never interprets the content and never names it.

use std::io::Read as _;
use std::path::Path;

use zeroize::Zeroizing;

use crate::sys::special_file_kind as file_type_name;

/// A problem reading a bounded regular file, for the callers to name.
pub enum FileProblem {
    Missing,
    Directory,
    NotAFile(&'static str),
    Unreadable(String),
    TooLarge,
}

impl FileProblem {
    /// The problem as a clause: `it does not exist`, `it is a device, not a regular file`…
    pub fn describe(&self, max: u64) -> String {
        match self {
            FileProblem::Missing => "it does not exist".into(),
            FileProblem::Directory => "it is a directory".into(),
            FileProblem::NotAFile(what) => format!("it is {what}, not a regular file"),
            FileProblem::Unreadable(reason) => reason.clone(),
            FileProblem::TooLarge => format!("it is larger than {} KiB", max / 1024),
        }
    }
}

/// Reads at most `max` bytes of the regular file at `path`. Anything else (a
/// FIFO, a socket, a device) is refused without blocking: the file is opened
/// non-blocking and checked through its handle, so a path swapped between a
/// check and the open cannot make us wait for a writer.
pub fn read_regular_file(
    path: &Path,
    max: u64,
) -> Result<(Zeroizing<Vec<u8>>, std::fs::Metadata), FileProblem> {
    let reason = |e: &std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => FileProblem::Missing,
        _ => FileProblem::Unreadable(io_reason(e)),
    };
    let metadata = std::fs::metadata(path).map_err(|e| reason(&e))?;
    if metadata.is_dir() {
        return Err(FileProblem::Directory);
    }
    if !metadata.is_file() {
        return Err(FileProblem::NotAFile(file_type_name(metadata.file_type())));
    }
    let file = crate::sys::open_read_nonblocking(path).map_err(|e| reason(&e))?;
    let metadata = file.metadata().map_err(|e| reason(&e))?;
    if !metadata.is_file() {
        return Err(FileProblem::NotAFile(file_type_name(metadata.file_type())));
    }
    if metadata.len() > max {
        return Err(FileProblem::TooLarge);
    }
    // Read through a bound as well: /proc files report a length of 0.
    let mut bytes = Zeroizing::new(Vec::with_capacity(metadata.len() as usize + 1));
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| reason(&e))?;
    if bytes.len() as u64 > max {
        return Err(FileProblem::TooLarge);
    }
    Ok((bytes, metadata))
}

pub fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.kind().to_string(),
    }
}

/// Whether `path` may be removed by `--consume-secret-files`: a regular file
/// (not a link) of this user, in a directory of this user that it may write
/// to. The reason it may not is a clause (`it sits in a directory of another
/// user (a read-only mount?)`).
pub fn may_consume(path: &Path) -> Result<(), String> {
    let file = std::fs::symlink_metadata(path).map_err(|e| io_reason(&e))?;
    if !file.file_type().is_file() {
        return Err("it is not a regular file".into());
    }
    if !crate::sys::owned_by_us(&file) {
        return Err("it belongs to another user".into());
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = std::fs::metadata(parent).map_err(|e| io_reason(&e))?;
    if !crate::sys::owned_by_us(&dir) || !crate::sys::owner_may_write(&dir) {
        return Err(format!(
            "it sits in {}, a directory this run does not own or may not write to \
             (a read-only Secret mount cannot be consumed)",
            parent.display()
        ));
    }
    Ok(())
}
