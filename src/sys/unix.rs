//! Unix: file types, `O_NONBLOCK`, mode bits and groups, device and inode;
//! a process's executable and parent from `/proc` (Linux; elsewhere unknown).

use std::fs::{File, FileType, Metadata, OpenOptions};
use std::os::unix::fs::{
    FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::Path;

use super::FileStamp;

/// What a path that is not a regular file is, for an error message.
pub fn special_file_kind(file_type: FileType) -> &'static str {
    if file_type.is_fifo() {
        "a named pipe (FIFO)"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() || file_type.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading without blocking, even if it was swapped for a
/// FIFO after it was checked.
pub fn open_read_nonblocking(path: &Path) -> std::io::Result<File> {
    let nonblocking = rustix::fs::OFlags::NONBLOCK.bits() as i32;
    OpenOptions::new()
        .read(true)
        .custom_flags(nonblocking)
        .open(path)
}

/// Opens `path` to append to (an audit log): created `0600` and exclusively
/// when new; an existing one must be a regular file of this user that no
/// other user may read or write. No symbolic link is followed, and a FIFO is
/// refused without blocking. The reason for a refusal is a clause
/// (`it is a symbolic link`).
pub fn open_private_append(path: &Path) -> Result<File, String> {
    let flags = (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32;
    let reason = |e: std::io::Error| match e.raw_os_error() {
        Some(code) if code == rustix::io::Errno::LOOP.raw_os_error() => {
            "it is a symbolic link (never followed)".to_owned()
        }
        Some(code) if code == rustix::io::Errno::NXIO.raw_os_error() => {
            "it is a named pipe (FIFO), not a regular file".to_owned()
        }
        _ => e.to_string(),
    };
    match OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(flags)
        .open(path)
    {
        Ok(file) => return Ok(file),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(reason(e)),
    }
    let file = OpenOptions::new()
        .append(true)
        .custom_flags(flags)
        .open(path)
        .map_err(reason)?;
    let metadata = file.metadata().map_err(|e| e.to_string())?;
    if !metadata.file_type().is_file() {
        return Err(format!("it is {}", special_file_kind(metadata.file_type())));
    }
    let me = rustix::process::geteuid().as_raw();
    if metadata.uid() != me {
        return Err(format!(
            "it belongs to another user (uid {}), who could read or forge its records",
            metadata.uid()
        ));
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "other users may write to it (mode {mode:03o}); `chmod 600` it or remove it"
        ));
    }
    if mode & 0o004 != 0 {
        return Err(format!(
            "other users may read it (mode {mode:03o}); `chmod 600` it or remove it"
        ));
    }
    Ok(file)
}

/// Whether the file was deleted (no name links to it any more).
pub fn unlinked(metadata: &Metadata) -> bool {
    metadata.nlink() == 0
}

/// Whether two metadata are of the same file (device and inode).
pub fn same_file(a: &Metadata, b: &Metadata) -> bool {
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

/// Whether the file or directory belongs to the user we run as.
pub fn owned_by_us(metadata: &Metadata) -> bool {
    metadata.uid() == rustix::process::geteuid().as_raw()
}

/// Whether its owner may write to it (a directory: create and remove entries).
pub fn owner_may_write(metadata: &Metadata) -> bool {
    metadata.permissions().mode() & 0o200 != 0
}

/// Who besides its owner may read a file, by its mode: `other users`, or its
/// group when that is not one of ours (a Kubernetes `fsGroup` with mode 0440
/// is the group we run in, and fine); with the mode, e.g. `(mode 644)`.
pub fn readable_by_others(metadata: &Metadata) -> Option<(&'static str, String)> {
    let mode = metadata.permissions().mode();
    let shown = format!("mode {:03o}", mode & 0o777);
    if mode & 0o004 != 0 {
        return Some(("other users", shown));
    }
    if mode & 0o040 != 0 {
        let gid = metadata.gid();
        let ours = rustix::process::getegid().as_raw() == gid
            || rustix::process::getgroups()
                .map(|groups| groups.iter().any(|g| g.as_raw() == gid))
                .unwrap_or(false);
        if !ours {
            return Some(("its group, which this process is not in,", shown));
        }
    }
    None
}

pub fn file_stamp(metadata: &Metadata) -> FileStamp {
    FileStamp {
        id: (metadata.dev(), metadata.ino()),
        size: metadata.size(),
        modified: metadata.modified().ok(),
        changed: (metadata.ctime(), metadata.ctime_nsec()),
    }
}

/// A directory's identity, to walk each one once (links can loop).
pub fn dir_identity(_path: &Path, metadata: &Metadata) -> String {
    format!("{}:{}", metadata.dev(), metadata.ino())
}

/// The permission bits to give a file that replaces this one.
pub fn mode(metadata: &Metadata) -> u32 {
    metadata.permissions().mode() & 0o7777
}

/// Files created through `options` get `mode` (less the umask).
pub fn create_with_mode(options: &mut OpenOptions, mode: u32) -> &mut OpenOptions {
    options.mode(mode)
}

/// Sets `path`'s permission bits to `mode`.
pub fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// The executable of process `pid`, if this system says (`/proc/<pid>/exe`).
pub fn process_exe(pid: u32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// The parent of process `pid`, if this system says (`/proc/<pid>/stat`:
/// `pid (comm) state ppid …`; comm may hold spaces and parentheses).
pub fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
