//! wiremock servers that answer like api.bitbucket.org, with the real
//! response bodies from `tests/fixtures/bitbucket/` (see its SOURCES.md).

#![allow(dead_code)]

use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/bitbucket/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A JSON reply with a fixture body.
pub fn json(status: u16, fixture_name: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("content-type", "application/json")
        .set_body_string(fixture(fixture_name))
}

/// A private repository body (the fixture with `is_private: true`).
pub fn private_repository() -> String {
    fixture("repository.json").replace("\"is_private\": false", "\"is_private\": true")
}

/// The successful answer for an authenticated request, as Bitbucket sends it.
pub fn authenticated(body: String, credential_type: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "application/json")
        .insert_header("x-credential-type", credential_type)
        .set_body_string(body)
}

pub async fn start() -> MockServer {
    MockServer::start().await
}

/// `/2.0` base URL of the mock, as given to `--api-url`.
pub fn api_url(server: &MockServer) -> String {
    format!("{}/2.0", server.uri())
}

/// Mounts `template` for `GET /2.0/<suffix>` with the given Authorization header.
pub async fn on_get(
    server: &MockServer,
    suffix: &str,
    authorization: Option<&str>,
    template: ResponseTemplate,
) {
    let mut mock = Mock::given(method("GET")).and(path(format!("/2.0/{suffix}")));
    if let Some(value) = authorization {
        mock = mock.and(header("authorization", value));
    }
    mock.respond_with(template).mount(server).await;
}

pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}
