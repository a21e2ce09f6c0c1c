//! What a child's environment gets so that its git reaches the broker: the
//! credential-helper command, the `GIT_CONFIG_*` entries that register it
//! for each allowed origin, and the absolute path of this binary. It never
//! puts a secret in the environment: only paths, config keys and (set by the
//! caller) the capability.

use std::path::{Path, PathBuf};

use super::policy::Origin;

/// What else the child's git config gets.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChildOptions {
    /// Route `git@host:` and `ssh://git@host/` URLs of allowed hosts over HTTPS.
    pub rewrite_ssh: bool,
    /// A repository allow-list is in force: git follows no redirect on an
    /// allowed origin (`http.<origin>.followRedirects=false`). git asks the
    /// broker once, for the repository it names; curl would carry the
    /// `Authorization` header of an authenticated retry along a redirect to
    /// another repository on the same host, and git's default (`initial`)
    /// follows exactly that retry.
    pub no_redirects: bool,
}

/// The most `GIT_CONFIG_COUNT` entries we append after: git itself reads
/// them one variable each, so a count beyond this is a mistake or an attack
/// (a count near `usize::MAX` would wrap the index arithmetic).
pub const MAX_GIT_CONFIG_COUNT: usize = 10_000;

/// Variables set for the child unless the caller set them: Cargo's default
/// git backend (libgit2) ignores `GIT_CONFIG_*` and so never reaches our
/// helper; with this, Cargo runs the git CLI, which does.
pub fn defaults_for_child(
    env: &dyn crate::credential::Environment,
) -> Vec<(&'static str, &'static str)> {
    [("CARGO_NET_GIT_FETCH_WITH_CLI", "true")]
        .into_iter()
        .filter(|(name, _)| env.var_os(name).is_none())
        .collect()
}

/// `NO_PROXY` and `no_proxy` for the child, when a proxy variable is set and
/// an allowed origin is a loopback host (plain `http` is allowed only
/// there): its hosts are added, so git's curl never sends that origin's Basic
/// credentials through the proxy in clear text. Empty when nothing changes.
pub fn no_proxy_for_child(
    env: &dyn crate::credential::Environment,
    origins: &[Origin],
) -> Vec<(&'static str, String)> {
    let proxied = crate::bitbucket::PROXY_VARIABLES
        .iter()
        .any(|name| env.var_os(name).is_some_and(|v| !v.is_empty()));
    let loopback: Vec<String> = origins
        .iter()
        .map(|o| {
            o.hostname()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned()
        })
        .filter(|h| crate::bitbucket::is_loopback_host(h))
        .collect();
    if !proxied || loopback.is_empty() {
        return Vec::new();
    }
    ["NO_PROXY", "no_proxy"]
        .into_iter()
        .map(|name| {
            let existing = env
                .var_os(name)
                .map(|v| v.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut entries: Vec<String> = existing
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_owned)
                .collect();
            for host in &loopback {
                if !entries.iter().any(|e| e.eq_ignore_ascii_case(host)) {
                    entries.push(host.clone());
                }
            }
            (name, entries.join(","))
        })
        .collect()
}

/// `GIT_CONFIG_COUNT` in the caller's environment is not a number we accept.
#[derive(Debug, thiserror::Error)]
#[error("GIT_CONFIG_COUNT is `{0}`, not a number from 0 to {MAX_GIT_CONFIG_COUNT}")]
pub struct GitConfigCountError(pub String);

/// This binary, by absolute canonical path: what git runs as helper and askpass.
/// (On Windows, as Windows gives it: canonical paths there are `\\?\C:\…`,
/// which neither Git for Windows' shell nor every tool understands.)
pub fn current_exe() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    if cfg!(windows) {
        Ok(exe)
    } else {
        exe.canonicalize()
    }
}

/// `!exec '<path>' credential`: git runs a helper through the shell (it
/// appends the action), so the absolute path is single-quoted, and `exec`
/// spares the shell a fork per credential request.
pub fn helper_command(exe: &Path) -> String {
    helper_command_for(&exe.to_string_lossy(), cfg!(windows))
}

/// [`helper_command`] for a path of either platform. Git for Windows runs
/// helpers with its own POSIX sh, which takes `C:/Program Files/…` as
/// Windows itself does: backslashes become slashes, so no shell, quoting
/// rule or MSYS path conversion can read one as an escape.
fn helper_command_for(exe: &str, windows: bool) -> String {
    let path = if windows {
        exe.replace('\\', "/")
    } else {
        exe.to_owned()
    };
    let quoted = path.replace('\'', r"'\''");
    format!("!exec '{quoted}' credential")
}

