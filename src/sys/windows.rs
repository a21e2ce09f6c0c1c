//! Windows: no FIFOs, sockets or devices on the file system paths bbinject
//! reads, no mode bits (ACLs are not inspected: SECURITY.md, Windows), and a
//! file's identity from its size and times (the volume serial and file index
//! are not in stable std). Below those, the Win32 calls std and tokio do not
//! wrap (the broker pipe's ACL, its client's identity, the job object): the
//! crate's only `unsafe`, each block with why it is sound.

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
/// Not known through std's metadata on Windows: never (a deleted or
/// replaced audit log is not detected there; README says so).
pub fn unlinked(_metadata: &Metadata) -> bool {
    false
}

/// File identity is not in std's metadata on Windows: taken as the same
/// (a replaced audit log is not detected there; README says so).
pub fn same_file(_a: &Metadata, _b: &Metadata) -> bool {
    true
}

/// Ownership is not inspected on Windows (ACLs decide; see SECURITY.md).
pub fn owned_by_us(_metadata: &Metadata) -> bool {
    true
}

/// Whether the file or directory is not read-only.
pub fn owner_may_write(metadata: &Metadata) -> bool {
    !metadata.permissions().readonly()
}

/// Opens `path` to append to (an audit log), created when new; anything but
/// a regular file (a directory, a link) is refused. Its ACL is inherited from
/// its directory (the user's profile or the agent's work directory).
pub fn open_private_append(path: &Path) -> Result<File, String> {
    if let Ok(metadata) = std::fs::symlink_metadata(path)
        && !metadata.file_type().is_file()
    {
        return Err("it is not a regular file".to_owned());
    }
    OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| e.to_string())
}

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

// ---------------------------------------------------------------------------
// Win32 calls that std and tokio do not wrap: the broker pipe's ACL, the
// identity of the process at the other end of it, and the job object that
// ends `exec`'s process tree with bbinject. This is the only place in the
// crate with `unsafe`; each block says why it is sound.

use std::ffi::OsStr;
use std::os::windows::io::{AsRawHandle as _, FromRawHandle as _, OwnedHandle};

use tokio::net::windows::named_pipe::{NamedPipeServer, PipeMode, ServerOptions};
use windows_sys::Win32::Foundation::{HANDLE, HLOCAL, INVALID_HANDLE_VALUE, LocalFree};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    GetTokenInformation, PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES, TOKEN_QUERY, TOKEN_USER,
    TokenUser,
};
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, PROCESSENTRY32W, Process32FirstW, Process32NextW, TH32CS_SNAPPROCESS,
    TH32CS_SNAPTHREAD, THREADENTRY32, Thread32First, Thread32Next,
};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_BREAKAWAY_OK,
    JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    JobObjectExtendedLimitInformation, SetInformationJobObject,
};
use windows_sys::Win32::System::Pipes::GetNamedPipeClientProcessId;
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, OpenProcess, OpenProcessToken, OpenThread, PROCESS_NAME_WIN32,
    PROCESS_QUERY_LIMITED_INFORMATION, QueryFullProcessImageNameW, ResumeThread,
    THREAD_SUSPEND_RESUME,
};

/// The largest `TOKEN_USER` accepted (a SID is at most 68 bytes).
const MAX_TOKEN_USER: u32 = 1024;

/// Memory Win32 allocated with `LocalAlloc` for us, freed on drop.
struct LocalMemory(HLOCAL);

impl Drop for LocalMemory {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from a Win32 call that documents
            // `LocalFree` as its release, and is freed only here, once.
            unsafe { LocalFree(self.0) };
        }
    }
}

fn last_error() -> std::io::Error {
    std::io::Error::last_os_error()
}

fn raw(handle: &OwnedHandle) -> HANDLE {
    handle.as_raw_handle().cast()
}

