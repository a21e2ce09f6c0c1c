//! Fuzz target: the path of a credential request, as git (or anything) sends
//! it to the broker. Never panics; a path it reads names a repository only
//! when it needed no normalising, and the repository is made of valid names.

#![no_main]

use bbinject::broker::policy::request_repository;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(Some(repo)) = request_repository(Some(path)) {
        assert!(!path.contains(['?', '#', '%', '\\']), "{path:?}");
        assert!(!path.split('/').any(|s| s == "." || s == ".."), "{path:?}");
        for part in [&repo.workspace, &repo.slug] {
            assert!(!part.is_empty() && part != "." && part != "..", "{path:?}");
            assert!(
                part.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b)),
                "{path:?}"
            );
        }
    }
});
