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
