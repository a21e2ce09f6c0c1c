//! The HTTP client (reqwest on rustls with the ring provider) and one request
//! function with bounded retries: exponential backoff with jitter on connect
//! errors, timeouts, 429 and 5xx; never on 401/403/404, which retrying cannot fix.
//!
//! Transport failures are classified (timeout, TLS trust, proxy, DNS, connect)
//! so the report can say what to change. Failure text is stripped of URL
//! userinfo before it is kept, since a proxy URL may carry a password.

use std::path::PathBuf;
use std::time::Duration;

use rand::Rng as _;
use reqwest::header::HeaderMap;

/// Bodies beyond this are cut: we only ever need small JSON documents and the
/// first lines of a git ref advertisement.
const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Total time for one request.
    pub timeout: Duration,
    /// Total time for one probe, retries and their pauses included: a
    /// server that drips its answer cannot hold a preflight for
    /// `(retries + 1) × timeout`.
    pub deadline: Duration,
    pub connect_timeout: Duration,
    /// Extra attempts after the first, for retryable failures only.
    pub retries: u32,
    /// First backoff delay; doubled each attempt, with full jitter.
    pub backoff: Duration,
    /// PEM bundle added to the trusted roots (corporate TLS interception).
    pub ca_file: Option<PathBuf>,
    /// Shared by every request of a run: a 429 pauses them all.
    pub gate: std::sync::Arc<RateGate>,
}

/// When one answer is 429, every request of the run waits before its next
/// attempt (concurrent probes would otherwise hammer a rate-limited API).
#[derive(Debug, Default)]
pub struct RateGate(std::sync::Mutex<Option<tokio::time::Instant>>);

impl RateGate {
    /// Waits until no pause is in force.
    async fn wait(&self) {
        let until = self.0.lock().ok().and_then(|g| *g);
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }

