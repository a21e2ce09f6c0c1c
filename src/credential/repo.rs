//! `workspace/slug` repository references, parsed once from user input, and
//! the one definition of the characters Bitbucket allows in them. It never
//! touches the network or a secret.

use std::fmt;

/// A Bitbucket repository: `workspace/slug`.
/// A workspace id or a repository slug as Bitbucket allows them: ASCII
/// letters, digits, `-`, `_` and `.`, at most 128 characters, not `.`/`..`.
/// The one definition used by `--repo`, config `match:` lists and scopes.
pub fn is_name(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 128
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && part != "."
        && part != ".."
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(into = "String")]
pub struct RepoRef {
    pub workspace: String,
    pub slug: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{input}` is not a repository of the form WORKSPACE/SLUG")]
pub struct RepoRefError {
    pub input: String,
}

impl RepoRef {
    /// Accepts `workspace/slug`, tolerating a trailing `.git` and surrounding
    /// slashes; rejects anything with a scheme, a host, spaces or more parts.
    pub fn parse(input: &str) -> Result<Self, RepoRefError> {
        let err = || RepoRefError {
            input: input.chars().take(200).collect(),
        };
        let trimmed = input.trim_matches('/');
        let trimmed = trimmed.strip_suffix(".git").unwrap_or(trimmed);
        let (workspace, slug) = trimmed.split_once('/').ok_or_else(err)?;
        if !is_name(workspace) || !is_name(slug) {
            return Err(err());
        }
        Ok(Self {
            workspace: workspace.to_owned(),
            slug: slug.to_owned(),
        })
    }

    /// Case-insensitive, as Bitbucket treats workspace ids and slugs.
    pub fn matches(&self, other: &RepoRef) -> bool {
        self.workspace.eq_ignore_ascii_case(&other.workspace)
            && self.slug.eq_ignore_ascii_case(&other.slug)
    }
}

impl fmt::Display for RepoRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.workspace, self.slug)
    }
}

impl From<RepoRef> for String {
    fn from(repo: RepoRef) -> String {
        repo.to_string()
    }
}

impl std::str::FromStr for RepoRef {
    type Err = RepoRefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_workspace_slash_slug_and_tolerates_dot_git() {
        for (input, ws, slug) in [
            ("acme/app", "acme", "app"),
            ("acme/app.git", "acme", "app"),
            ("/acme/my_app-2/", "acme", "my_app-2"),
            ("Acme/App.Web", "Acme", "App.Web"),
        ] {
            let repo = RepoRef::parse(input).expect(input);
            assert_eq!(
                (repo.workspace.as_str(), repo.slug.as_str()),
                (ws, slug),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_anything_else() {
        for input in [
            "",
            "acme",
            "acme/",
            "/app",
            "acme/app/extra",
            "https://bitbucket.org/acme/app",
            "acme/my app",
            "acme/..",
            "acme/app?x=1",
        ] {
            assert!(RepoRef::parse(input).is_err(), "{input:?} was accepted");
        }
    }

    #[test]
    fn matching_ignores_case() {
        let a = RepoRef::parse("Acme/App").expect("valid");
        let b = RepoRef::parse("acme/app").expect("valid");
        assert!(a.matches(&b));
    }
}
