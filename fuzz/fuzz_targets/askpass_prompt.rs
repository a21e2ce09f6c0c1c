//! Fuzz target: the prompt git (or any program) passes to the askpass shim.
//! Never panics; an accepted prompt names a protocol and a host.

#![no_main]

use bbinject::broker::client::parse_prompt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(prompt) = parse_prompt(text) {
        assert!(!prompt.protocol.is_empty());
        assert!(!prompt.host.is_empty());
    }
});
