//! Streaming redaction of secrets in a child's output (ARCHITECTURE.md §5).
//!
//! [`Patterns`] holds every printable form of every secret in play (raw,
//! percent-encoded, JSON-escaped, base64 of the secret and of `user:secret` at
//! each of the three byte alignments inside longer base64) in a
//! leftmost-longest aho-corasick automaton. A [`Redactor`] feeds a byte stream
//! through it and replaces every run of bytes covered by any occurrence of any
//! pattern with one `****`: of two overlapping secrets nothing of either
//! survives. (Restarting each search one byte after the last match's start
//! finds the longest match at every start position; their union covers every
//! occurrence.) It is binary-safe, correct
//! however the stream is split, and holds back only the bytes at the end of
//! what it has seen that could still be the start of a pattern (so at most
//! the longest pattern − 1 bytes). Those are released as soon as later bytes
//! rule the pattern out, or at the end of the stream, never on a timer: a
//! secret written slowly, in pieces, is still masked.
//!
//! [`printable`] escapes control characters in text from outside (a request
//! path, a URL) before it is printed, so it cannot rewrite the log.
//!
//! aho-corasick's own stream replacer is not used: it supports only standard
//! match semantics, leaks the tail of overlapping secrets, and holds output
//! back. This module must never print, log or keep a pattern beyond its own
//! (zeroized) buffers.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use aho_corasick::{AhoCorasick, Input, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

use crate::credential::CredentialSet;
use crate::secret::Secret;

/// What a secret is replaced with.
pub const MASK: &[u8] = b"****";
/// Secrets shorter than this are not masked: masking them would garble the log.
pub const MIN_SECRET_LEN: usize = 6;
/// The column widths at which common tools wrap base64 (coreutils `base64`,
/// and `openssl base64` / PEM).
const WRAP_WIDTHS: [usize; 2] = [76, 64];
/// Derived base64 fragments shorter than this are not masked (too likely by chance).
const MIN_FRAGMENT_LEN: usize = 8;

/// How many leading bytes of each pattern the automaton holds. Matching is
/// two-stage: the automaton over these prefixes proposes where a pattern may
/// start, and the sorted full patterns decide which (the longest) matches
/// there. With thousands of credentials the automaton is a fraction of one
/// over whole patterns (each secret has ~10 forms of up to ~200 bytes), which
/// is what made building it slow and large.
const PREFIX_LEN: usize = 16;

/// The set of byte strings to mask.
pub struct Patterns {
    /// Over each pattern's first [`PREFIX_LEN`] bytes (deduplicated).
    prefixes: AhoCorasick,
    /// The patterns, sorted and deduplicated, to find possible pattern starts.
    sorted: Vec<Zeroizing<Vec<u8>>>,
    /// `first_bytes[b]`: some pattern starts with byte `b`.
    first_bytes: [bool; 256],
    max_len: usize,
}

