//! Fuzz target: `scrub`'s finders and editor on arbitrary text. Each line is
//! read as a config entry (`key=value`) and as a credentials-file line; the
//! findings are edited away. Never panics, and an edit never changes a line
//! it did not mean to: every line of the result is an input line, unchanged
//! or with exactly the replaced URL prefix rewritten, and every dropped line
//! is one a finding pointed at.

#![no_main]

use bbinject::scrub::detect::{self, ConfigKey, Edit, Hosts};
use bbinject::scrub::write::edited;
use libfuzzer_sys::fuzz_target;
use zeroize::Zeroizing;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let hosts = Hosts::new(&["example.com".to_owned()]);
    let mut entries = Vec::new();
    for line in text.lines() {
        let _ = ConfigKey::parse(line);
        let _ = detect::mask_userinfo(line);
        if let Some(c) = detect::url_credentials(line) {
            assert!(line.starts_with(&c.with));
            assert!(c.masked.contains(":****@"));
        }
        if let Some((key, value)) = line.split_once('=') {
            entries.push((key.to_owned(), Zeroizing::new(value.to_owned())));
        }
    }
    for found in detect::in_config(&entries, &hosts) {
        assert!(!found.location.is_empty());
    }

    // Credentials-file edits: only the lines found are dropped.
    let found = detect::in_credentials(text, &hosts);
    let edits: Vec<&Edit> = found.iter().map(|d| &d.edit).collect();
    let out = edited(text, &edits);
    let dropped: Vec<usize> = found
        .iter()
        .filter_map(|d| match d.edit {
            Edit::DropLine(n) => Some(n),
            _ => None,
        })
        .collect();
    let expected: String = text
        .split_inclusive('\n')
        .enumerate()
        .filter(|(n, _)| !dropped.contains(n))
        .map(|(_, l)| l)
        .collect();
    assert_eq!(out, expected);

    // URL edits: only text holding the replaced prefix changes.
    let urls: Vec<detect::UrlCredentials> =
        text.lines().filter_map(detect::url_credentials).collect();
    let replaces: Vec<Edit> = urls
        .iter()
        .map(|c| Edit::Replace {
            from: detect::SecretText(Zeroizing::new(c.with.clone())),
            to: c.without.clone(),
        })
        .collect();
    let refs: Vec<&Edit> = replaces.iter().collect();
    let out = edited(text, &refs);
    let before: Vec<&str> = text.split_inclusive('\n').collect();
    let after: Vec<&str> = out.split_inclusive('\n').collect();
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        if b != a {
            assert!(
                urls.iter()
                    .any(|c| !c.with.is_empty() && b.contains(&c.with))
            );
        }
    }
});
