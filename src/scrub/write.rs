//! Editing and writing a file the way git does, so that git and `scrub` can
//! run side by side: take `F.lock` exclusively (through a symbolic link, to
//! its target, as git's lockfile does), read `F` *while holding the lock*,
//! compute the edit from that content, write and sync the lock file, verify
//! it, rename it over `F`. Nothing outside the lock is trusted: a writer that
//! came in between our first look and the lock is in the content we edit.
//! It must never write a file it has not locked, nor leave its lock behind.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::ScrubError;
use super::detect::Edit;

/// How long to wait for another writer's lock before giving up (git itself
/// gives up at once; a short wait makes `scrub` beside a busy agent useful).
const LOCK_WAIT: Duration = Duration::from_millis(1500);

/// `text` with `edits` applied. Only lines that hold an edited value change:
/// a replacement touches only its exact text, a dropped header only a line
/// whose key is `extraheader` and that carries the value, a dropped line only
/// that line.
pub fn edited(text: &str, edits: &[&Edit]) -> String {
    let mut out = text.to_owned();
    for edit in edits {
        if let Edit::Replace { from, to } = edit
            && !from.0.is_empty()
        {
            out = out.replace(from.0.as_str(), to);
        }
    }
    let drop_lines: Vec<usize> = edits
        .iter()
        .filter_map(|e| match e {
            Edit::DropLine(n) => Some(*n),
            _ => None,
        })
        .collect();
    let drop_headers: Vec<&str> = edits
        .iter()
        .filter_map(|e| match e {
            Edit::DropHeader(v) => Some(v.0.trim()),
            _ => None,
        })
        .filter(|v| !v.is_empty())
        .collect();
    if drop_lines.is_empty() && drop_headers.is_empty() {
        return out;
    }
    let lines: Vec<&str> = out.split_inclusive('\n').collect();
    let is_section = |line: &str| line.trim_start().starts_with('[');
    let mut drop = vec![false; lines.len()];
    let mut header: Option<usize> = None;
    let mut emptied: Vec<usize> = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        if is_section(line) {
            header = Some(n);
            continue;
        }
        let key = line
            .trim_start()
            .split(['=', ' ', '\t'])
            .next()
            .unwrap_or("");
        let is_header = key.eq_ignore_ascii_case("extraheader")
            && drop_headers.iter().any(|v| line.contains(v));
        if drop_lines.contains(&n) || is_header {
            drop[n] = true;
            if is_header && let Some(h) = header {
                emptied.push(h);
            }
        }
    }
    // A section left with nothing but blank lines by a dropped header (the
    // `[http "https://bitbucket.org/"]` that only carried it) goes too: git
    // would keep an empty section forever.
    for h in emptied {
        let end = (h + 1..lines.len())
            .find(|&n| is_section(lines[n]))
            .unwrap_or(lines.len());
        if (h + 1..end).all(|n| drop[n] || lines[n].trim().is_empty()) {
            drop[h] = true;
        }
    }
    lines
        .iter()
        .zip(&drop)
        .filter(|(_, dropped)| !**dropped)
        .map(|(line, _)| *line)
        .collect()
}

/// The file a write to `path` lands in: `path` itself, or the target of the
/// symbolic link(s) it is, as git's lockfile resolves them.
pub fn write_target(path: &Path) -> Result<PathBuf, ScrubError> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| ScrubError::Unreadable {
        path: path.display().to_string(),
        reason: e.kind().to_string(),
    })?;
    if !meta.file_type().is_symlink() {
        return Ok(path.to_path_buf());
    }
    let target = std::fs::canonicalize(path).map_err(|e| ScrubError::Unwritable {
        path: path.display().to_string(),
        reason: format!(
            "it is a symbolic link that cannot be followed: {}",
            e.kind()
        ),
    })?;
    if !target.is_file() {
        return Err(ScrubError::Unwritable {
            path: path.display().to_string(),
            reason: format!("it is a symbolic link to {}, not a file", target.display()),
        });
    }
    Ok(target)
}

/// An exclusive `F.lock`, removed on drop unless it was renamed over `F`.
pub struct Lock {
    /// The name the user knows (may be a symbolic link).
    shown: String,
    target: PathBuf,
    lock: PathBuf,
    handle: std::fs::File,
    mode: u32,
    done: bool,
}