/// The string form (`S-1-5-21-…`) of the user a process runs as.
fn process_user_sid(process: HANDLE) -> std::io::Result<String> {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: `process` is a process handle valid for this call (ours or one
    // the caller owns); `token` is a valid place for the out handle.
    if unsafe { OpenProcessToken(process, TOKEN_QUERY, &mut token) } == 0 {
        return Err(last_error());
    }
    // SAFETY: OpenProcessToken succeeded, so `token` is a handle we now own.
    let token = unsafe { OwnedHandle::from_raw_handle(token.cast()) };
    let mut needed = 0u32;
    // SAFETY: a null buffer of length 0 asks only for the size, written to `needed`.
    unsafe { GetTokenInformation(raw(&token), TokenUser, std::ptr::null_mut(), 0, &mut needed) };
    if needed == 0 || needed > MAX_TOKEN_USER {
        return Err(std::io::Error::other("unexpected size of the token's user"));
    }
    // u64s: the buffer is aligned for TOKEN_USER (pointer-aligned).
    let mut buffer = vec![0u64; (needed as usize).div_ceil(8)];
    // SAFETY: `buffer` is writable for `needed` bytes and lives across the call.
    if unsafe {
        GetTokenInformation(
            raw(&token),
            TokenUser,
            buffer.as_mut_ptr().cast(),
            needed,
            &mut needed,
        )
    } == 0
    {
        return Err(last_error());
    }
    // SAFETY: the call succeeded, so the buffer starts with a TOKEN_USER whose
    // SID points into the same buffer, which outlives every use below.
    let sid = unsafe { (*buffer.as_ptr().cast::<TOKEN_USER>()).User.Sid };
    let mut text: windows_sys::core::PWSTR = std::ptr::null_mut();
    // SAFETY: `sid` is valid (above); `text` receives a LocalAlloc'ed string.
    if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 {
        return Err(last_error());
    }
    let _free = LocalMemory(text.cast());
    // SAFETY: ConvertSidToStringSidW returns a NUL-terminated UTF-16 string.
    Ok(unsafe { wide_string(text) })
}

/// The SID of the user bbinject runs as.
pub fn current_user_sid() -> std::io::Result<String> {
    // SAFETY: GetCurrentProcess returns a pseudo-handle that needs no closing.
    process_user_sid(unsafe { GetCurrentProcess() })
}

/// Creates one instance of the broker's pipe `name`: byte mode, local
/// clients only, and a protected DACL granting access to `user_sid` alone
/// (not even administrators or SYSTEM get a grant). `first` adds
/// `FILE_FLAG_FIRST_PIPE_INSTANCE`: it fails if anyone created the name first.
pub fn create_pipe(name: &OsStr, user_sid: &str, first: bool) -> std::io::Result<NamedPipeServer> {
    let sddl: Vec<u16> = format!("D:P(A;;GA;;;{user_sid})")
        .encode_utf16()
        .chain(std::iter::once(0))
        .collect();
    let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `sddl` is NUL-terminated UTF-16 alive for the call; the
    // descriptor is LocalAlloc'ed by the call and freed by the guard below.
    if unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut descriptor,
            std::ptr::null_mut(),
        )
    } == 0
    {
        return Err(last_error());
    }
    let _free = LocalMemory(descriptor);
    let mut attributes = SECURITY_ATTRIBUTES {
        nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
        lpSecurityDescriptor: descriptor,
        bInheritHandle: 0,
    };
    let mut options = ServerOptions::new();
    options
        .first_pipe_instance(first)
        .reject_remote_clients(true)
        .pipe_mode(PipeMode::Byte);
    // SAFETY: `attributes` is a valid SECURITY_ATTRIBUTES whose descriptor
    // stays alive (guard above) until after the call returns.
    unsafe { options.create_with_security_attributes_raw(name, (&raw mut attributes).cast()) }
}

/// The DACL of `pipe`, in SDDL (`D:P(A;;FA;;;S-1-5-21-…)`): what the tests
/// read back to see that only the current user is granted.
#[cfg(test)]
pub fn pipe_dacl(pipe: &NamedPipeServer) -> std::io::Result<String> {
    use windows_sys::Win32::Security::Authorization::{
        ConvertSecurityDescriptorToStringSecurityDescriptorW, GetSecurityInfo, SE_KERNEL_OBJECT,
    };
    use windows_sys::Win32::Security::DACL_SECURITY_INFORMATION;
    let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: a live pipe handle; the out pointers are valid or null as allowed;
    // the descriptor is LocalAlloc'ed and freed by the guard.
    let status = unsafe {
        GetSecurityInfo(
            pipe.as_raw_handle().cast(),
            SE_KERNEL_OBJECT,
            DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut descriptor,
        )
    };
    if status != 0 {
        return Err(std::io::Error::from_raw_os_error(status as i32));
    }
    let _free = LocalMemory(descriptor);
    let mut text: windows_sys::core::PWSTR = std::ptr::null_mut();
    // SAFETY: `descriptor` is valid (above); `text` receives a LocalAlloc'ed string.
    if unsafe {
        ConvertSecurityDescriptorToStringSecurityDescriptorW(
            descriptor,
            SDDL_REVISION_1,
            DACL_SECURITY_INFORMATION,
            &mut text,
            std::ptr::null_mut(),
        )
    } == 0
    {
        return Err(last_error());
    }
    let _free_text = LocalMemory(text.cast());
    // SAFETY: a NUL-terminated UTF-16 string from the call above.
    Ok(unsafe { wide_string(text) })
}

