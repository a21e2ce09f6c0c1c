//! Fuzz target: the broker's wire format and the detached broker's hand-off,
//! as a hostile peer would send them. Decoding never panics; whatever decodes
//! re-encodes to something that decodes to the same fields.

#![no_main]

use bbinject::broker::detached::Handoff;
use bbinject::broker::protocol::{Answer, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = Request::decode(data) {
        let encoded = request.encode().expect("a decoded request encodes");
        let again = Request::decode(encoded.as_bytes()).expect("and decodes again");
        assert_eq!(again.host, request.host);
        assert_eq!(again.protocol, request.protocol);
        assert_eq!(again.path, request.path);
        assert_eq!(again.username, request.username);
        assert_eq!(again.want, request.want);
        assert!(
            again
                .capability
                .ct_eq(request.capability.expose().as_bytes())
        );
    }
    if let Ok(answer) = Answer::decode(data) {
        let encoded = answer.encode().expect("a decoded answer encodes");
        Answer::decode(encoded.as_bytes()).expect("and decodes again");
    }
    if let Ok(handoff) = Handoff::decode(data) {
        if let Ok(encoded) = handoff.encode() {
            let again = Handoff::decode(encoded.as_bytes()).expect("and decodes again");
            assert_eq!(again.entries.len(), handoff.entries.len());
            assert_eq!(again.max_uses, handoff.max_uses);
        }
    }
});
