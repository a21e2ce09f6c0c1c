//! `exec` on Unix: the signals forwarded to the child (INT, TERM, HUP, QUIT),
//! reaping it (and, as PID 1, every orphan), its status as an exit code
//! (`128 + n` for signal `n`), and our stdout/stderr written unbuffered.
//! It never reads the child's output (the pumps in `exec` do).

use std::io::Write;
use std::time::Duration;

use rustix::process::{Pid, Signal, WaitOptions};
use tokio::signal::unix::{SignalKind, signal};

use super::Stream;
use crate::error::Exit;

/// The pipe buffer asked for the child's stdout and stderr.
const PIPE_SIZE: usize = 1024 * 1024;

/// Larger pipes mean fewer context switches between the child and us (best
/// effort: the limit is /proc/sys/fs/pipe-max-size; Linux only).
pub fn enlarge_pipes(child: &std::process::Child) {
    #[cfg(target_os = "linux")]
    {
        if let Some(out) = &child.stdout {
            let _ = rustix::pipe::fcntl_setpipe_size(out, PIPE_SIZE);
        }
        if let Some(err) = &child.stderr {
            let _ = rustix::pipe::fcntl_setpipe_size(err, PIPE_SIZE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (child, PIPE_SIZE);
}

/// Whether our stdout and stderr are the same file, pipe or terminal (a CI
/// log): then the child's two streams are masked as one.
pub fn same_output() -> bool {
    let (Ok(out), Ok(err)) = (
        rustix::fs::fstat(rustix::stdio::stdout()),
        rustix::fs::fstat(rustix::stdio::stderr()),
    ) else {
        return false;
    };
    (out.st_dev, out.st_ino) == (err.st_dev, err.st_ino)
}

/// Where a pump writes: our own stdout or stderr.
pub fn output(to: Stream) -> impl Write {
    RawFd(match to {
        Stream::Stdout => rustix::stdio::stdout(),
        Stream::Stderr => rustix::stdio::stderr(),
    })
}

/// Our stdout or stderr written directly: std's stdout is line-buffered,
/// which would cost a scan and a copy of every chunk. Each `feed` ends with
/// everything written, so nothing waits in a buffer.
struct RawFd(rustix::fd::BorrowedFd<'static>);

impl Write for RawFd {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        loop {
            match rustix::io::write(self.0, buf) {
                Err(rustix::io::Errno::INTR) => continue,
                result => return result.map_err(std::io::Error::from),
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The signals we forward, and SIGCHLD for reaping.
pub struct Supervisor {
    child: tokio::signal::unix::Signal,
    forwarded: Forwarded,
}

struct Forwarded(Vec<(Signal, tokio::signal::unix::Signal)>);

impl Supervisor {
    /// Nothing to change in how the child is started.
    pub fn prepare(&self, _command: &mut std::process::Command) {}

    /// Nothing to do once it is.
    pub fn started(&self, _child: &mut std::process::Child) -> std::io::Result<()> {
        Ok(())
    }

    pub fn new() -> std::io::Result<Self> {
        let mut forwarded = Vec::new();
        // Every signal whose default would end us without cleanup (the
        // socket directory left, the child orphaned) and that can be caught:
        // forwarded to the child, whose exit we then wait for as usual.
        for (ours, kind) in [
            (Signal::INT, SignalKind::interrupt()),
            (Signal::TERM, SignalKind::terminate()),
            (Signal::HUP, SignalKind::hangup()),
            (Signal::QUIT, SignalKind::quit()),
            (Signal::USR1, SignalKind::user_defined1()),
            (Signal::USR2, SignalKind::user_defined2()),
            (Signal::ALARM, SignalKind::alarm()),
            (Signal::XCPU, SignalKind::from_raw(Signal::XCPU.as_raw())),
            (Signal::XFSZ, SignalKind::from_raw(Signal::XFSZ.as_raw())),
            (
                Signal::VTALARM,
                SignalKind::from_raw(Signal::VTALARM.as_raw()),
            ),
            (Signal::PROF, SignalKind::from_raw(Signal::PROF.as_raw())),
        ] {
            forwarded.push((ours, signal(kind)?));
        }
        Ok(Self {
            child: signal(SignalKind::child())?,
            forwarded: Forwarded(forwarded),
        })
    }
}

impl Forwarded {
    /// The next forwarded signal (never returns while none arrives).
    async fn next(&mut self) -> Signal {
        let waits = self.0.iter_mut().map(|(sig, stream)| {
            let sig = *sig;
            Box::pin(async move {
                stream.recv().await;
                sig
            })
        });
        futures_select_all(waits).await
    }
}

/// Resolves with the first of `futures` to finish.
async fn futures_select_all<F: std::future::Future<Output = Signal> + Unpin>(
    futures: impl Iterator<Item = F>,
) -> Signal {
    let mut futures: Vec<F> = futures.collect();
    std::future::poll_fn(move |cx| {
        for f in futures.iter_mut() {
            if let std::task::Poll::Ready(sig) = std::pin::Pin::new(f).poll(cx) {
                return std::task::Poll::Ready(sig);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Waits for the child, forwarding signals to it; as PID 1 also reaps orphans
/// re-parented to us, so no zombie git processes pile up in a container.
pub async fn supervise(
    child: std::process::Child,
    mut signals: Supervisor,
) -> std::io::Result<Exit> {
    let pid = Pid::from_child(&child);
    let init = rustix::process::getpid().is_init();
    loop {
        loop {
            let target = if init { None } else { Some(pid) };
            match rustix::process::waitpid(target, WaitOptions::NOHANG) {
                Ok(Some((reaped, status))) if reaped == pid => {
                    return Ok(match (status.exit_status(), status.terminating_signal()) {
                        (Some(code), _) => Exit::Child(code as u8),
                        (None, Some(sig)) => Exit::Child(128u8.saturating_add(sig as u8)),
                        (None, None) => Exit::Child(1),
                    });
                }
                Ok(Some((orphan, _))) => {
                    tracing::debug!(pid = orphan.as_raw_nonzero().get(), "reaped an orphan")
                }
                Ok(None) => break,
                Err(e) => return Err(e.into()),
            }
        }
        tokio::select! {
            _ = signals.child.recv() => {}
            sig = signals.forwarded.next() => {
                tracing::info!(signal = ?sig, "forwarding signal to the child");
                let _ = rustix::process::kill_process(pid, sig);
            }
            // A safety net: SIGCHLD can coalesce.
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}