    /// Pauses every request for `delay` (a later pause wins).
    fn hold(&self, delay: Duration) {
        if let Ok(mut gate) = self.0.lock() {
            let until = tokio::time::Instant::now() + delay;
            if gate.is_none_or(|current| current < until) {
                *gate = Some(until);
            }
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(20),
            deadline: Duration::from_secs(45),
            connect_timeout: Duration::from_secs(10),
            retries: 3,
            backoff: Duration::from_millis(250),
            ca_file: None,
            gate: std::sync::Arc::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("--ca-file {path}: cannot be read ({reason})")]
    CaFileUnreadable { path: String, reason: String },
    #[error("--ca-file {path}: holds no PEM certificate")]
    CaFileInvalid { path: String },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

impl HttpError {
    pub fn hint(&self) -> String {
        match self {
            HttpError::CaFileUnreadable { .. } | HttpError::CaFileInvalid { .. } => {
                "give a PEM file with your proxy's or company's root CA certificate".into()
            }
            HttpError::Client(_) => "this is a bug in bbinject; please report it".into(),
        }
    }
}

pub fn build_client(settings: &HttpSettings) -> Result<reqwest::Client, HttpError> {
    let builder = || {
        reqwest::Client::builder()
            .user_agent(concat!("bbinject/", env!("CARGO_PKG_VERSION")))
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            // A redirect would carry our Authorization header to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            // The environment's proxies, decided per request by us (this
            // replaces reqwest's own reading of them): loopback never goes
            // through one.
            .proxy(reqwest::Proxy::custom(env_proxy_for))
            .https_only(false)
    };
    let failed = |e: reqwest::Error| HttpError::Client(strip_userinfo(&error_chain(&e)));
    if let Some(path) = &settings.ca_file {
        let shown = path.display().to_string();
        // A bundle of every public CA is ~250 KiB; a FIFO must not block us.
        const MAX_CA_BYTES: u64 = 8 * 1024 * 1024;
        let (pem, _) = crate::fsutil::read_regular_file(path, MAX_CA_BYTES).map_err(|p| {
            HttpError::CaFileUnreadable {
                path: shown.clone(),
                reason: p.describe(MAX_CA_BYTES),
            }
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or(HttpError::CaFileInvalid { path: shown })?;
        return builder().tls_certs_merge(certs).build().map_err(failed);
    }
    // The platform verifier reads the system's store while the client is
    // built, and fails only when that store is empty: a static binary copied
    // into scratch, distroless or busybox. Only then (one more read to be sure
    // that is why) the Mozilla roots compiled in are trusted instead; the
    // system's store wins whenever it has one, so an admin's additions and
    // removals hold. ARCHITECTURE.md §8.
    match builder().build() {
        Err(e) if rustls_native_certs::load_native_certs().certs.is_empty() => {
            tracing::debug!(error = %error_chain(&e), "the platform verifier has no roots");
            tracing::info!(
                "no CA certificates found on this system (SSL_CERT_FILE, SSL_CERT_DIR, \
                 /etc/ssl/certs): trusting the {} Mozilla root certificates built into bbinject",
                webpki_root_certs::TLS_SERVER_ROOT_CERTS.len()
            );
            builder()
                .tls_certs_only(
                    webpki_root_certs::TLS_SERVER_ROOT_CERTS
                        .iter()
                        .filter_map(|der| reqwest::Certificate::from_der(der).ok()),
                )
                .build()
                .map_err(failed)
        }
        built => built.map_err(failed),
    }
}

/// A response, with its body read (up to a bound).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// How many attempts it took.
    pub attempts: u32,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a request got no HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportError {
    Timeout {
        detail: String,
    },
    Tls {
        detail: String,
    },
    /// The certificate is trusted but names another host: a CA cannot fix it.
    TlsName {
        detail: String,
    },
    Proxy {
        detail: String,
    },
    Dns {
        detail: String,
    },
    Connect {
        detail: String,
    },
    Other {
        detail: String,
    },
}

impl TransportError {
    /// The one clause of cause, e.g. `connection refused`.
    pub fn detail(&self) -> &str {
        match self {
            TransportError::Timeout { detail }
            | TransportError::Tls { detail }
            | TransportError::TlsName { detail }
            | TransportError::Proxy { detail }
            | TransportError::Dns { detail }
            | TransportError::Connect { detail }
            | TransportError::Other { detail } => detail,
        }
    }

    fn retryable(&self) -> bool {
        !matches!(
            self,
            TransportError::Tls { .. }
                | TransportError::TlsName { .. }
                | TransportError::Other { .. }
        )
    }

    /// One clause of cause for the person (the innermost error); the whole
    /// chain goes to the log, seen with `-v`.
    fn classify(error: &reqwest::Error) -> Self {
        let chain = strip_userinfo(&error_chain(error));
        tracing::info!(error = %chain, "request failed");
        let lower = chain.to_ascii_lowercase();
        let detail = root_cause(error);
        let proxy = error.url().and_then(proxy_for);
        if let Some(proxy) = proxy.filter(|_| error.is_connect() || error.is_timeout()) {
            // A failure to connect while a proxy is configured is the proxy's,
            // even when the error text only says "connection refused".
            TransportError::Proxy {
                detail: format!("through proxy {proxy}: {detail}"),
            }
        } else if error.is_timeout() || lower.contains("timed out") {
            TransportError::Timeout { detail }
        } else if tls_error(error).is_some_and(|tls| {
            matches!(
                tls,
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                        | rustls::CertificateError::NotValidForNameContext { .. }
                )
            )
        }) || lower.contains("not valid for name")
        {
            // The text is rustls' own Display of NotValidForName: the typed
            // error is not always reachable through the boxed chain.
            TransportError::TlsName { detail }
        } else if tls_error(error).is_some() || lower.contains("certificate") {
            TransportError::Tls { detail }
        } else if lower.contains("proxy") || lower.contains("tunnel") {
            TransportError::Proxy { detail }
        } else if lower.contains("dns error") || lower.contains("failed to lookup") {
            TransportError::Dns { detail }
        } else if error.is_connect() {
            TransportError::Connect { detail }
        } else {
            TransportError::Other { detail }
        }
    }
}

/// Sends the request `make` builds, retrying transient failures. Returns the
/// last reply (which may still be a 429 or 5xx) or the last transport error.
pub async fn send(
    settings: &HttpSettings,
    make: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Reply, TransportError> {
    let deadline = tokio::time::Instant::now() + settings.deadline;
    match tokio::time::timeout_at(deadline, send_until(settings, make, deadline)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(TransportError::Timeout {
            detail: format!(
                "no complete answer within the probe's deadline of {} s (--deadline)",
                settings.deadline.as_secs()
            ),
        }),
    }
}

async fn send_until(
    settings: &HttpSettings,
    make: impl Fn() -> reqwest::RequestBuilder,
    deadline: tokio::time::Instant,
) -> Result<Reply, TransportError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        settings.gate.wait().await;
        let outcome = match make().send().await {
            Ok(response) => Ok(read_reply(response, attempt).await),
            Err(e) => Err(TransportError::classify(&e)),
        };
        let retry_after = match &outcome {
            Ok(Ok(reply)) if reply.status == 429 || reply.status >= 500 => {
                Some(retry_after(&reply.headers))
            }
            Ok(Ok(_)) => None,
            Ok(Err(e)) | Err(e) if e.retryable() => Some(None),
            Ok(Err(_)) | Err(_) => None,
        };
        let outcome = outcome.and_then(|r| r);
        match (&outcome, retry_after) {
            (Ok(reply), _) => tracing::debug!(status = reply.status, attempt, "http reply"),
            (Err(e), _) => tracing::debug!(error = ?e, attempt, "http transport failure"),
        }
        let Some(server_delay) = retry_after else {
            return outcome;
        };
        if attempt > settings.retries {
            return outcome;
        }
        let delay = server_delay.unwrap_or_else(|| backoff(settings.backoff, attempt));
        if tokio::time::Instant::now() + delay >= deadline {
            // No time left for another attempt: the last answer is the result.
            return outcome;
        }
        let rate_limited = matches!(&outcome, Ok(reply) if reply.status == 429);
        if rate_limited {
            settings.gate.hold(delay);
        }
        tokio::time::sleep(delay).await;
        settings.gate.wait().await;
    }
}

async fn read_reply(
    mut response: reqwest::Response,
    attempts: u32,
) -> Result<Reply, TransportError> {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_BODY_BYTES.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= MAX_BODY_BYTES {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => return Err(TransportError::classify(&e)),
        }
    }
    Ok(Reply {
        status,
        headers,
        body,
        attempts,
    })
}

/// Full jitter: a random delay in `[0, base * 2^(attempt-1)]`, at least 10 ms.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let ceiling = base.saturating_mul(1 << (attempt - 1).min(6));
    let millis = ceiling.as_millis().max(10) as u64;
    Duration::from_millis(rand::rng().random_range(10..=millis.max(10)))
}

