//! A git server with repositories, a `bbinject exec` runner in an isolated
//! agent (its global git config has the classic `credential.helper=store`),
//! and the leak scan every exec scenario ends with.

use std::path::{Path, PathBuf};

use super::git_server::{GitServer, create_repo};
use super::{Bb, FAKE_ACCESS_TOKEN, Run, assert_no_leak};

pub const TOKEN_USER: &str = "x-token-auth";

/// A repository to create: its name and its files.
pub type RepoSpec<'a> = (&'a str, &'a [(&'a str, &'a [u8])]);

pub struct World {
    pub root: tempfile::TempDir,
    pub server: GitServer,
    pub bb: Bb,
}

impl World {
    pub fn new(repos: &[RepoSpec<'_>]) -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        for (name, files) in repos {
            create_repo(root.path(), name, files);
        }
        let server = GitServer::builder(root.path())
            .user(TOKEN_USER, FAKE_ACCESS_TOKEN)
            .start();
        let bb = Bb::new().env("BITBUCKET_ACCESS_TOKEN", FAKE_ACCESS_TOKEN);
        std::fs::write(
            bb.home().join(".gitconfig"),
            "[credential]\n\thelper = store\n[user]\n\tname = CI\n\temail = ci@example.invalid\n[init]\n\tdefaultBranch = main\n[protocol \"file\"]\n\tallow = always\n",
        )
        .expect("gitconfig");
        Self { root, server, bb }
    }

    /// `bbinject exec --no-preflight --git-url <server> [extra] -- sh -c script`
    /// in `dir`, with `envs`.
    pub fn exec(&self, extra: &[&str], dir: &Path, envs: &[(&str, &str)], script: &str) -> Run {
        let url = self.server.url();
        let mut command = self.bb.command();
        command
            .current_dir(dir)
            .args(["exec", "--no-preflight", "--git-url", &url])
            .args(extra)
            .args(["--", "sh", "-c", script])
            .stdin(std::process::Stdio::null());
        for (k, v) in envs {
            command.env(k, v);
        }
        Run::from(command.output().expect("run"))
    }

    pub fn dir(&self, name: &str) -> PathBuf {
        let dir = self.bb.path(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    /// No form of the secret in the output or in any file under the temp dir
    /// (which holds every cache the tools were given), and no `~/.git-credentials`.
    pub fn assert_clean(&self, run: &Run) {
        assert_no_leak(
            run,
            self.bb.dir.path(),
            FAKE_ACCESS_TOKEN,
            &[TOKEN_USER],
            &[],
        );
        assert!(!self.bb.home().join(".git-credentials").exists());
    }
}
