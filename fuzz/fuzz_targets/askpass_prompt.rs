//! Fuzz target: the prompt git (or any program) passes to the askpass shim.
//! Never panics; an accepted prompt names http(s), a host the helper's parser
//! accepts too, and a user name and path without a character that could move
//! the host or the repository.

#![no_main]

use bbinject::broker::client::parse_prompt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(prompt) = parse_prompt(text) {
        assert!(prompt.protocol == "http" || prompt.protocol == "https");
        assert_eq!(
            bbinject::broker::policy::parse_host(&prompt.protocol, &prompt.host).as_deref(),
            Some(prompt.host.as_str())
        );
        for part in [prompt.username.as_deref(), prompt.path.as_deref()]
            .into_iter()
            .flatten()
        {
            assert!(!part.contains(['@', '\\', '?', '#', '%', ':', ' ']), "{part:?}");
        }
        // The same prompt, sent to the helper as git's fields, gives the same host.
        let input = format!("protocol={}\nhost={}\n\n", prompt.protocol, prompt.host);
        let query = bbinject::broker::client::parse_helper_input(input.as_bytes())
            .expect("helper accepts the host")
            .expect("query");
        assert_eq!(query.host, prompt.host);
    }
});
