//! The broker's transport: where it listens, who may connect, and how a front
//! door reaches it.
//!
//! - Unix: a socket (`s`, mode 0600) in a fresh `bbi-XXXXXX` directory (mode
//!   0700); the peer's uid and pid come from the kernel (`SO_PEERCRED`, or
//!   `getpeereid` on the BSDs and macOS).
//! - Windows: a named pipe `\\.\pipe\bbinject-<128 random bits>`, created with
//!   `FILE_FLAG_FIRST_PIPE_INSTANCE` (a name someone took first is an error,
//!   not a server we share), remote clients rejected, and a protected DACL
//!   that grants the current user alone; the peer's pid comes from
//!   `GetNamedPipeClientProcessId` and its user from that process's token.
//!   Nothing is written to disk.
//!
//! The address (socket path or pipe name) goes to the child as
//! `BBINJECT_SOCKET`. This module never reads or writes a request's content
//! and never decides policy: it reports who the peer is, the server decides.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The user a peer runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum User {
    Uid(u32),
    /// A Windows security identifier, `S-1-5-21-…`.
    Sid(String),
}

impl std::fmt::Display for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            User::Uid(uid) => write!(f, "uid {uid}"),
            User::Sid(sid) => write!(f, "user {sid}"),
        }
    }
}

/// Who is at the other end of a connection.
#[derive(Clone, Debug)]
pub struct Peer {
    pub pid: Option<u32>,
    pub user: User,
}

#[cfg(unix)]
pub use unix::*;
#[cfg(windows)]
pub use windows::*;

#[cfg(unix)]
mod unix {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    /// Unix socket paths are limited to 108 bytes; stay well clear.
    const MAX_SOCKET_PATH: usize = 100;
    /// The socket's name inside the directory.
    const SOCKET_NAME: &str = "s";

    /// The fresh private directory holding the socket; removed when dropped,
    /// on every exit path that unwinds.
    pub struct Endpoint {
        path: PathBuf,
        /// `false` once handed to another process, which removes it.
        owned: bool,
    }

    impl Endpoint {
        /// Creates `bbi-XXXXXX` (mode 0700) under `$XDG_RUNTIME_DIR`, else
        /// the temp dir, else `/tmp` if those give a socket path too long.
        pub fn create() -> std::io::Result<Self> {
            let mut bases: Vec<PathBuf> = Vec::new();
            if let Some(xdg) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
                bases.push(PathBuf::from(xdg));
            }
            bases.push(std::env::temp_dir());
            bases.push(PathBuf::from("/tmp"));
            let mut last_error = std::io::Error::other("no usable runtime directory");
            for base in bases {
                // "<base>/bbi-XXXXXX/s" must fit.
                if base.as_os_str().len() + 14 > MAX_SOCKET_PATH || !base.is_dir() {
                    continue;
                }
                match tempfile::Builder::new().prefix("bbi-").tempdir_in(&base) {
                    Ok(dir) => {
                        std::fs::set_permissions(
                            dir.path(),
                            std::fs::Permissions::from_mode(0o700),
                        )?;
                        return Ok(Self {
                            path: dir.keep(),
                            owned: true,
                        });
                    }
                    Err(e) => last_error = e,
                }
            }
            Err(last_error)
        }

        /// Takes over a directory another bbinject process created for us
        /// (the detached broker's, made by `export` where the caller's
        /// `XDG_RUNTIME_DIR`/`TMPDIR` say). It must be ours alone: a real
        /// directory, owned by our uid, mode 0700, and empty.
        pub fn adopt(path: PathBuf) -> std::io::Result<Self> {
            use std::os::unix::fs::MetadataExt as _;
            let meta = std::fs::symlink_metadata(&path)?;
            let private = meta.is_dir()
                && meta.uid() == rustix::process::getuid().as_raw()
                && meta.permissions().mode() & 0o777 == 0o700
                && std::fs::read_dir(&path)?.next().is_none();
            if !private {
                return Err(std::io::Error::other(format!(
                    "{} is not a private empty directory of this user",
                    path.display()
                )));
            }
            Ok(Self { path, owned: true })
        }