/// Copies a NUL-terminated UTF-16 string.
///
/// # Safety
/// `text` must point to a NUL-terminated UTF-16 string.
unsafe fn wide_string(text: *const u16) -> String {
    // SAFETY: the caller promises a NUL terminator, so every read up to it is in bounds.
    let len = (0..).take_while(|&i| unsafe { *text.add(i) } != 0).count();
    // SAFETY: `len` u16s before the NUL are initialised (just counted).
    String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(text, len) })
}

/// A handle to process `pid` for querying, if we may open it.
fn open_for_query(pid: u32) -> Option<OwnedHandle> {
    // SAFETY: plain call; the returned handle is checked before use.
    let process = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    // SAFETY: OpenProcess succeeded, so we own the handle.
    (!process.is_null()).then(|| unsafe { OwnedHandle::from_raw_handle(process.cast()) })
}

/// The executable of process `pid`, for the audit log.
pub fn process_exe(pid: u32) -> Option<std::path::PathBuf> {
    let process = open_for_query(pid)?;
    let mut buffer = vec![0u16; 32 * 1024];
    let mut len = buffer.len() as u32;
    // SAFETY: `buffer` holds `len` u16s; the call writes at most that many and
    // sets `len` to the count written (without the NUL).
    if unsafe {
        QueryFullProcessImageNameW(
            raw(&process),
            PROCESS_NAME_WIN32,
            buffer.as_mut_ptr(),
            &mut len,
        )
    } == 0
    {
        return None;
    }
    buffer.truncate(len as usize);
    Some(std::path::PathBuf::from(String::from_utf16_lossy(&buffer)))
}

/// The parent of process `pid` (from a process snapshot), for the audit log.
pub fn parent_pid(pid: u32) -> Option<u32> {
    // SAFETY: plain call; the returned handle is checked before use.
    let snapshot = unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0) };
    if snapshot.is_null() || snapshot == INVALID_HANDLE_VALUE {
        return None;
    }
    // SAFETY: the snapshot handle is ours to close.
    let snapshot = unsafe { OwnedHandle::from_raw_handle(snapshot.cast()) };
    let mut entry = PROCESSENTRY32W {
        dwSize: std::mem::size_of::<PROCESSENTRY32W>() as u32,
        ..Default::default()
    };
    // SAFETY: `entry` is a valid PROCESSENTRY32W with its size set, for each call.
    let mut more = unsafe { Process32FirstW(raw(&snapshot), &mut entry) } != 0;
    while more {
        if entry.th32ProcessID == pid {
            // 0: no parent (started from outside Windows, or the idle process).
            return Some(entry.th32ParentProcessID).filter(|&p| p != 0);
        }
        // SAFETY: as for Process32FirstW.
        more = unsafe { Process32NextW(raw(&snapshot), &mut entry) } != 0;
    }
    None
}

/// The process id and user SID of the client connected to `pipe`.
pub fn pipe_client(pipe: &NamedPipeServer) -> std::io::Result<(u32, String)> {
    let mut pid = 0u32;
    // SAFETY: `pipe` is a live pipe handle borrowed for the call.
    if unsafe { GetNamedPipeClientProcessId(pipe.as_raw_handle().cast(), &mut pid) } == 0 {
        return Err(last_error());
    }
    let process = open_for_query(pid).ok_or_else(last_error)?;
    Ok((pid, process_user_sid(raw(&process))?))
}

/// A kill-on-close job object holding a child and every process it starts:
/// Windows ends them all when the job's last handle closes — when this is
/// dropped, or when bbinject exits or is killed. bbinject itself is not in
/// the job (its own exit code stays its own). A process may break away only
/// when started with `CREATE_BREAKAWAY_FROM_JOB` (the detached `export`
/// broker is).
pub struct ProcessTree {
    job: OwnedHandle,
}

/// `CREATE_SUSPENDED`: the flag for a child that [`ProcessTree::adopt`] takes.
pub const CREATE_SUSPENDED: u32 = 0x0000_0004;