/// The `GIT_CONFIG_COUNT`/`KEY_n`/`VALUE_n` variables that register our helper
/// for each allowed origin (after a scoped clear of other helpers), send the
/// repository path to it, and make git refuse passwords in URLs. Appended
/// after whatever the caller already set.
pub fn git_config_entries(
    existing_count: Option<&std::ffi::OsStr>,
    origins: &[Origin],
    helper: &str,
    options: ChildOptions,
) -> Result<Vec<(String, String)>, GitConfigCountError> {
    let start: usize = match existing_count {
        None => 0,
        // git reads an empty GIT_CONFIG_COUNT as 0.
        Some(raw) if raw.to_str().is_some_and(|s| s.trim().is_empty()) => 0,
        Some(raw) => raw
            .to_str()
            .and_then(|s| s.trim().parse().ok())
            .filter(|n| *n <= MAX_GIT_CONFIG_COUNT)
            .ok_or_else(|| GitConfigCountError(raw.to_string_lossy().chars().take(40).collect()))?,
    };
    let mut entries: Vec<(String, String)> = Vec::new();
    for origin in origins {
        let scope = format!("credential.{}", origin.url());
        entries.push((format!("{scope}.helper"), String::new()));
        entries.push((format!("{scope}.helper"), helper.to_owned()));
        entries.push((format!("{scope}.useHttpPath"), "true".into()));
        // git-lfs sends credentials only after a 401; Bitbucket answers an
        // anonymous LFS batch with 403, so ask for them on the first request.
        entries.push((format!("lfs.{}/.access", origin.url()), "basic".into()));
        if options.no_redirects {
            entries.push((
                format!("http.{}/.followRedirects", origin.url()),
                "false".into(),
            ));
        }
        if options.rewrite_ssh {
            // SSH-style submodule URLs go to the same host over HTTPS, through
            // the broker; insteadOf applies to pushes too.
            let base = format!("url.{}/.insteadOf", origin.url());
            let host = origin.hostname();
            entries.push((base.clone(), format!("git@{host}:")));
            entries.push((base, format!("ssh://git@{host}/")));
        }
    }
    entries.push(("transfer.credentialsInUrl".into(), "die".into()));
    let mut vars = Vec::with_capacity(entries.len() * 2 + 1);
    for (offset, (key, value)) in entries.iter().enumerate() {
        vars.push((format!("GIT_CONFIG_KEY_{}", start + offset), key.clone()));
        vars.push((
            format!("GIT_CONFIG_VALUE_{}", start + offset),
            value.clone(),
        ));
    }
    vars.push((
        "GIT_CONFIG_COUNT".into(),
        (start + entries.len()).to_string(),
    ));
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitbucket::Endpoint;

    fn origins(urls: &[&str]) -> Vec<Origin> {
        urls.iter()
            .map(|u| Origin::from_endpoint(&Endpoint::parse("--git-url", u).expect("url")))
            .collect()
    }
    #[test]
    fn git_config_is_appended_after_the_callers_entries() {
        let vars = git_config_entries(
            Some(std::ffi::OsStr::new("2")),
            &origins(&["https://bitbucket.org"]),
            "!'/usr/bin/bbinject' credential",
            ChildOptions::default(),
        )
        .expect("entries");
        let get = |k: &str| {
            vars.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            get("GIT_CONFIG_KEY_0"),
            None,
            "must not overwrite the caller's entries"
        );
        assert_eq!(
            get("GIT_CONFIG_KEY_2"),
            Some("credential.https://bitbucket.org.helper")
        );
        assert_eq!(get("GIT_CONFIG_VALUE_2"), Some(""));
        assert_eq!(
            get("GIT_CONFIG_VALUE_3"),
            Some("!'/usr/bin/bbinject' credential")
        );
        assert_eq!(
            get("GIT_CONFIG_KEY_4"),
            Some("credential.https://bitbucket.org.useHttpPath")
        );
        assert_eq!(
            get("GIT_CONFIG_KEY_5"),
            Some("lfs.https://bitbucket.org/.access")
        );
        assert_eq!(get("GIT_CONFIG_VALUE_5"), Some("basic"));
        assert_eq!(get("GIT_CONFIG_KEY_6"), Some("transfer.credentialsInUrl"));
        assert_eq!(get("GIT_CONFIG_COUNT"), Some("7"));
    }

    #[test]
    fn ssh_urls_of_allowed_hosts_are_rewritten_only_when_asked() {
        let vars = git_config_entries(
            None,
            &origins(&["https://bitbucket.org", "http://127.0.0.1:8080"]),
            "x",
            ChildOptions {
                rewrite_ssh: true,
                no_redirects: false,
            },
        )
        .expect("entries");
        let pairs: Vec<(String, String)> = vars
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0].1.clone(), c[1].1.clone()))
            .collect();
        for (key, value) in [
            ("url.https://bitbucket.org/.insteadOf", "git@bitbucket.org:"),
            (
                "url.https://bitbucket.org/.insteadOf",
                "ssh://git@bitbucket.org/",
            ),
            ("url.http://127.0.0.1:8080/.insteadOf", "git@127.0.0.1:"),
            (
                "url.http://127.0.0.1:8080/.insteadOf",
                "ssh://git@127.0.0.1/",
            ),
        ] {
            assert!(
                pairs.contains(&(key.to_owned(), value.to_owned())),
                "{key} = {value} missing from {pairs:?}"
            );
        }
        let plain = git_config_entries(
            None,
            &origins(&["https://bitbucket.org"]),
            "x",
            ChildOptions::default(),
        )
        .expect("entries");
        assert!(!plain.iter().any(|(_, v)| v.contains("insteadOf")));
    }

    #[test]
    fn loopback_origins_are_kept_out_of_the_childs_proxy() {
        let env =
            |pairs: &[(&str, &str)]| -> std::collections::HashMap<String, std::ffi::OsString> {
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).into()))
                    .collect()
            };
        let local = origins(&["http://127.0.0.1:8080", "https://bitbucket.org"]);
        assert!(
            no_proxy_for_child(&env(&[]), &local).is_empty(),
            "no proxy set"
        );
        assert!(
            no_proxy_for_child(
                &env(&[("http_proxy", "http://proxy:3128")]),
                &origins(&["https://bitbucket.org"])
            )
            .is_empty(),
            "no loopback origin"
        );
        let set = no_proxy_for_child(
            &env(&[
                ("http_proxy", "http://proxy:3128"),
                ("NO_PROXY", "corp.example, .internal"),
            ]),
            &local,
        );
        assert_eq!(
            set,
            [
                ("NO_PROXY", "corp.example,.internal,127.0.0.1".to_owned()),
                ("no_proxy", "127.0.0.1".to_owned())
            ]
        );
    }

    #[test]
    fn cargo_uses_the_git_cli_unless_the_caller_said_otherwise() {
        let unset: std::collections::HashMap<String, std::ffi::OsString> = Default::default();
        assert_eq!(
            defaults_for_child(&unset),
            [("CARGO_NET_GIT_FETCH_WITH_CLI", "true")]
        );
        let set: std::collections::HashMap<String, std::ffi::OsString> =
            [("CARGO_NET_GIT_FETCH_WITH_CLI".to_owned(), "false".into())]
                .into_iter()
                .collect();
        assert!(defaults_for_child(&set).is_empty());
    }

    #[test]
    fn a_broken_or_huge_git_config_count_is_an_error() {
        // The last two wrapped the index arithmetic in a release build: the
        // reset of the agent's helpers was lost.
        for count in [
            "two",
            "-1",
            "10001",
            "18446744073709551614",
            "18446744073709551615",
        ] {
            let err = git_config_entries(
                Some(std::ffi::OsStr::new(count)),
                &origins(&["https://bitbucket.org"]),
                "x",
                ChildOptions::default(),
            )
            .expect_err(count);
            assert!(err.to_string().contains("GIT_CONFIG_COUNT"), "{err}");
        }
        let empty = git_config_entries(
            Some(std::ffi::OsStr::new("")),
            &origins(&["https://bitbucket.org"]),
            "x",
            ChildOptions::default(),
        )
        .expect("git reads an empty count as 0");
        assert!(empty.iter().any(|(k, _)| k == "GIT_CONFIG_KEY_0"));
        let at_bound = git_config_entries(
            Some(std::ffi::OsStr::new("10000")),
            &origins(&["https://bitbucket.org"]),
            "x",
            ChildOptions::default(),
        )
        .expect("the bound itself");
        assert!(
            at_bound
                .iter()
                .any(|(k, v)| k == "GIT_CONFIG_KEY_10000" && v.ends_with(".helper"))
        );
    }

    #[test]
    fn an_allow_list_turns_redirects_off_for_each_allowed_origin() {
        let get = |no_redirects| {
            git_config_entries(
                None,
                &origins(&["https://bitbucket.org", "http://127.0.0.1:8080"]),
                "x",
                ChildOptions {
                    rewrite_ssh: false,
                    no_redirects,
                },
            )
            .expect("entries")
        };
        let on = get(true);
        for origin in ["https://bitbucket.org", "http://127.0.0.1:8080"] {
            let key = format!("http.{origin}/.followRedirects");
            let index = on
                .iter()
                .find(|(_, v)| *v == key)
                .map(|(k, _)| k.trim_start_matches("GIT_CONFIG_KEY_").to_owned())
                .expect("key");
            assert!(on.contains(&(format!("GIT_CONFIG_VALUE_{index}"), "false".into())));
        }
        assert!(
            !get(false)
                .iter()
                .any(|(_, v)| v.contains("followRedirects"))
        );
    }

    #[test]
    fn helper_paths_are_quoted_for_the_shell() {
        assert_eq!(
            helper_command(Path::new("/opt/bb inject/bbinject")),
            "!exec '/opt/bb inject/bbinject' credential"
        );
        assert_eq!(
            helper_command(Path::new("/tmp/it's/bbinject")),
            r"!exec '/tmp/it'\''s/bbinject' credential"
        );
        assert_eq!(
            helper_command_for(r"C:\Program Files\bbinject\bbinject.exe", true),
            "!exec 'C:/Program Files/bbinject/bbinject.exe' credential"
        );
        assert_eq!(
            helper_command_for(r"D:\agent's work\bbinject.exe", true),
            r"!exec 'D:/agent'\''s work/bbinject.exe' credential"
        );
    }
}
