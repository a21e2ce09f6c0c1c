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

/// Where a pump writes. std's stdout/stderr handles on Windows are unbuffered
/// for pipes and files (a console gets UTF-16 conversion); each `feed` ends
/// with everything written.
pub fn output(to: Stream) -> Box<dyn Write> {
    match to {
        Stream::Stdout => Box::new(std::io::stdout()),
        Stream::Stderr => Box::new(std::io::stderr()),
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
            _ = supervisor.ctrl_c.recv() => {
                tracing::info!("Ctrl-C: the console gave it to the child as well; waiting for it");
            }
            _ = supervisor.ctrl_break.recv() => {
                tracing::info!("Ctrl-Break: the console gave it to the child as well; waiting for it");
            }
        }
    }
}