        /// Gives the endpoint up: another process removes it from now on.
        pub fn hand_over(mut self) {
            self.owned = false;
        }

        /// What [`Endpoint::adopt`] takes: the directory.
        pub fn handle(&self) -> &Path {
            &self.path
        }

        /// What a front door connects to (`BBINJECT_SOCKET`).
        pub fn address(&self) -> PathBuf {
            self.path.join(SOCKET_NAME)
        }
    }

    impl Drop for Endpoint {
        fn drop(&mut self) {
            if self.owned {
                let _ = std::fs::remove_dir_all(&self.path);
            }
        }
    }

    pub type Connection = tokio::net::UnixStream;

    pub struct Listener(tokio::net::UnixListener);

    impl Listener {
        pub fn bind(endpoint: &Endpoint) -> std::io::Result<Self> {
            let socket = endpoint.address();
            let listener = tokio::net::UnixListener::bind(&socket)?;
            std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
            Ok(Self(listener))
        }

        pub async fn accept(&mut self) -> std::io::Result<Connection> {
            Ok(self.0.accept().await?.0)
        }

        /// The user this process runs as: the one its peers must be.
        pub fn user(&self) -> User {
            User::Uid(rustix::process::getuid().as_raw())
        }
    }

    /// Who is connected, from the kernel.
    pub fn peer(connection: &Connection) -> std::io::Result<Peer> {
        let cred = connection.peer_cred()?;
        Ok(Peer {
            pid: cred.pid().and_then(|p| u32::try_from(p).ok()),
            user: User::Uid(cred.uid()),
        })
    }

    pub type ClientStream = std::os::unix::net::UnixStream;

    /// Connects a front door, blocking, with a read timeout.
    pub fn connect(address: &OsStr, timeout: std::time::Duration) -> std::io::Result<ClientStream> {
        let stream = std::os::unix::net::UnixStream::connect(address)?;
        stream.set_read_timeout(Some(timeout))?;
        Ok(stream)
    }

    /// Whether the endpoint at `address` is gone (after a revocation).
    pub fn is_gone(address: &OsStr) -> bool {
        !Path::new(address).exists()
    }
}

#[cfg(windows)]
mod windows {
    use super::*;
    use tokio::net::windows::named_pipe::NamedPipeServer;

    const PREFIX: &str = r"\\.\pipe\bbinject-";

    /// The pipe's name; nothing to remove (the pipe ends with its last handle).
    pub struct Endpoint {
        name: PathBuf,
    }

    impl Endpoint {
        /// A fresh name with 128 random bits.
        pub fn create() -> std::io::Result<Self> {
            let random: [u8; 16] = rand::random();
            let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
            Ok(Self {
                name: PathBuf::from(format!("{PREFIX}{hex}")),
            })
        }

        /// Takes a name another bbinject process chose for us (the detached
        /// broker's): it must be one of ours. Creating the pipe with
        /// `FILE_FLAG_FIRST_PIPE_INSTANCE` then proves nobody took it first.
        pub fn adopt(name: PathBuf) -> std::io::Result<Self> {
            let ours = name
                .to_str()
                .and_then(|n| n.strip_prefix(PREFIX))
                .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
            if !ours {
                return Err(std::io::Error::other(format!(
                    "{} is not a bbinject pipe name",
                    name.display()
                )));
            }
            Ok(Self { name })
        }

        /// Nothing to give up: the pipe ends with its last handle.
        pub fn hand_over(self) {}

        pub fn handle(&self) -> &Path {
            &self.name
        }

        pub fn address(&self) -> PathBuf {
            self.name.clone()
        }
    }

    pub type Connection = NamedPipeServer;

