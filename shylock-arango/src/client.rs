//! The HTTP client arangors talks through: reqwest with rustls and a
//! request timeout, so no system TLS library is needed and a dead server
//! cannot hang a request forever; and the JWT login the backend repeats
//! when its token expires. A leaf: it uses nothing else of this crate, so
//! the builder and the backend can both use it without using each other.

use std::time::Duration;

use arangors::client::ClientExt;
use arangors::{ClientError, GenericConnection};
use http::{HeaderMap, HeaderValue};

/// Upper bound on one HTTP request; the backend's per-operation timeout
/// (default 10 s) is usually shorter.
const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

/// reqwest with rustls, for arangors' `GenericConnection`.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    headers: HeaderMap,
}

#[async_trait::async_trait]
impl ClientExt for HttpClient {
    fn new<U: Into<Option<HeaderMap>>>(headers: U) -> Result<Self, ClientError> {
        let client = reqwest::Client::builder()
            .gzip(true)
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::HttpClient(e.to_string()))?;
        Ok(HttpClient {
            client,
            headers: headers.into().unwrap_or_default(),
        })
    }

    fn headers(&mut self) -> &mut HeaderMap<HeaderValue> {
        &mut self.headers
    }

    async fn request(
        &self,
        mut request: http::Request<String>,
    ) -> Result<http::Response<String>, ClientError> {
        let headers = request.headers_mut();
        for (name, value) in self.headers.iter() {
            if !headers.contains_key(name) {
                headers.insert(name, value.clone());
            }
        }
        let request = reqwest::Request::try_from(request)
            .map_err(|e| ClientError::HttpClient(e.to_string()))?;
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|e| ClientError::HttpClient(e.to_string()))?;
        let mut builder = http::Response::builder()
            .status(response.status())
            .version(response.version());
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        let body = response
            .text()
            .await
            .map_err(|e| ClientError::HttpClient(e.to_string()))?;
        builder
            .body(body)
            .map_err(|e| ClientError::HttpClient(e.to_string()))
    }
}

/// What it takes to log in again with JWT once a token has expired.
pub(crate) struct Login {
    pub(crate) url: String,
    pub(crate) user: String,
    pub(crate) password: String,
    pub(crate) database: String,
}

impl Login {
    /// `POST /_open/auth`, then opens the database with the new token.
    pub(crate) async fn connect(
        &self,
    ) -> std::result::Result<arangors::Database<HttpClient>, arangors::ClientError> {
        let connection =
            GenericConnection::<HttpClient>::establish_jwt(&self.url, &self.user, &self.password)
                .await?;
        connection.db(&self.database).await
    }
}