impl std::fmt::Debug for Patterns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Patterns")
            .field("count", &self.sorted.len())
            .field("max_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

impl Patterns {
    /// `None` when there is nothing to mask.
    pub fn new(patterns: Vec<Zeroizing<Vec<u8>>>) -> Option<Self> {
        let mut sorted: Vec<Zeroizing<Vec<u8>>> =
            patterns.into_iter().filter(|p| !p.is_empty()).collect();
        sorted.sort_by(|a, b| a.as_slice().cmp(b.as_slice()));
        sorted.dedup_by(|a, b| a.as_slice() == b.as_slice());
        if sorted.is_empty() {
            return None;
        }
        let mut heads: Vec<&[u8]> = sorted
            .iter()
            .map(|p| &p[..p.len().min(PREFIX_LEN)])
            .collect();
        // Sorted patterns give sorted heads, so equal heads are adjacent.
        heads.dedup();
        let prefixes = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(heads)
            .ok()?;
        let mut first_bytes = [false; 256];
        for p in &sorted {
            first_bytes[usize::from(p[0])] = true;
        }
        let max_len = sorted.iter().map(|p| p.len()).max().unwrap_or(0);
        Some(Self {
            prefixes,
            sorted,
            first_bytes,
            max_len,
        })
    }

    /// The patterns for `secrets`, each with the usernames it may be sent with.
    /// Secrets shorter than [`MIN_SECRET_LEN`] are skipped; their sources are
    /// returned so the caller can warn.
    pub fn for_secrets<'a>(
        secrets: impl IntoIterator<Item = (&'a Secret, Vec<&'a str>, String)>,
    ) -> (Option<Self>, Vec<String>) {
        let mut patterns = Vec::new();
        let mut too_short = Vec::new();
        for (secret, usernames, source) in secrets {
            if secret.len() < MIN_SECRET_LEN {
                too_short.push(source);
                continue;
            }
            patterns.extend(forms(secret.expose().as_bytes(), &usernames));
        }
        (Self::new(patterns), too_short)
    }

    /// The redaction patterns for every secret of the run: each credential's
    /// secret, the bearer tokens OAuth consumers were exchanged for, and proxy
    /// passwords. Also the sources of secrets too short to mask.
    pub fn for_run(
        set: &CredentialSet,
        bearers: &[Option<&Secret>],
        proxies: &[(Secret, String, String)],
    ) -> (Option<Arc<Patterns>>, Vec<String>) {
        let mut secrets: Vec<(&Secret, Vec<&str>, String)> = Vec::new();
        for credential in set.credentials() {
            secrets.push((
                credential.secret(),
                credential.usernames(),
                credential.source.to_string(),
            ));
        }
        for (bearer, credential) in bearers.iter().zip(set.credentials()) {
            if let Some(bearer) = bearer {
                let source = format!("the OAuth token of {}", credential.source);
                secrets.push((bearer, credential.usernames(), source));
            }
        }
        for (password, user, source) in proxies {
            secrets.push((password, vec![user.as_str()], source.clone()));
        }
        let (patterns, too_short) = Patterns::for_secrets(secrets);
        (patterns.map(Arc::new), too_short)
    }

    /// These patterns and `more`: the set after a secret was renewed (the old
    /// value stays masked too).
    pub fn extended(&self, more: Vec<Zeroizing<Vec<u8>>>) -> Option<Self> {
        let mut all = self.sorted.clone();
        all.extend(more);
        Self::new(all)
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// Masks every match in `input` at once (for our own messages).
    pub fn redact_all(&self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len());
        let mut redactor = Redactor::new(self);
        // Writing to a Vec cannot fail.
        let _ = redactor.feed(input, &mut out);
        let _ = redactor.finish(&mut out);
        out
    }

    /// The leftmost match starting at or after `from` (and before `before`),
    /// the longest one there: `(start, end)`.
    fn find(&self, buf: &[u8], from: usize, before: usize) -> Option<(usize, usize)> {
        let mut at = from;
        while at < before {
            let head = self.prefixes.find(Input::new(buf).range(at..))?;
            if head.start() >= before {
                return None;
            }
            if let Some(len) = self.longest_at(&buf[head.start()..]) {
                return Some((head.start(), head.start() + len));
            }
            at = head.start() + 1;
        }
        None
    }

    /// The length of the longest pattern `rest` starts with. In the sorted
    /// list, the greatest pattern not after `key` is either a prefix of it or
    /// shares a common prefix with it that is the next key to try.
    fn longest_at(&self, rest: &[u8]) -> Option<usize> {
        let mut key = &rest[..rest.len().min(self.max_len)];
        loop {
            let i = self.sorted.partition_point(|p| p.as_slice() <= key);
            let candidate = self.sorted.get(i.checked_sub(1)?)?;
            if key.starts_with(candidate) {
                return Some(candidate.len());
            }
            let common = key
                .iter()
                .zip(candidate.iter())
                .take_while(|(a, b)| a == b)
                .count();
            key = &key[..common];
        }
    }

    /// Whether `tail` is a proper prefix of some pattern, i.e. more bytes could
    /// still turn it into a match.
    fn could_start(&self, tail: &[u8]) -> bool {
        let i = self.sorted.partition_point(|p| p.as_slice() < tail);
        self.sorted[i..]
            .iter()
            .take_while(|p| p.starts_with(tail))
            .any(|p| p.len() > tail.len())
    }

    /// The first position `>= from` where the rest of `buf` could still become
    /// a match, or `buf.len()` if none can.
    fn hold_point(&self, buf: &[u8], from: usize) -> usize {
        let window = buf
            .len()
            .saturating_sub(self.max_len.saturating_sub(1))
            .max(from);
        (window..buf.len())
            .find(|&p| self.first_bytes[usize::from(buf[p])] && self.could_start(&buf[p..]))
            .unwrap_or(buf.len())
    }
}

