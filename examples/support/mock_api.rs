//! A Bitbucket REST API shaped mock for the examples: `acme/app` is a private
//! repository, answered as to a repository access token (the header
//! Bitbucket sends). It does not check the credential: the git server does.

pub async fn mock_api() -> wiremock::MockServer {
    use wiremock::matchers::{method, path};
    let api = wiremock::MockServer::start().await;
    wiremock::Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/app"))
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .insert_header("content-type", "application/json")
                .insert_header("x-credential-type", "repo_access_token")
                .set_body_string(r#"{"type":"repository","full_name":"acme/app","slug":"app","is_private":true}"#),
        )
        .mount(&api)
        .await;
    api
}
