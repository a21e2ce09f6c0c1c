//! A real git smart-HTTP server for tests and the demo: `git http-backend` run
//! as CGI behind HTTP Basic auth, on 127.0.0.1 only.
//!
//! It de-chunks request bodies (git sends large pushes chunked and often
//! gzip-compressed; http-backend needs a length and `HTTP_CONTENT_ENCODING`),
//! sets `REMOTE_USER` so pushes are allowed, and records every `Authorization`
//! header it sees, so a test can prove which credentials reached it.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::io::AsyncWriteExt as _;

use super::background::Background;

/// What the server does when a request lacks valid credentials.
#[derive(Clone, Debug)]
pub struct Rejection {
    pub status: u16,
    pub body: String,
}

/// The passwords a server accepts, per user; shared, so a test can renew and
/// revoke tokens while git talks to the server.
#[derive(Clone, Default)]
pub struct Users(Arc<Mutex<HashMap<String, HashSet<String>>>>);

impl Users {
    pub fn accept(&self, user: &str, password: &str) {
        if let Ok(mut users) = self.0.lock() {
            users
                .entry(user.into())
                .or_default()
                .insert(password.into());
        }
    }

    pub fn revoke(&self, user: &str, password: &str) {
        if let Ok(mut users) = self.0.lock()
            && let Some(passwords) = users.get_mut(user)
        {
            passwords.remove(password);
        }
    }

    fn accepts(&self, user: &str, password: &str) -> bool {
        self.0
            .lock()
            .is_ok_and(|u| u.get(user).is_some_and(|p| p.contains(password)))
    }
}

#[derive(Default)]
struct Config {
    root: PathBuf,
    git: PathBuf,
    /// user → the passwords accepted now (tests renew and revoke them).
    users: Users,
    read_only_users: HashSet<String>,
    /// `workspace/slug` readable without credentials.
    public: HashSet<String>,
    /// Answer for bad credentials (default: 401 with a short text body).
    rejection: Option<Rejection>,
    /// The Git LFS batch API: `Some(status)` serves it, answering anonymous
    /// requests with `status` (Bitbucket answers 403; most servers 401).
    lfs_anonymous: Option<u16>,
    /// Requests whose path starts with `.0` are answered `301` to `.1` followed
    /// by the rest of the path and the query; only authenticated ones when `.2`.
    redirects: Vec<(String, String, bool)>,
    /// The LFS batch API answers 200 with an HTML login page (a proxy or SSO
    /// in front of the server).
    lfs_login_page: bool,
}

pub struct GitServerBuilder {
    config: Config,
}

impl GitServerBuilder {
    pub fn user(self, name: &str, password: &str) -> Self {
        self.config.users.accept(name, password);
        self
    }

    pub fn read_only_user(mut self, name: &str, password: &str) -> Self {
        self.config.read_only_users.insert(name.into());
        self.user(name, password)
    }

    pub fn public(mut self, repo: &str) -> Self {
        self.config.public.insert(repo.into());
        self
    }

    pub fn reject_with(mut self, status: u16, body: &str) -> Self {
        self.config.rejection = Some(Rejection {
            status,
            body: body.into(),
        });
        self
    }

    /// Serve a Git LFS batch API (objects under `root/lfs-objects/<oid>`),
    /// answering anonymous requests with `status`.
    pub fn lfs(mut self, anonymous_status: u16) -> Self {
        self.config.lfs_anonymous = Some(anonymous_status);
        self
    }

    /// Which git's `http-backend` serves (default: the first `git` on PATH).
    /// Answers every request under `prefix` (a path, `/acme/app.git`) with a
    /// `301` to `target` followed by the rest of the path and the query.
    pub fn redirect(mut self, prefix: &str, target: &str) -> Self {
        self.config
            .redirects
            .push((prefix.into(), target.into(), false));
        self
    }

    /// As [`Self::redirect`], but only requests that carry valid credentials:
    /// the authenticated retry is the one sent elsewhere.
    pub fn redirect_authenticated(mut self, prefix: &str, target: &str) -> Self {
        self.config
            .redirects
            .push((prefix.into(), target.into(), true));
        self
    }

    /// The LFS batch API answers 200 with an HTML login page.
    pub fn lfs_login_page(mut self) -> Self {
        self.config.lfs_login_page = true;
        self
    }

    pub fn git(mut self, git: &Path) -> Self {
        self.config.git = git.to_path_buf();
        self
    }