/// A stream's redaction state between two sets of patterns.
pub struct Carry {
    held: Zeroizing<Vec<u8>>,
    covered: usize,
    in_mask: bool,
}

/// Redacts one stream. Keep one per stream (stdout and stderr each get their own).
pub struct Redactor<'p> {
    patterns: &'p Patterns,
    /// Bytes not yet written: they could still begin a pattern.
    held: Zeroizing<Vec<u8>>,
    /// Scratch space: `held` followed by the new chunk.
    scratch: Zeroizing<Vec<u8>>,
    /// How many bytes at the start of `held` a mask already written covers.
    covered: usize,
    /// The output so far ends with a mask that reaches the start of `held`,
    /// so a match starting there continues it.
    in_mask: bool,
}

impl<'p> Redactor<'p> {
    pub fn new(patterns: &'p Patterns) -> Self {
        Self {
            patterns,
            held: Zeroizing::new(Vec::new()),
            scratch: Zeroizing::new(Vec::new()),
            covered: 0,
            in_mask: false,
        }
    }

    /// Ends this redactor, keeping its state (bytes held back, a mask in
    /// progress) for [`Redactor::resume`] with other patterns.
    pub fn into_carry(self) -> Carry {
        Carry {
            held: self.held,
            covered: self.covered,
            in_mask: self.in_mask,
        }
    }

    /// Continues a stream with `patterns` (a superset of the old ones: a
    /// secret was renewed) where [`Redactor::into_carry`] left it. Held bytes
    /// are scanned again with the new patterns on the next feed.
    pub fn resume(patterns: &'p Patterns, carry: Carry) -> Self {
        Self {
            patterns,
            held: carry.held,
            scratch: Zeroizing::new(Vec::new()),
            covered: carry.covered,
            in_mask: carry.in_mask,
        }
    }

    /// How many bytes are held back now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Writes what can be decided of `held + chunk` to `out`, and flushes it.
    pub fn feed(&mut self, chunk: &[u8], out: &mut impl Write) -> std::io::Result<()> {
        if self.held.is_empty() {
            // The common case: nothing held, so no copy.
            let hold = self.patterns.hold_point(chunk, 0);
            self.emit(chunk, hold, out)?;
            self.held.extend_from_slice(&chunk[hold..]);
            return out.flush();
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.held);
        self.scratch.extend_from_slice(chunk);
        self.held.clear();
        let hold = self.patterns.hold_point(&self.scratch, 0);
        let scratch = std::mem::take(&mut self.scratch);
        let result = self.emit(&scratch, hold, out);
        self.held.extend_from_slice(&scratch[hold..]);
        self.scratch = scratch;
        result?;
        out.flush()
    }

    /// End of stream: releases whatever was held (masking complete matches).
    pub fn finish(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        let held = Zeroizing::new(std::mem::take(&mut *self.held));
        self.emit(&held, held.len(), out)?;
        self.covered = 0;
        self.in_mask = false;
        out.flush()
    }