    /// The next pipe instance waiting for a client.
    pub struct Listener {
        name: PathBuf,
        sid: String,
        pub(super) next: NamedPipeServer,
    }

    impl Listener {
        pub fn bind(endpoint: &Endpoint) -> std::io::Result<Self> {
            let sid = crate::sys::current_user_sid()?;
            let next = crate::sys::create_pipe(endpoint.name.as_os_str(), &sid, true)?;
            Ok(Self {
                name: endpoint.name.clone(),
                sid,
                next,
            })
        }

        /// Waits for a client; a new instance waits for the next one from then
        /// on (also after a failed connection, whose instance is dropped).
        pub async fn accept(&mut self) -> std::io::Result<Connection> {
            let connected = self.next.connect().await;
            let fresh = crate::sys::create_pipe(self.name.as_os_str(), &self.sid, false)?;
            let previous = std::mem::replace(&mut self.next, fresh);
            connected.map(|()| previous)
        }

        /// The user this process runs as (read once, at bind): the one its
        /// peers must be.
        pub fn user(&self) -> User {
            User::Sid(self.sid.clone())
        }
    }

    /// Who is connected: the client's pid, and the user of its process token.
    pub fn peer(connection: &Connection) -> std::io::Result<Peer> {
        let (pid, sid) = crate::sys::pipe_client(connection)?;
        Ok(Peer {
            pid: Some(pid),
            user: User::Sid(sid),
        })
    }

    pub type ClientStream = std::fs::File;

    /// `ERROR_PIPE_BUSY`: every instance is taken; the broker makes another.
    const ERROR_PIPE_BUSY: i32 = 231;

