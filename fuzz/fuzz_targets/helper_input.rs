//! Fuzz target: what git (or anything) writes to `bbinject credential get`.
//! Never panics; a query it accepts has a non-empty protocol and a lower-case host.

#![no_main]

use bbinject::broker::client::parse_helper_input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(query)) = parse_helper_input(data) {
        assert!(!query.protocol.is_empty());
        assert!(!query.host.is_empty());
        assert_eq!(query.host, query.host.to_ascii_lowercase());
        assert!(query.path.as_deref() != Some(""));
    }
});