impl ProcessTree {
    pub fn new() -> std::io::Result<Self> {
        // SAFETY: null attributes and name are allowed (default, unnamed job).
        let job = unsafe { CreateJobObjectW(std::ptr::null(), std::ptr::null()) };
        if job.is_null() {
            return Err(last_error());
        }
        // SAFETY: CreateJobObjectW succeeded, so we own the handle.
        let job = unsafe { OwnedHandle::from_raw_handle(job.cast()) };
        // SAFETY: an all-zero JOBOBJECT_EXTENDED_LIMIT_INFORMATION is valid
        // (plain integers and no limits).
        let mut limits: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { std::mem::zeroed() };
        limits.BasicLimitInformation.LimitFlags =
            JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE | JOB_OBJECT_LIMIT_BREAKAWAY_OK;
        // SAFETY: `limits` is the structure this class expects, alive for the call.
        if unsafe {
            SetInformationJobObject(
                raw(&job),
                JobObjectExtendedLimitInformation,
                (&raw const limits).cast(),
                std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            )
        } == 0
        {
            return Err(last_error());
        }
        Ok(Self { job })
    }

    /// Puts `child`, started with [`CREATE_SUSPENDED`] (so it cannot have
    /// started anything yet), into the job, then lets it run. The child is
    /// resumed even when the job cannot take it (an agent's job on Windows 7,
    /// which cannot nest): that error is the `Ok(Some(_))`, for a warning.
    /// `Err`: the child could not be resumed.
    pub fn adopt(&self, child: &std::process::Child) -> std::io::Result<Option<std::io::Error>> {
        // SAFETY: both handles are valid for the call (the child's is owned by `child`).
        let assigned =
            unsafe { AssignProcessToJobObject(raw(&self.job), child.as_raw_handle().cast()) };
        let not_assigned = (assigned == 0).then(last_error);
        resume_threads(child.id())?;
        Ok(not_assigned)
    }
}

/// Resumes every thread of process `pid` (a suspended new process has one).
fn resume_threads(pid: u32) -> std::io::Result<()> {
    // SAFETY: plain call; the returned handle is checked before use.
    let snapshot = unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0) };
    if snapshot.is_null() || snapshot == INVALID_HANDLE_VALUE {
        return Err(last_error());
    }
    // SAFETY: the snapshot handle is ours to close.
    let snapshot = unsafe { OwnedHandle::from_raw_handle(snapshot.cast()) };
    // SAFETY: an all-zero THREADENTRY32 is valid; dwSize is set before use.
    let mut entry: THREADENTRY32 = unsafe { std::mem::zeroed() };
    entry.dwSize = std::mem::size_of::<THREADENTRY32>() as u32;
    let mut resumed = 0;
    // SAFETY: `entry` is a valid THREADENTRY32 with its size set, for each call.
    let mut more = unsafe { Thread32First(raw(&snapshot), &mut entry) } != 0;
    while more {
        if entry.th32OwnerProcessID == pid {
            // SAFETY: plain call; the handle is checked, then owned.
            let thread = unsafe { OpenThread(THREAD_SUSPEND_RESUME, 0, entry.th32ThreadID) };
            if !thread.is_null() {
                // SAFETY: OpenThread succeeded, so we own the handle.
                let thread = unsafe { OwnedHandle::from_raw_handle(thread.cast()) };
                // SAFETY: a valid thread handle with THREAD_SUSPEND_RESUME.
                if unsafe { ResumeThread(raw(&thread)) } != u32::MAX {
                    resumed += 1;
                }
            }
        }
        // SAFETY: as for Thread32First.
        more = unsafe { Thread32Next(raw(&snapshot), &mut entry) } != 0;
    }
    if resumed == 0 {
        return Err(std::io::Error::other(
            "no thread of the child could be resumed",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child of ours: its parent is us, its executable is cmd.exe.
    #[test]
    fn a_process_is_known_by_its_executable_and_parent() {
        let mut child = std::process::Command::new("cmd")
            .args(["/c", "pause"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("cmd");
        let parent = parent_pid(child.id());
        let exe = process_exe(child.id());
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(parent, Some(std::process::id()));
        let exe = exe.expect("exe").display().to_string().to_ascii_lowercase();
        assert!(exe.ends_with("cmd.exe"), "{exe}");
        assert_eq!(process_exe(u32::MAX), None);
    }
}
