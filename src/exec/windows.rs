//! `exec` on Windows: the child's whole process tree in a kill-on-close job
//! object (started suspended, put in the job, then resumed; the tree ends
//! when the child does, or with bbinject, even when bbinject is killed), Ctrl-C and
//! Ctrl-Break survived (the console delivers them to the child, which is in
//! our console and process group; we wait for it to act on them), and the
//! child's full 32-bit exit code passed through. It never reads the child's
//! output (the pumps in `exec` do).

use std::io::Write;

use tokio::signal::windows::{CtrlBreak, CtrlC, ctrl_break, ctrl_c};

use super::Stream;
use crate::error::Exit;

/// The job object, and the console events we take so they do not end us.
pub struct Supervisor {
    tree: crate::sys::ProcessTree,
    ctrl_c: CtrlC,
    ctrl_break: CtrlBreak,
}

impl Supervisor {
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            tree: crate::sys::ProcessTree::new()?,
            ctrl_c: ctrl_c()?,
            ctrl_break: ctrl_break()?,
        })
    }

    /// The child starts suspended, so it is in the job before it runs.
    pub fn prepare(&self, command: &mut std::process::Command) {
        use std::os::windows::process::CommandExt as _;
        command.creation_flags(crate::sys::CREATE_SUSPENDED);
    }

    /// Puts the started child in the job and lets it run. A child that
    /// cannot be resumed is killed (it would hang the build).
    pub fn started(&self, child: &mut std::process::Child) -> std::io::Result<()> {
        match self.tree.adopt(child) {
            Ok(None) => Ok(()),
            Ok(Some(e)) => {
                tracing::warn!(
                    error = %e,
                    "the child is not in a job object: processes it leaves behind outlive bbinject"
                );
                Ok(())
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }
}

/// Windows pipes have no size to ask for.
pub fn enlarge_pipes(_child: &std::process::Child) {}

/// Not detected on Windows (a console's two handles differ): `--merge-output` only.
pub fn same_output() -> bool {
    false
}

/// Where a pump writes: our stdout or stderr, flushed after every write (std's
/// stdout is line-buffered: a progress line without a newline would wait).
pub fn output(to: Stream) -> impl Write {
    Flushed(match to {
        Stream::Stdout => Box::new(std::io::stdout()) as Box<dyn Write>,
        Stream::Stderr => Box::new(std::io::stderr()),
    })
}

/// Writes through, flushing each time. On a console, std refuses bytes that
/// are not UTF-8 (the console wants UTF-16); the child's output may be in
/// the console's code page, so such a chunk is written lossily rather than
/// ending the pump (which would break the child's pipe). Pipes and files,
/// where build logs go, get the bytes as they are.
struct Flushed<W>(W);

impl<W: Write> Write for Flushed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = match self.0.write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => self
                .0
                .write_all(String::from_utf8_lossy(buf).as_bytes())
                .map(|()| buf.len()),
            other => other,
        }?;
        self.0.flush()?;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Waits for the child (on a thread: `Child::wait` blocks) while taking the
/// console's Ctrl-C and Ctrl-Break, which the child got as well.
pub async fn supervise(
    mut child: std::process::Child,
    mut supervisor: Supervisor,
) -> std::io::Result<Exit> {
    let (tx, mut exited) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    loop {
        tokio::select! {
            // A Ctrl-C is noted before the exit it may have caused.
            biased;
            _ = supervisor.ctrl_c.recv() => {
                tracing::info!("Ctrl-C: the console gave it to the child as well; waiting for it");
            }
            _ = supervisor.ctrl_break.recv() => {
                tracing::info!("Ctrl-Break: the console gave it to the child as well; waiting for it");
            }
            status = &mut exited => {
                let status = status.map_err(|_| std::io::Error::other("lost the child's status"))??;
                // NTSTATUS codes such as 0xC000013A (ended by Ctrl-C) are
                // negative as i32: passed through whole.
                return Ok(match status.code() {
                    Some(code) => match u8::try_from(code) {
                        Ok(small) => Exit::Child(small),
                        Err(_) => Exit::Status(code),
                    },
                    None => Exit::Child(1),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A console-like writer: refuses bytes that are not UTF-8, counts flushes.
    #[derive(Default)]
    struct Console {
        written: Vec<u8>,
        flushes: usize,
    }

    impl Write for Console {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            std::str::from_utf8(buf).map_err(|_| std::io::ErrorKind::InvalidData)?;
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            self.flushes += 1;
            Ok(())
        }
    }

    #[test]
    fn every_write_is_flushed_and_code_page_bytes_do_not_end_the_pump() {
        let mut out = Flushed(Console::default());
        out.write_all(b"Receiving objects:  45%\r")
            .expect("progress");
        assert_eq!(out.0.flushes, 1, "a line without a newline is flushed");
        out.write_all(b"caf\xe9 ****\n").expect("cp1252 bytes");
        assert_eq!(
            out.0.written,
            "Receiving objects:  45%\rcaf\u{fffd} ****\n".as_bytes()
        );
        assert_eq!(out.0.flushes, 2);
    }
}