    pub fn start(self) -> GitServer {
        let config = Arc::new(self.config);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = (config.clone(), seen.clone());
        let background = Background::serve(move |stream| {
            let (config, seen) = state.clone();
            async move {
                let service = hyper::service::service_fn(move |req| {
                    handle(req, config.clone(), seen.clone())
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            }
        });
        GitServer {
            config,
            seen,
            background,
        }
    }
}

pub struct GitServer {
    config: Arc<Config>,
    seen: Arc<Mutex<Vec<(String, String)>>>,
    background: Background,
}

impl GitServer {
    /// A server for the bare repositories under `root` (`root/<ws>/<slug>.git`).
    pub fn builder(root: &Path) -> GitServerBuilder {
        GitServerBuilder {
            config: Config {
                root: root.to_path_buf(),
                git: "git".into(),
                ..Config::default()
            },
        }
    }

    /// The accepted passwords, to change while the server runs (a renewed
    /// token accepted, an expired one revoked).
    pub fn users(&self) -> Users {
        self.config.users.clone()
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.background.addr())
    }

    pub fn port(&self) -> u16 {
        self.background.addr().port()
    }

    /// Every `Authorization` header value received so far, decoded from Basic
    /// when possible (`user:password`).
    pub fn authorizations(&self) -> Vec<String> {
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .map(|(_, auth)| auth.clone())
            .collect()
    }

    /// The `Authorization` headers seen for requests under `/<repo>.git/`.
    pub fn authorizations_for(&self, repo: &str) -> Vec<String> {
        let prefix = format!("/{repo}.git/");
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|(path, _)| path.starts_with(&prefix))
            .map(|(_, auth)| auth.clone())
            .collect()
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
}

fn decode_basic(header: &str) -> Option<(String, String)> {
    let encoded = header.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

async fn handle(
    req: Request<Incoming>,
    config: Arc<Config>,
    seen: Arc<Mutex<Vec<(String, String)>>>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(header) = &authorization {
        let shown = decode_basic(header)
            .map(|(u, p)| format!("{u}:{p}"))
            .unwrap_or(header.clone());
        seen.lock()
            .expect("lock")
            .push((req.uri().path().to_owned(), shown));
    }

    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let write = query.contains("service=git-receive-pack") || path.ends_with("/git-receive-pack");
    let repo: String = path
        .trim_start_matches('/')
        .splitn(3, '/')
        .take(2)
        .collect::<Vec<_>>()
        .join("/");
    let repo = repo.trim_end_matches(".git").to_owned();

    let user = match authorization.as_deref().and_then(decode_basic) {
        Some((user, password)) if config.users.accepts(&user, &password) => Some(user),
        Some(_) => {
            let rejection = config.rejection.clone().unwrap_or(Rejection {
                status: 401,
                body: "Invalid username or password".into(),
            });
            let mut response = text(
                StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::UNAUTHORIZED),
                &rejection.body,
            );
            if rejection.status == 401 {
                response.headers_mut().insert(
                    "www-authenticate",
                    "Basic realm=\"test git\"".parse().expect("header"),
                );
            }
            return Ok(response);
        }
        None => None,
    };
    for (prefix, target, authenticated) in &config.redirects {
        if let Some(rest) = path.strip_prefix(prefix.as_str())
            && (user.is_some() || !authenticated)
        {
            let query = if query.is_empty() {
                String::new()
            } else {
                format!("?{query}")
            };
            let mut response = text(StatusCode::MOVED_PERMANENTLY, "moved");
            if let Ok(location) = format!("{target}{rest}{query}").parse() {
                response.headers_mut().insert("location", location);
            }
            return Ok(response);
        }
    }
    if config.lfs_login_page && path.contains("/info/lfs/") {
        let mut response = text(StatusCode::OK, "<html><body>Sign in</body></html>");
        response.headers_mut().insert(
            "content-type",
            "text/html; charset=utf-8".parse().expect("header"),
        );
        return Ok(response);
    }
    if let Some(anonymous) = config.lfs_anonymous
        && path.contains("/info/lfs/")
    {
        return Ok(lfs(req, &config, user.is_some(), anonymous, &repo).await);
    }
    match &user {
        None if write || !config.public.contains(&repo) => {
            let mut response = text(StatusCode::UNAUTHORIZED, "Authentication required");
            response.headers_mut().insert(
                "www-authenticate",
                "Basic realm=\"test git\"".parse().expect("header"),
            );
            return Ok(response);
        }
        Some(u) if write && config.read_only_users.contains(u) => {
            return Ok(text(
                StatusCode::FORBIDDEN,
                "You may not push to this repository",
            ));
        }
        _ => {}
    }

    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(text(StatusCode::BAD_REQUEST, "bad body")),
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };

    let exec_path = std::process::Command::new(&config.git)
        .arg("--exec-path")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let mut cgi = tokio::process::Command::new(Path::new(&exec_path).join("git-http-backend"));
    cgi.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &config.root)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_PROJECT_ROOT", &config.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", &path)
        .env("QUERY_STRING", &query)
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("HTTP_GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(u) = &user {
        cgi.env("REMOTE_USER", u);
    }
    let Ok(mut child) = cgi.spawn() else {
        return Ok(text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot run git http-backend",
        ));
    };
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&body).await;
    });
    let output = match child.wait_with_output().await {
        Ok(o) => o,
        Err(_) => {
            return Ok(text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "http-backend failed",
            ));
        }
    };
    let _ = writer.await;
    Ok(cgi_response(&output.stdout))
}