    /// Writes `buf[..hold]`, masking every byte covered by a match that starts
    /// before `hold` (and the bytes a previous mask already covers). A match
    /// starting before `hold` is final: no pattern starting there can still grow,
    /// or `hold` would be at or before it.
    fn emit(&mut self, buf: &[u8], hold: usize, out: &mut impl Write) -> std::io::Result<()> {
        let mut pos = 0;
        let mut ends_in_mask = self.in_mask;
        // The covered region being built: [start, end).
        let mut region: Option<(usize, usize)> =
            (self.covered > 0).then_some((0, self.covered.min(buf.len())));
        let mut search_from = 0;
        loop {
            let next = self.patterns.find(buf, search_from, hold);
            match (region, next) {
                // Overlapping or touching: the region grows.
                (Some((start, end)), Some((m_start, m_end))) if m_start <= end => {
                    region = Some((start, end.max(m_end)));
                    search_from = m_start + 1;
                }
                (Some((start, end)), _) => {
                    if start > pos {
                        out.write_all(&buf[pos..start])?;
                        ends_in_mask = false;
                    }
                    if !(ends_in_mask && start == pos) {
                        out.write_all(MASK)?;
                    }
                    ends_in_mask = true;
                    pos = end;
                    region = None;
                    if next.is_none() {
                        break;
                    }
                }
                (None, Some((m_start, m_end))) => {
                    region = Some((m_start, m_end));
                    search_from = m_start + 1;
                }
                (None, None) => break,
            }
        }
        if pos < hold {
            out.write_all(&buf[pos..hold])?;
            ends_in_mask = false;
        }
        self.covered = pos.saturating_sub(hold);
        self.in_mask = ends_in_mask && pos >= hold;
        Ok(())
    }
}

/// The printable forms of `secret` (see the module docs), for the usernames it
/// may be paired with in a `user:secret` Basic header.
pub fn forms(secret: &[u8], usernames: &[&str]) -> Vec<Zeroizing<Vec<u8>>> {
    const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let mut out: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    let mut add = |form: Vec<u8>, min: usize| {
        if form.len() >= min {
            out.push(Zeroizing::new(form));
        }
    };
    add(secret.to_vec(), 1);
    let percent = percent_encoding::percent_encode(secret, UNRESERVED).to_string();
    add(lowercase_escapes(&percent).into_bytes(), 1);
    add(percent.into_bytes(), 1);
    add(
        url::form_urlencoded::byte_serialize(secret)
            .collect::<String>()
            .into_bytes(),
        1,
    );
    if let Ok(text) = std::str::from_utf8(secret)
        && let Ok(json) = serde_json::to_string(text)
    {
        let inner = json[1..json.len() - 1].to_owned();
        add(inner.replace('/', "\\/").into_bytes(), 1);
        add(inner.into_bytes(), 1);
    }
    add(STANDARD.encode(secret).into_bytes(), MIN_FRAGMENT_LEN);
    add(
        URL_SAFE_NO_PAD.encode(secret).into_bytes(),
        MIN_FRAGMENT_LEN,
    );
    let mut plain: Vec<Zeroizing<Vec<u8>>> = vec![Zeroizing::new(secret.to_vec())];
    for user in usernames {
        let mut pair = Zeroizing::new(Vec::with_capacity(user.len() + 1 + secret.len()));
        pair.extend_from_slice(user.as_bytes());
        pair.push(b':');
        pair.extend_from_slice(secret);
        add(
            STANDARD.encode(pair.as_slice()).into_bytes(),
            MIN_FRAGMENT_LEN,
        );
        plain.push(pair);
    }
    // Line-wrapped base64 of the value on its own (`base64 FILE` wraps at 76
    // columns, `openssl base64` at 64; a 192-character token always wraps),
    // with Unix or Windows line ends: the whole groups of each, from the
    // first line's start.
    for data in &plain {
        let whole = data.len() / 3 * 3;
        let core = STANDARD.encode(&data[..whole]);
        for width in WRAP_WIDTHS {
            if core.len() <= width {
                continue;
            }
            for end in ["\n", "\r\n"] {
                let mut wrapped = Vec::with_capacity(core.len() + core.len() / width * 2);
                for (i, line) in core.as_bytes().chunks(width).enumerate() {
                    if i > 0 {
                        wrapped.extend_from_slice(end.as_bytes());
                    }
                    wrapped.extend_from_slice(line);
                }
                add(wrapped, MIN_FRAGMENT_LEN);
            }
        }
    }
    // Inside longer base64 text, the data may start at any of three byte
    // offsets; for each, the 4-character groups made only of its own bytes are
    // always the same.
    for data in &plain {
        for skip in 0..3 {
            if data.len() <= skip {
                continue;
            }
            let whole = (data.len() - skip) / 3 * 3;
            let core = STANDARD.encode(&data[skip..skip + whole]);
            add(core.into_bytes(), MIN_FRAGMENT_LEN);
        }
    }
    out
}

