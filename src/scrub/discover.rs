//! Which files `scrub` looks at: the config files of a repository (its own,
//! its worktrees' and its submodules' under `.git/modules`), reached through
//! `.git` files and `commondir` as git reaches them, and the global files.
//! The walk is bounded: directories are visited once (by device and inode),
//! symbolic links under `.git/modules` and `.git/worktrees` are not followed,
//! and a link that leads outside the path given is said out loud. It never
//! reads a value and never writes.

use std::collections::HashSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::ScrubError;
use crate::credential::Environment;

/// More directory entries than any real `.git/modules` holds.
const MAX_ENTRIES: usize = 200_000;

/// The config files of one repository, and what the user should know about
/// how they were reached.
#[derive(Debug, Default)]
pub struct Repository {
    pub configs: Vec<PathBuf>,
    /// Directories the user named, directly or through the repository's own
    /// links: files included from inside them may be edited.
    pub roots: Vec<PathBuf>,
    pub notes: Vec<String>,
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The `gitdir:` of a `.git` file (read at most 4 KiB; it is one line).
fn gitdir_of(file: &Path) -> Option<PathBuf> {
    let mut text = String::new();
    std::fs::File::open(file)
        .ok()?
        .take(4096)
        .read_to_string(&mut text)
        .ok()?;
    let target = text.trim().strip_prefix("gitdir:")?.trim();
    (!target.is_empty()).then(|| PathBuf::from(target))
}

pub fn repository(path: &Path) -> Result<Repository, ScrubError> {
    let shown = path.display().to_string();
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ScrubError::NoSuchPath { path: shown });
        }
        Err(e) => {
            return Err(ScrubError::Unreadable {
                path: shown,
                reason: e.kind().to_string(),
            });
        }
        Ok(meta) if !meta.is_dir() => return Err(ScrubError::NotARepository { path: shown }),
        Ok(_) => {}
    }
    let mut repo = Repository::default();
    let base = canonical(path);
    repo.roots.push(base.clone());
    let dot_git = path.join(".git");
    let git_dir = if dot_git.is_dir() {
        dot_git
    } else if dot_git.is_file() {
        let target = gitdir_of(&dot_git).ok_or_else(|| ScrubError::NotARepository {
            path: shown.clone(),
        })?;
        let git_dir = canonical(&path.join(target));
        if !git_dir.is_dir() {
            return Err(ScrubError::NotARepository { path: shown });
        }
        git_dir
    } else if path.join("config").is_file() && path.join("HEAD").is_file() {
        path.to_path_buf()
    } else {
        return Err(ScrubError::NotARepository { path: shown });
    };
    let git_dir = canonical(&git_dir);
    let common = match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(rel) => canonical(&git_dir.join(rel.trim())),
        Err(_) => git_dir.clone(),
    };
    for dir in [&git_dir, &common] {
        if !dir.starts_with(&base) && !repo.roots.contains(dir) {
            repo.notes.push(format!(
                "{shown}: its git directory is {}, outside the path given; its config is scrubbed too",
                dir.display()
            ));
        }
        if !repo.roots.contains(dir) {
            repo.roots.push(dir.clone());
        }
    }
    let mut configs = vec![common.join("config"), git_dir.join("config.worktree")];
    let mut visited = HashSet::new();
    let mut entries = 0usize;
    let mut stack = vec![common.join("modules"), common.join("worktrees")];
    while let Some(dir) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&dir) else {
            continue;
        };
        if !meta.is_dir() || !visited.insert(crate::sys::dir_identity(&dir, &meta)) {
            continue;
        }
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            entries += 1;
            if entries > MAX_ENTRIES {
                return Err(ScrubError::TooLarge {
                    path: common.display().to_string(),
                });
            }
            let p = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if kind.is_symlink() {
                if matches!(name, "config" | "config.worktree") {
                    configs.push(p);
                } else if p.is_dir() {
                    repo.notes.push(format!(
                        "{}: a symbolic link to {}; not followed (git does not make links here)",
                        p.display(),
                        canonical(&p).display()
                    ));
                }
            } else if kind.is_dir() {
                stack.push(p);
            } else if matches!(name, "config" | "config.worktree") {
                configs.push(p);
            }
        }
    }
    configs.retain(|p| p.is_file());
    configs.sort();
    configs.dedup();
    repo.configs = configs;
    Ok(repo)
}

/// The global config files and credentials files that exist, and the
/// directories they live in (the roots for includes).
pub struct Global {
    pub configs: Vec<PathBuf>,
    pub credentials: Vec<PathBuf>,
    pub roots: Vec<PathBuf>,
}

pub fn global(env: &dyn Environment) -> Global {
    let var = |n: &str| env.var_os(n).filter(|v| !v.is_empty()).map(PathBuf::from);
    let home = var("HOME").unwrap_or_default();
    let xdg = var("XDG_CONFIG_HOME").unwrap_or_else(|| home.join(".config"));
    let configs = vec![
        var("GIT_CONFIG_GLOBAL").unwrap_or_else(|| home.join(".gitconfig")),
        xdg.join("git/config"),
    ];
    let credentials = vec![home.join(".git-credentials"), xdg.join("git/credentials")];
    Global {
        configs: configs.into_iter().filter(|p| p.is_file()).collect(),
        credentials: credentials.into_iter().filter(|p| p.is_file()).collect(),
        roots: vec![canonical(&home), canonical(&xdg)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(unix)]
    fn a_symlink_loop_under_modules_ends_and_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let git = dir.path().join(".git");
        std::fs::create_dir_all(git.join("modules/a")).expect("mkdir");
        std::fs::write(git.join("config"), "").expect("write");
        std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n").expect("write");
        std::fs::write(git.join("modules/a/config"), "").expect("write");
        std::os::unix::fs::symlink(git.join("modules"), git.join("modules/a/loop"))
            .expect("symlink");
        let repo = repository(dir.path()).expect("repository");
        assert_eq!(repo.configs.len(), 2, "{:?}", repo.configs);
        assert!(
            repo.notes.iter().any(|n| n.contains("not followed")),
            "{:?}",
            repo.notes
        );
    }

    #[test]
    fn a_missing_path_is_not_called_a_repository_problem() {
        let err = repository(Path::new("/nonexistent/bbinject-test")).expect_err("missing");
        assert!(matches!(err, ScrubError::NoSuchPath { .. }), "{err}");
    }
}
