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

/// An entry of a repository allow-list: `workspace/slug` or `workspace/*`,
/// compared case-insensitively, as Bitbucket resolves names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoPattern {
    workspace: String,
    /// `None` for `workspace/*`.
    slug: Option<String>,
}

impl RepoPattern {
    /// `workspace/slug` (a trailing `.git` tolerated) or `workspace/*`.
    pub fn parse(text: &str) -> Result<Self, RepoRefError> {
        if let Some(workspace) = text.trim_matches('/').strip_suffix("/*") {
            if !is_name(workspace) {
                return Err(RepoRefError {
                    input: text.chars().take(200).collect(),
                });
            }
            return Ok(Self {
                workspace: workspace.to_ascii_lowercase(),
                slug: None,
            });
        }
        let repo = RepoRef::parse(text)?;
        Ok(Self {
            workspace: repo.workspace.to_ascii_lowercase(),
            slug: Some(repo.slug.to_ascii_lowercase()),
        })
    }

    /// Whether this entry covers `workspace/slug` (already normalised).
    pub fn matches(&self, workspace: &str, slug: &str) -> bool {
        self.workspace == workspace && self.slug.as_deref().is_none_or(|s| s == slug)
    }

    /// The repository this entry names exactly (not for `workspace/*`).
    pub fn exact(&self) -> Option<String> {
        self.slug
            .as_ref()
            .map(|s| format!("{}/{s}", self.workspace))
    }
}

impl std::fmt::Display for RepoPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}",
            self.workspace,
            self.slug.as_deref().unwrap_or("*")
        )
    }
}

/// Why a request path is refused rather than read: it would need normalising,
/// and whatever bbinject made of it, curl and the server could make another
/// repository of it (a query or fragment, a backslash, an escape, a dot or
/// empty segment, a byte outside printable ASCII).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the request path holds {0}; it is refused, never normalised into another repository")]
pub struct UnsafePath(pub &'static str);

/// The `(workspace, slug)` a request path names, read strictly: the path is
/// taken exactly as git sent it, and one that would need normalising (see
/// [`UnsafePath`]) is refused. `Ok(None)` when it names no repository (fewer
/// than two segments, or segments Bitbucket would not accept as names). The
/// result is lower case, without a trailing `.git`: the one value the broker
/// routes, checks and audits.
pub fn normalised_repository(path: &str) -> Result<Option<(String, String)>, UnsafePath> {
    if let Some(c) = path.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(UnsafePath(if c.is_control() {
            "a control character"
        } else if c == ' ' {
            "a space"
        } else {
            "a character outside ASCII"
        }));
    }
    for (c, what) in [
        ('?', "a query (`?`)"),
        ('#', "a fragment (`#`)"),
        ('\\', "a backslash"),
        ('%', "a percent-escape"),
    ] {
        if path.contains(c) {
            return Err(UnsafePath(what));
        }
    }
    let trimmed = path.trim_start_matches('/');
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let segments: Vec<&str> = trimmed.split('/').collect();
    if trimmed.is_empty() {
        return Ok(None);
    }
    for segment in &segments {
        match *segment {
            "" => return Err(UnsafePath("an empty segment (`//`)")),
            "." | ".." => return Err(UnsafePath("a dot segment (`.` or `..`)")),
            _ => {}
        }
    }
    let [workspace, slug, ..] = segments[..] else {
        return Ok(None);
    };
    let workspace = workspace.to_ascii_lowercase();
    let slug = slug.to_ascii_lowercase();
    let slug = slug.strip_suffix(".git").unwrap_or(&slug).to_owned();
    Ok((is_name(&workspace) && is_name(&slug)).then_some((workspace, slug)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_paths_are_read_exactly_or_refused() {
        let app = Ok(Some(("acme".to_owned(), "app".to_owned())));
        for (path, expected) in [
            ("acme/app.git", app.clone()),
            ("ACME/App.git", app.clone()),
            ("acme/app", app.clone()),
            ("acme/app.git/", app.clone()),
            ("/acme/app.git/info/refs", app.clone()),
            ("acme", Ok(None)),
            ("", Ok(None)),
            ("/", Ok(None)),
            ("acme/a~b", Ok(None)),
        ] {
            assert_eq!(normalised_repository(path), expected, "{path:?}");
        }
        // Each would name one repository to us and perhaps another to curl
        // or the server: refused, never resolved.
        for path in [
            "evil/x.git/info/refs?/../../../../acme/app.git",
            "evil/x.git#/../../acme/app.git",
            "partner/lib/../../acme/app.git",
            "acme/app.git/../../evil/x.git",
            "acme/lib/../app.git",
            "acme/./app.git",
            "/acme//app.git",
            "acme%2Fapp.git",
            "acme/%61pp.git",
            "acme\\app.git",
            "acme/a b",
            "acme/app\u{1b}[2K.git",
            "acme/app\n.git",
            "acme/äpp.git",
        ] {
            assert!(
                normalised_repository(path).is_err(),
                "{path:?} was read as {:?}",
                normalised_repository(path)
            );
        }
    }

    #[test]
    fn allow_list_patterns_match_a_repository_or_a_workspace() {
        let one = RepoPattern::parse("ACME/App.git").expect("pattern");
        let all = RepoPattern::parse("acme/*").expect("pattern");
        assert!(one.matches("acme", "app") && !one.matches("acme", "lib"));
        assert!(all.matches("acme", "lib") && !all.matches("other", "lib"));
        assert_eq!(
            (one.to_string(), all.to_string()),
            ("acme/app".into(), "acme/*".into())
        );
        assert_eq!(one.exact().as_deref(), Some("acme/app"));
        assert!(all.exact().is_none());
        for bad in ["acme", "*/app", "acme/app/x", "a b/*", ""] {
            assert!(RepoPattern::parse(bad).is_err(), "{bad}");
        }
    }

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