/// `%2F` → `%2f`, leaving everything else as it is.
fn lowercase_escapes(percent: &str) -> String {
    let mut out = String::with_capacity(percent.len());
    let mut hex_left = 0;
    for c in percent.chars() {
        if hex_left > 0 {
            out.push(c.to_ascii_lowercase());
            hex_left -= 1;
        } else {
            out.push(c);
            if c == '%' {
                hex_left = 2;
            }
        }
    }
    out
}

/// `text` with every control character written as an escape (`\u{1b}`), for
/// printing a field that came from outside (a request path, a host): an
/// escape sequence in it could otherwise rewrite earlier lines of a build log.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// `text` with every form of each secret masked, for text that came from
/// outside (a server's error message) before it reaches a report. Unlike the
/// output redactor, short secrets are masked too: this text is small and ours.
pub fn mask_secrets(text: &str, secrets: &[(&Secret, &[&str])]) -> String {
    let patterns: Vec<Zeroizing<Vec<u8>>> = secrets
        .iter()
        .flat_map(|(secret, usernames)| forms(secret.expose().as_bytes(), usernames))
        .collect();
    match Patterns::new(patterns) {
        Some(p) => String::from_utf8_lossy(&p.redact_all(text.as_bytes())).into_owned(),
        None => text.to_owned(),
    }
}

static GLOBAL: RwLock<Option<Arc<Patterns>>> = RwLock::new(None);
/// Bumped each time the global patterns change, so the child's output pumps
/// notice a renewed secret without taking the lock for every chunk.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Makes `patterns` the ones our own logs and error messages are redacted
/// with (replacing earlier ones, as more secrets become known).
pub fn set_global(patterns: Option<Arc<Patterns>>) {
    if let Ok(mut global) = GLOBAL.write() {
        *global = patterns;
        GENERATION.fetch_add(1, Ordering::SeqCst);
    }
}

/// The global patterns now, with their generation.
pub fn global() -> (u64, Option<Arc<Patterns>>) {
    let global = GLOBAL.read().ok().and_then(|g| g.clone());
    (GENERATION.load(Ordering::SeqCst), global)
}

/// The generation of the global patterns (see [`global`]).
pub fn generation() -> u64 {
    GENERATION.load(Ordering::SeqCst)
}

/// Adds every printable form of a renewed `secret` (a re-minted OAuth token,
/// a rotated secret file's value) to the global patterns. The broker calls
/// this *before* handing the secret to anyone, so the child's output pumps
/// (which check the generation after every read) mask it from its first use.
/// `false` if it is too short to mask.
pub fn add_secret(secret: &Secret, usernames: &[&str]) -> bool {
    if secret.len() < MIN_SECRET_LEN {
        return false;
    }
    let more = forms(secret.expose().as_bytes(), usernames);
    if let Ok(mut global) = GLOBAL.write() {
        let next = match global.as_ref() {
            Some(current) => current.extended(more),
            None => Patterns::new(more),
        };
        if let Some(next) = next {
            *global = Some(Arc::new(next));
            GENERATION.fetch_add(1, Ordering::SeqCst);
        }
    }
    true
}

/// Our own output, redacted with the global patterns (if any were set).
pub fn redact_own(text: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let patterns = GLOBAL.read().ok().and_then(|g| g.clone());
    match patterns {
        Some(p) => std::borrow::Cow::Owned(p.redact_all(text)),
        None => std::borrow::Cow::Borrowed(text),
    }
}

/// Writes a line of our own to stderr, through the global redaction.
pub fn eprint_line(line: &str) {
    let mut text = line.as_bytes().to_vec();
    text.push(b'\n');
    let _ = std::io::stderr().lock().write_all(&redact_own(&text));
}