    /// Opens the pipe, blocking; retries while all instances are busy. The
    /// broker may identify, but not impersonate, the client.
    pub fn connect(address: &OsStr, timeout: std::time::Duration) -> std::io::Result<ClientStream> {
        use std::os::windows::fs::OpenOptionsExt as _;
        // SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION
        const IDENTIFY_ONLY: u32 = 0x0010_0000 | (1 << 16);
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .security_qos_flags(IDENTIFY_ONLY)
                .open(address)
            {
                Err(e)
                    if e.raw_os_error() == Some(ERROR_PIPE_BUSY)
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                result => return result,
            }
        }
    }

    /// Whether no instance of the pipe exists any more (after a revocation:
    /// the broker is ending, so a connection it never reads is harmless).
    pub fn is_gone(address: &OsStr) -> bool {
        matches!(
            std::fs::OpenOptions::new().read(true).write(true).open(address),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A front door's connection, as the broker sees it: this process, this user.
    #[tokio::test]
    async fn a_client_is_identified_as_its_process_and_user() {
        let endpoint = Endpoint::create().expect("endpoint");
        let mut listener = Listener::bind(&endpoint).expect("bind");
        let address = endpoint.address();
        let client = std::thread::spawn(move || {
            connect(address.as_os_str(), std::time::Duration::from_secs(5)).expect("connect")
        });
        let connection = listener.accept().await.expect("accept");
        let peer = peer(&connection).expect("peer");
        assert_eq!(peer.pid, Some(std::process::id()));
        assert_eq!(peer.user, listener.user());
        drop(client.join().expect("client"));
    }

    /// git `--jobs 20`: twenty front doors at once all get through (on
    /// Windows, a client finding every instance busy retries).
    #[tokio::test]
    async fn twenty_clients_at_once_are_all_served() {
        use std::io::{Read as _, Write as _};
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let endpoint = Endpoint::create().expect("endpoint");
        let mut listener = Listener::bind(&endpoint).expect("bind");
        let clients: Vec<_> = (0..20u8)
            .map(|i| {
                let address = endpoint.address();
                std::thread::spawn(move || {
                    let mut stream =
                        connect(address.as_os_str(), std::time::Duration::from_secs(10))
                            .expect("connect");
                    stream.write_all(&[i]).expect("write");
                    let mut answer = Vec::new();
                    stream.read_to_end(&mut answer).expect("read");
                    answer == [i, i]
                })
            })
            .collect();
        let mut served = Vec::new();
        for _ in 0..20 {
            let mut connection = listener.accept().await.expect("accept");
            served.push(tokio::spawn(async move {
                let mut byte = [0u8];
                connection.read_exact(&mut byte).await.expect("read");
                connection
                    .write_all(&[byte[0], byte[0]])
                    .await
                    .expect("write");
                let _ = connection.shutdown().await;
            }));
        }
        // Before joining the clients: the handlers run on this thread.
        for handler in served {
            handler.await.expect("served");
        }
        for client in clients {
            assert!(
                client.join().expect("client"),
                "a client got a wrong answer"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn only_a_private_empty_directory_is_adopted() {
        use std::os::unix::fs::PermissionsExt as _;
        let base = tempfile::tempdir().expect("tempdir");
        let dir = base.path().join("d");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert!(Endpoint::adopt(dir.clone()).is_err(), "0755 adopted");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        std::fs::write(dir.join("x"), "").expect("write");
        assert!(
            Endpoint::adopt(dir.clone()).is_err(),
            "a non-empty directory adopted"
        );
        std::fs::remove_file(dir.join("x")).expect("rm");
        let adopted = Endpoint::adopt(dir.clone()).expect("private and empty");
        drop(adopted);
        assert!(
            !dir.exists(),
            "an adopted directory is removed with its endpoint"
        );
    }

    #[cfg(windows)]
    #[test]
    fn only_names_of_our_own_are_adopted() {
        let ours = Endpoint::create().expect("endpoint").handle().to_path_buf();
        assert!(Endpoint::adopt(ours).is_ok());
        for name in [
            r"\\.\pipe\docker_engine",
            r"\\.\pipe\bbinject-0123",
            r"\\server\pipe\bbinject-0123456789abcdef0123456789abcdef",
            r"C:\Temp\bbinject-0123456789abcdef0123456789abcdef",
        ] {
            assert!(Endpoint::adopt(PathBuf::from(name)).is_err(), "{name}");
        }
    }

    /// Someone who created the name first does not get our clients. Wine 8
    /// ignores `FILE_FLAG_FIRST_PIPE_INSTANCE` (two first instances of one
    /// name both succeed there), so this runs on real Windows only:
    /// `cargo test --lib -- --ignored transport`.
    #[cfg(windows)]
    #[tokio::test]
    #[ignore = "wine ignores FILE_FLAG_FIRST_PIPE_INSTANCE; run on real Windows"]
    async fn a_pipe_name_taken_first_is_refused() {
        let endpoint = Endpoint::create().expect("endpoint");
        let sid = crate::sys::current_user_sid().expect("sid");
        let squatter =
            crate::sys::create_pipe(endpoint.address().as_os_str(), &sid, true).expect("first");
        assert!(
            Listener::bind(&endpoint).is_err(),
            "bound a name taken first"
        );
        drop(squatter);
    }

    /// The pipe's DACL, read back: protected, one grant, to this user.
    #[cfg(windows)]
    #[tokio::test]
    async fn the_pipe_grants_the_current_user_alone() {
        let endpoint = Endpoint::create().expect("endpoint");
        let listener = Listener::bind(&endpoint).expect("bind");
        let sid = crate::sys::current_user_sid().expect("sid");
        let dacl = crate::sys::pipe_dacl(&listener.next).expect("dacl");
        assert!(dacl.starts_with("D:P"), "{dacl}");
        assert_eq!(dacl.matches("(A;").count(), 1, "{dacl}");
        assert!(dacl.ends_with(&format!(";;;{sid})")), "{dacl}");
        assert!(
            !dacl.contains(";WD)") && !dacl.contains(";BA)") && !dacl.contains(";SY)"),
            "{dacl}"
        );
    }
}