impl Lock {
    pub fn acquire(path: &Path) -> Result<Self, ScrubError> {
        let shown = path.display().to_string();
        let target = write_target(path)?;
        let lock = PathBuf::from(format!("{}.lock", target.display()));
        let mode = std::fs::metadata(&target)
            .map(|m| crate::sys::mode(&m))
            .unwrap_or(0o644);
        let started = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            match crate::sys::create_with_mode(
                std::fs::OpenOptions::new().write(true).create_new(true),
                mode,
            )
            .open(&lock)
            {
                Ok(handle) => {
                    return Ok(Self {
                        shown,
                        target,
                        lock,
                        handle,
                        mode,
                        done: false,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if started.elapsed() >= LOCK_WAIT {
                        return Err(ScrubError::Locked {
                            path: shown,
                            lock: lock.display().to_string(),
                        });
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                Err(e) => {
                    return Err(ScrubError::Unwritable {
                        path: shown,
                        reason: e.kind().to_string(),
                    });
                }
            }
        }
    }

    /// The file's content now: nobody who follows git's protocol can change
    /// it while we hold the lock.
    pub fn content(&self) -> Result<Zeroizing<String>, ScrubError> {
        let bytes =
            Zeroizing::new(
                std::fs::read(&self.target).map_err(|e| ScrubError::Unreadable {
                    path: self.shown.clone(),
                    reason: e.kind().to_string(),
                })?,
            );
        match std::str::from_utf8(&bytes) {
            Ok(text) => Ok(Zeroizing::new(text.to_owned())),
            Err(e) => Err(ScrubError::NotUtf8 {
                path: self.shown.clone(),
                offset: e.valid_up_to(),
            }),
        }
    }

    pub fn lock_path(&self) -> &Path {
        &self.lock
    }

    /// Writes `text` into the lock, syncs it, runs `verify` on it, and renames
    /// it over the file. On any failure the lock is removed and the file is
    /// as it was.
    pub fn commit(
        mut self,
        text: &str,
        verify: impl FnOnce(&Path) -> Result<(), String>,
    ) -> Result<(), ScrubError> {
        let unwritable = |e: std::io::Error| ScrubError::Unwritable {
            path: self.shown.clone(),
            reason: e.kind().to_string(),
        };
        self.handle
            .write_all(text.as_bytes())
            .and_then(|()| self.handle.sync_all())
            .map_err(unwritable)?;
        // create_new applies the umask: give the new file the old file's mode.
        let _ = crate::sys::set_mode(&self.lock, self.mode);
        verify(&self.lock).map_err(|reason| ScrubError::Verification {
            path: self.shown.clone(),
            reason,
        })?;
        std::fs::rename(&self.lock, &self.target).map_err(unwritable)?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.lock);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::detect::SecretText;
    use super::*;

    fn secret(s: &str) -> SecretText {
        SecretText(Zeroizing::new(s.to_owned()))
    }

    #[test]
    fn only_the_lines_meant_are_changed() {
        let text = "[http]\n\textraHeader = Authorization: Basic AAA\n\textraHeaderX = Authorization: Basic AAA\n# extraHeader = Authorization: Basic AAA\n[remote \"o\"]\n\turl = https://u:p@bitbucket.org/x\n";
        let edits = [
            Edit::DropHeader(secret("Authorization: Basic AAA")),
            Edit::Replace {
                from: secret("https://u:p@bitbucket.org"),
                to: "https://u@bitbucket.org".into(),
            },
        ];
        let refs: Vec<&Edit> = edits.iter().collect();
        assert_eq!(
            edited(text, &refs),
            "[http]\n\textraHeaderX = Authorization: Basic AAA\n# extraHeader = Authorization: Basic AAA\n[remote \"o\"]\n\turl = https://u@bitbucket.org/x\n"
        );
    }

    #[test]
    fn a_section_emptied_by_a_dropped_header_goes_but_not_one_with_other_keys() {
        let text = "[core]\n\tbare = false\n[http \"https://bitbucket.org/\"]\n\textraHeader = Authorization: Basic AAA\n\n[http \"https://bitbucket.org/x\"]\n\textraHeader = Authorization: Basic AAA\n\tsslVerify = true\n[user]\n\tname = CI\n";
        let edits = [Edit::DropHeader(secret("Authorization: Basic AAA"))];
        let refs: Vec<&Edit> = edits.iter().collect();
        assert_eq!(
            edited(text, &refs),
            "[core]\n\tbare = false\n\n[http \"https://bitbucket.org/x\"]\n\tsslVerify = true\n[user]\n\tname = CI\n"
        );
    }

    #[test]
    fn empty_edits_change_nothing() {
        let text = "a\nb\n";
        let edits = [
            Edit::DropHeader(secret("  ")),
            Edit::Replace {
                from: secret(""),
                to: "x".into(),
            },
        ];
        let refs: Vec<&Edit> = edits.iter().collect();
        assert_eq!(edited(text, &refs), text);
    }

    #[test]
    fn a_lock_is_removed_when_not_committed_and_a_held_lock_is_respected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("config");
        std::fs::write(&file, "x\n").expect("write");
        let lock = Lock::acquire(&file).expect("lock");
        assert!(dir.path().join("config.lock").exists());
        assert!(matches!(
            Lock::acquire(&file),
            Err(ScrubError::Locked { .. })
        ));
        drop(lock);
        assert!(!dir.path().join("config.lock").exists());
        let lock = Lock::acquire(&file).expect("lock");
        lock.commit("y\n", |_| Err("no".into()))
            .expect_err("verification fails");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "x\n");
        assert!(!dir.path().join("config.lock").exists());
    }

    #[test]
    #[cfg(unix)]
    fn a_symbolic_link_is_written_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("real");
        std::fs::write(&target, "x\n").expect("write");
        let link = dir.path().join("config");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let lock = Lock::acquire(&link).expect("lock");
        lock.commit("y\n", |_| Ok(())).expect("commit");
        assert!(
            std::fs::symlink_metadata(&link)
                .expect("meta")
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "y\n");
    }
}