/// The environment variables that name a proxy, in both cases.
pub const PROXY_VARIABLES: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The proxy (without userinfo) requests to `url` go through, for messages.
fn proxy_for(url: &url::Url) -> Option<String> {
    env_proxy_for(url).map(|p| strip_userinfo(&p))
}

/// The proxy requests to `url` go through: from `HTTPS_PROXY`, `HTTP_PROXY`,
/// `ALL_PROXY` (either case), unless `NO_PROXY` exempts the host — and never
/// for a loopback host (`127.0.0.1`, `::1`, `localhost`): a plain-http
/// endpoint is allowed only there, and its Basic credentials must not cross
/// a proxy in clear text.
fn env_proxy_for(url: &url::Url) -> Option<String> {
    let env = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
    };
    let raw_host = url.host_str()?;
    if crate::bitbucket::endpoint::is_loopback_host(raw_host) {
        return None;
    }
    let proxy = match url.scheme() {
        "https" => env(&["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]),
        _ => env(&["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]),
    }?;
    let host = raw_host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let exempt = env(&["NO_PROXY", "no_proxy"]).is_some_and(|list| {
        list.split(',')
            .map(|e| e.trim().to_ascii_lowercase())
            .any(|entry| {
                let bare = entry.trim_start_matches('.');
                entry == "*"
                    || (!bare.is_empty() && (host == bare || host.ends_with(&format!(".{bare}"))))
            })
    });
    (!exempt).then_some(proxy)
}

/// `Retry-After` in seconds, honoured up to 10 s (Bitbucket rarely sends it).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds.min(10)))
}

/// The rustls error somewhere in the chain, if the failure was TLS's.
fn tls_error<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // io::Error::source() skips the error it wraps: look inside it.
        if let Some(tls) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        current = e.source();
    }
    None
}

/// The innermost cause, without the OS error number: `Connection refused`,
/// `failed to lookup address information: Name or service not known`.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let chain = error_chain(error);
    let last = chain.rsplit(": ").next().unwrap_or(&chain);
    // "…: failed to lookup address information: X" reads better whole.
    let last = match chain.rfind("failed to lookup address information") {
        Some(at) => &chain[at..],
        None => last,
    };
    let trimmed = match last.find(" (os error ") {
        Some(at) => &last[..at],
        None => last,
    };
    strip_userinfo(trimmed.trim())
}

/// The error and its causes, `: `-joined, the way they read best in one line.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            let text = inner.to_string();
            if !parts.iter().any(|p| p.contains(&text)) {
                parts.push(text);
            }
        }
        current = e.source();
    }
    parts.join(": ")
}

/// Removes `user:password@` from anything that looks like a URL in `text`.
pub fn strip_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let authority_end = tail
            .find(['/', ' ', ')', '"', '\'', '?', '#'])
            .unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(at) => {
                out.push_str("***@");
                rest = &tail[at + 1..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_removed_from_urls_in_text() {
        assert_eq!(
            strip_userinfo("proxy http://bob:FAKEFAKE@proxy:3128 refused (https://x.org/a@b)"),
            "proxy http://***@proxy:3128 refused (https://x.org/a@b)"
        );
        assert_eq!(strip_userinfo("no url here"), "no url here");
    }

    #[test]
    fn backoff_grows_but_stays_bounded() {
        let base = Duration::from_millis(100);
        for attempt in 1..10 {
            let d = backoff(base, attempt);
            assert!(d >= Duration::from_millis(10), "{d:?}");
            assert!(d <= base * 64, "{d:?}");
        }
    }

    #[test]
    fn retry_after_is_capped() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "3600".parse().expect("header"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(10)));
        headers.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("header"),
        );
        assert_eq!(retry_after(&headers), None);
    }
}