/// A small Git LFS server: the batch API (download and upload, `basic`
/// transfer) and the object URLs it hands out, under the same Basic auth.
async fn lfs(
    req: Request<Incoming>,
    config: &Config,
    authenticated: bool,
    anonymous_status: u16,
    repo: &str,
) -> Response<Full<Bytes>> {
    if !authenticated {
        let mut response = text(
            StatusCode::from_u16(anonymous_status).unwrap_or(StatusCode::FORBIDDEN),
            "{\"message\":\"Access denied\"}",
        );
        if anonymous_status == 401 {
            response.headers_mut().insert(
                "www-authenticate",
                "Basic realm=\"test git\"".parse().expect("header"),
            );
        }
        return response;
    }
    let store = config.root.join("lfs-objects");
    let _ = std::fs::create_dir_all(&store);
    let host = req
        .headers()
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned();
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return text(StatusCode::BAD_REQUEST, "bad body");
    };
    if path.ends_with("/info/lfs/objects/batch") && method == hyper::Method::POST {
        let Ok(batch) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return text(StatusCode::UNPROCESSABLE_ENTITY, "bad batch");
        };
        let upload = batch["operation"] == "upload";
        let objects: Vec<serde_json::Value> = batch["objects"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|o| {
                let oid = o["oid"].as_str().unwrap_or_default().to_owned();
                let href = format!("http://{host}/{repo}.git/info/lfs/objects/{oid}");
                let exists = !oid.is_empty()
                    && oid.chars().all(|c| c.is_ascii_hexdigit())
                    && store.join(&oid).exists();
                match (upload, exists) {
                    (true, true) => serde_json::json!({"oid": oid, "size": o["size"]}),
                    (true, false) => serde_json::json!({"oid": oid, "size": o["size"],
                        "actions": {"upload": {"href": href}}}),
                    (false, true) => serde_json::json!({"oid": oid, "size": o["size"],
                        "actions": {"download": {"href": href}}}),
                    (false, false) => serde_json::json!({"oid": oid, "size": o["size"],
                        "error": {"code": 404, "message": "Object does not exist"}}),
                }
            })
            .collect();
        let reply = serde_json::json!({"transfer": "basic", "objects": objects});
        let mut response = text(StatusCode::OK, &reply.to_string());
        response.headers_mut().insert(
            "content-type",
            "application/vnd.git-lfs+json".parse().expect("header"),
        );
        return response;
    }
    let oid = path.rsplit('/').next().unwrap_or_default().to_owned();
    if oid.is_empty() || !oid.chars().all(|c| c.is_ascii_hexdigit()) {
        return text(StatusCode::NOT_FOUND, "no such object");
    }
    match method {
        hyper::Method::PUT => {
            let _ = std::fs::write(store.join(&oid), &body);
            text(StatusCode::OK, "")
        }
        hyper::Method::GET => match std::fs::read(store.join(&oid)) {
            Ok(data) => Response::new(Full::new(Bytes::from(data))),
            Err(_) => text(StatusCode::NOT_FOUND, "no such object"),
        },
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "method"),
    }
}

/// Turns CGI output (headers, blank line, body) into a response.
fn cgi_response(raw: &[u8]) -> Response<Full<Bytes>> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2)));
    let Some((end, sep)) = split else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "bad CGI output");
    };
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut response = Response::new(Full::new(Bytes::copy_from_slice(&raw[end + sep..])));
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value
                .split_whitespace()
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(500);
            *response.status_mut() =
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        } else if let (Ok(n), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(name.trim().as_bytes()),
            hyper::header::HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(n, v);
        }
    }
    response
}

/// Creates a bare repository `root/<ws>/<slug>.git` with one commit holding `files`.
pub fn create_repo(root: &Path, full_name: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let bare = root.join(format!("{full_name}.git"));
    std::fs::create_dir_all(&bare).expect("mkdir");
    run_git(
        &bare,
        &["init", "--quiet", "--bare", "--initial-branch=main"],
    );
    let work = tempfile::tempdir().expect("tempdir");
    run_git(work.path(), &["init", "--quiet", "--initial-branch=main"]);
    for (name, content) in files {
        let path = work.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, content).expect("write");
    }
    run_git(work.path(), &["add", "-A"]);
    run_git(work.path(), &["commit", "--quiet", "-m", "initial"]);
    run_git(
        work.path(),
        &["push", "--quiet", bare.to_str().expect("utf8"), "main"],
    );
    bare
}

/// Runs git with an isolated configuration; panics with its output on failure.
pub fn run_git(dir: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
