//! Fuzz target: the streaming redactor against an independent oracle.
//!
//! Input layout: byte 0 = where to split the stream (k), byte 1 = how many
//! patterns, then pattern lengths and bytes, then the haystack. Bytes of
//! patterns and haystack are folded onto a small alphabet (plus 0xff) so that
//! overlaps, repeats and prefix relations are common.

#![no_main]

use bbinject::redact::{MASK, Patterns, Redactor};
use libfuzzer_sys::fuzz_target;
use zeroize::Zeroizing;

fn fold(b: u8) -> u8 {
    match b % 5 {
        0 => b'a',
        1 => b'b',
        2 => b'c',
        3 => b'x',
        _ => 0xff,
    }
}

/// Every occurrence of every pattern (overlapping search), their union, one
/// mask per covered run.
fn oracle(patterns: &[Vec<u8>], input: &[u8]) -> Vec<u8> {
    let ac = aho_corasick::AhoCorasick::new(patterns).expect("automaton");
    let mut covered = vec![false; input.len()];
    for m in ac.find_overlapping_iter(input) {
        covered[m.start()..m.end()]
            .iter_mut()
            .for_each(|c| *c = true);
    }
    let mut out = Vec::new();
    for (i, &byte) in input.iter().enumerate() {
        if !covered[i] {
            out.push(byte);
        } else if i == 0 || !covered[i - 1] {
            out.extend_from_slice(MASK);
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let split = usize::from(data[0]);
    let count = usize::from(data[1] % 4) + 1;
    let mut rest = &data[2..];
    let mut patterns = Vec::new();
    for _ in 0..count {
        let Some((&len, tail)) = rest.split_first() else {
            return;
        };
        let len = usize::from(len % 8) + 1;
        if tail.len() < len {
            return;
        }
        patterns.push(tail[..len].iter().map(|&b| fold(b)).collect::<Vec<u8>>());
        rest = &tail[len..];
    }
    let input: Vec<u8> = rest.iter().map(|&b| fold(b)).collect();
    let Some(compiled) =
        Patterns::new(patterns.iter().map(|p| Zeroizing::new(p.clone())).collect())
    else {
        return;
    };
    let expected = oracle(&patterns, &input);

    // Split at byte k.
    let k = split.min(input.len());
    let mut out = Vec::new();
    let mut redactor = Redactor::new(&compiled);
    redactor.feed(&input[..k], &mut out).expect("feed");
    assert!(
        redactor.held() < compiled.max_len(),
        "held {} of max {}",
        redactor.held(),
        compiled.max_len()
    );
    redactor.feed(&input[k..], &mut out).expect("feed");
    redactor.finish(&mut out).expect("finish");
    assert_eq!(out, expected, "split at {k}");

    // One byte at a time.
    let mut out = Vec::new();
    let mut redactor = Redactor::new(&compiled);
    for b in &input {
        redactor
            .feed(std::slice::from_ref(b), &mut out)
            .expect("feed");
        assert!(redactor.held() < compiled.max_len());
    }
    redactor.finish(&mut out).expect("finish");
    assert_eq!(out, expected, "byte by byte");
});