/// A `tracing` writer for stderr that redacts every event (each event is
/// formatted into one buffer and written at once, so a secret cannot straddle
/// two writes).
#[derive(Clone, Copy, Debug, Default)]
pub struct RedactingStderr;

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().lock().write_all(&redact_own(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingStderr;
    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn patterns(list: &[&[u8]]) -> Patterns {
        Patterns::new(list.iter().map(|p| Zeroizing::new(p.to_vec())).collect()).expect("patterns")
    }

    /// The oracle, built independently: every occurrence of every pattern
    /// (aho-corasick's overlapping search), their union, one mask per run.
    fn oracle(list: &[&[u8]], input: &[u8]) -> Vec<u8> {
        let ac = AhoCorasick::new(list).expect("automaton");
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

    fn stream(p: &Patterns, input: &[u8], cuts: &[usize]) -> (Vec<u8>, usize) {
        let mut r = Redactor::new(p);
        let mut out = Vec::new();
        let mut max_held = 0;
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            let end = cut.clamp(start, input.len());
            r.feed(&input[start..end], &mut out).expect("feed");
            max_held = max_held.max(r.held());
            start = end;
        }
        r.finish(&mut out).expect("finish");
        (out, max_held)
    }

    /// A secret renewed mid-stream: the stream switches to the extended
    /// patterns wherever it was cut, the new value straddling the switch is
    /// masked, and the old value stays masked.
    #[test]
    fn a_stream_resumed_with_a_renewed_secret_masks_both_values() {
        let old = patterns(&[b"FAKEold-token-1234"]);
        let new = old
            .extended(vec![Zeroizing::new(b"FAKEnew-token-5678".to_vec())])
            .expect("extended");
        let input = b"a FAKEold-token-1234 b FAKEnew-token-5678 c FAKEold-token-1234";
        // The broker adds a secret before anyone has it, so the switch always
        // comes before the new value's first byte: every cut up to there.
        let new_starts = 23;
        assert_eq!(&input[new_starts..new_starts + 7], b"FAKEnew");
        for cut in 0..=new_starts {
            let mut out = Vec::new();
            let mut r = Redactor::new(&old);
            r.feed(&input[..cut], &mut out).expect("feed");
            let carry = r.into_carry();
            let mut r = Redactor::resume(&new, carry);
            r.feed(&input[cut..], &mut out).expect("feed");
            r.finish(&mut out).expect("finish");
            let shown = String::from_utf8_lossy(&out);
            assert_eq!(shown, "a **** b **** c ****", "cut at {cut}");
        }
    }

    #[test]
    fn redactor_masks_secret_split_across_reads() {
        let p = patterns(&[b"FAKEsecret123"]);
        let input = b"token=FAKEsecret123; again FAKEsecret123!";
        for split in 0..input.len() {
            let (out, _) = stream(&p, input, &[split]);
            assert_eq!(out, b"token=****; again ****!", "split at {split}");
        }
        let every_byte: Vec<usize> = (0..input.len()).collect();
        assert_eq!(stream(&p, input, &every_byte).0, b"token=****; again ****!");
    }

    #[test]
    fn of_two_overlapping_secrets_nothing_of_either_survives() {
        // Leftmost-longest: "abcdef" wins over "cdefgh" and "abc".
        let list: &[&[u8]] = &[b"abcdef", b"cdefgh", b"abc"];
        let p = patterns(list);
        let input = b"xxabcdefghyy abcz cdefgh";
        for cut in 0..input.len() {
            let (out, _) = stream(&p, input, &[cut]);
            assert_eq!(out, b"xx****yy ****z ****".to_vec(), "cut at {cut}");
        }
        assert_eq!(oracle(list, input), b"xx****yy ****z ****".to_vec());
        // Adjacent secrets become one mask.
        assert_eq!(p.redact_all(b"abcabc!"), b"****!".to_vec());
    }

    #[test]
    fn ordinary_text_is_released_at_once_and_only_possible_prefixes_are_held() {
        let p = patterns(&[b"FAKEsecret123"]);
        let mut r = Redactor::new(&p);
        let mut out = Vec::new();
        r.feed(b"Password for 'https://bitbucket.org': ", &mut out)
            .expect("feed");
        assert_eq!(
            out, b"Password for 'https://bitbucket.org': ",
            "a prompt is not held"
        );
        r.feed(b"50% done\r", &mut out).expect("feed");
        assert!(out.ends_with(b"50% done\r"), "a progress line is not held");
        r.feed(b"here: FAKEsec", &mut out).expect("feed");
        assert!(out.ends_with(b"here: "));
        assert_eq!(r.held(), b"FAKEsec".len());
        // The next byte rules the pattern out: everything is released.
        r.feed(b"X", &mut out).expect("feed");
        assert_eq!(r.held(), 0);
        assert!(out.ends_with(b"here: FAKEsecX"));
    }

    #[test]
    fn held_bytes_are_released_at_the_end_of_the_stream_not_before() {
        let p = patterns(&[b"FAKEsecret123"]);
        let mut r = Redactor::new(&p);
        let mut out = Vec::new();
        r.feed(b"FAKEsecret12", &mut out).expect("feed");
        assert!(
            out.is_empty(),
            "a possible secret prefix is held however long it waits"
        );
        r.finish(&mut out).expect("finish");
        assert_eq!(out, b"FAKEsecret12");
    }

    #[test]
    fn binary_and_invalid_utf8_pass_through_untouched() {
        let p = patterns(&[b"FAKEsecret123"]);
        let input: Vec<u8> = (0..=255u8)
            .chain(b"\xff\xfeFAKEsecret123\x00\x80".iter().copied())
            .collect();
        let (out, _) = stream(&p, &input, &[100, 257]);
        let mut expected: Vec<u8> = (0..=255u8).collect();
        expected.extend_from_slice(b"\xff\xfe****\x00\x80");
        assert_eq!(out, expected);
    }

    #[test]
    fn line_wrapped_base64_of_a_real_length_token_is_masked() {
        let token = format!("ATCTT3xFAKE{}", "w".repeat(181));
        let p = Patterns::new(forms(token.as_bytes(), &["x-token-auth"])).expect("patterns");
        let wrap = |data: &[u8], width: usize, end: &str| {
            STANDARD
                .encode(data)
                .as_bytes()
                .chunks(width)
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect::<Vec<_>>()
                .join(end)
                + end
        };
        let basic = format!("x-token-auth:{token}");
        for data in [token.as_bytes(), basic.as_bytes()] {
            for (width, end) in [(76, "\n"), (64, "\n"), (76, "\r\n"), (64, "\r\n")] {
                let wrapped = wrap(data, width, end);
                let out = String::from_utf8_lossy(&p.redact_all(wrapped.as_bytes())).into_owned();
                // Nothing but the mask and at most the last partial group is left.
                let left: String = out.replace("****", "").split_whitespace().collect();
                assert!(left.len() <= 4, "{width} {end:?}: {out:?}");
            }
        }
    }

    #[test]
    fn forms_cover_encodings_and_every_base64_alignment() {
        let secret = b"FAKE/tok+en=42";
        let all = forms(secret, &["x-token-auth"]);
        let p = Patterns::new(all).expect("patterns");
        let basic = STANDARD.encode(b"x-token-auth:FAKE/tok+en=42");
        let cases: Vec<Vec<u8>> = vec![
            secret.to_vec(),
            b"FAKE%2Ftok%2Ben%3D42".to_vec(),
            b"FAKE%2ftok%2ben%3d42".to_vec(),
            b"FAKE\\/tok+en=42".to_vec(),
            STANDARD.encode(secret).into_bytes(),
            basic.into_bytes(),
        ];
        for case in &cases {
            assert_eq!(
                p.redact_all(case),
                MASK,
                "{}",
                String::from_utf8_lossy(case)
            );
        }
        // Embedded in longer base64 at every offset, the middle is masked.
        for prefix in ["", "a", "ab", "abc"] {
            let mut data = prefix.as_bytes().to_vec();
            data.extend_from_slice(b"Authorization: Basic x-token-auth:FAKE/tok+en=42 trailing");
            let encoded = STANDARD.encode(&data);
            let out = p.redact_all(encoded.as_bytes());
            // Everything of `user:secret` but at most two bytes at each edge is gone.
            assert!(out.windows(4).any(|w| w == MASK), "offset {prefix:?}");
            assert!(
                out.len() + 24 <= encoded.len(),
                "offset {prefix:?}: {}",
                String::from_utf8_lossy(&out)
            );
        }
    }

    #[test]
    fn short_secrets_are_not_masked_but_reported() {
        let short = Secret::new("abc12".into());
        let long = Secret::new("FAKEsecret123".into());
        let (p, too_short) = Patterns::for_secrets([
            (&short, vec![], "env:A".to_owned()),
            (&long, vec!["u"], "env:B".to_owned()),
        ]);
        assert_eq!(too_short, ["env:A"]);
        let out = p.expect("patterns").redact_all(b"abc12 FAKEsecret123");
        assert_eq!(out, b"abc12 ****");
    }

    #[test]
    fn mask_secrets_removes_raw_encoded_and_base64_forms() {
        const FAKE: &str = "FAKE-not-a-real-token/with+plus=";
        let secret = Secret::new(FAKE.to_owned());
        let basic = STANDARD.encode(format!("alice:{FAKE}"));
        const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~');
        let pct = percent_encoding::utf8_percent_encode(FAKE, UNRESERVED).to_string();
        let text = format!(
            "raw {FAKE} pct {pct} b64 {} basic {basic}",
            STANDARD.encode(FAKE)
        );
        let scrubbed = mask_secrets(&text, &[(&secret, &["alice"])]);
        assert!(!scrubbed.contains("FAKE"), "{scrubbed}");
        assert!(!scrubbed.contains(&basic), "{scrubbed}");
        assert!(!scrubbed.contains(&STANDARD.encode(FAKE)), "{scrubbed}");
        assert_eq!(scrubbed.matches("****").count(), 4, "{scrubbed}");
    }

    #[test]
    fn our_own_messages_go_through_the_global_patterns() {
        let p = patterns(&[b"FAKEglobal-only-in-this-test"]);
        set_global(Some(Arc::new(p)));
        let out = redact_own(b"error: FAKEglobal-only-in-this-test was rejected");
        assert_eq!(out.as_ref(), b"error: **** was rejected");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Streaming equals in-memory replacement for random patterns (often
        /// overlapping or prefixes of each other), inputs and chunkings, and
        /// never holds back more than the longest pattern - 1 bytes.
        #[test]
        fn streaming_equals_in_memory(
            list in prop::collection::vec(prop::collection::vec(prop::sample::select(b"abc".to_vec()), 1..7), 1..6),
            input in prop::collection::vec(prop::sample::select(b"abcx\xff".to_vec()), 0..300),
            mut cuts in prop::collection::vec(0usize..300, 0..12),
        ) {
            cuts.sort_unstable();
            let refs: Vec<&[u8]> = list.iter().map(|p| p.as_slice()).collect();
            let p = patterns(&refs);
            let (out, max_held) = stream(&p, &input, &cuts);
            prop_assert_eq!(&out, &oracle(&refs, &input));
            prop_assert!(max_held < p.max_len().max(1));
        }

        /// The same with long patterns that share their first PREFIX_LEN bytes
        /// or more (as thousands of tokens with a common prefix do), in inputs
        /// made of pieces of them: the automaton proposes starts that only the
        /// full patterns can confirm or reject.
        #[test]
        fn long_patterns_sharing_a_prefix_match_like_the_oracle(
            tails in prop::collection::vec(prop::collection::vec(prop::sample::select(b"ab".to_vec()), 0..5), 1..6),
            shared in 10usize..20,
            pieces in prop::collection::vec((0usize..6, 0usize..24, prop::bool::ANY), 0..12),
            mut cuts in prop::collection::vec(0usize..300, 0..12),
        ) {
            const STEM: &[u8] = b"ATCTT3xFAKE0123456789";
            let list: Vec<Vec<u8>> = tails
                .iter()
                .map(|t| [&STEM[..shared], t.as_slice()].concat())
                .collect();
            let refs: Vec<&[u8]> = list.iter().map(|p| p.as_slice()).collect();
            let mut input = Vec::new();
            for (which, cut, noise) in pieces {
                let piece = &list[which % list.len()];
                input.extend_from_slice(&piece[..cut.min(piece.len())]);
                if noise {
                    input.push(b'a');
                }
            }
            cuts.sort_unstable();
            let p = patterns(&refs);
            let (out, _) = stream(&p, &input, &cuts);
            prop_assert_eq!(&out, &oracle(&refs, &input));
        }
    }
}
