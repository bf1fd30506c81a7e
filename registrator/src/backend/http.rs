//! The one HTTP/1.1 client every backend uses: a request over TCP, TLS or a unix
//! socket, with transport failures turned into [`BackendError::Unreachable`] (or
//! [`BackendError::Tls`]) and non-2xx answers into [`BackendError::Refused`].
//!
//! Why hyper and not reqwest (whose 0.13 does support unix sockets through
//! `ClientBuilder::unix_socket`): reqwest's TLS needs one of its rustls features,
//! and `rustls-no-provider` makes *every* `reqwest::Client::build()` in a
//! feature-unified build (registry-node, the api client, templater) panic unless a
//! process-wide `CryptoProvider` is installed, while `rustls` pulls in aws-lc. Here
//! the TLS config carries its own ring provider, like registry-node's checks.
//! Registrator sends a handful of requests per container start, so each request
//! opens its own connection; no pool.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;

use super::BackendError;

/// Time limit of establishing a connection (and its TLS handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time limit of a whole request; none of our requests block server-side.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the registry listens.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// Plain HTTP to `host:port`.
    Tcp {
        /// `host:port` (also the `Host` header).
        addr: String,
    },
    /// HTTPS to `host:port`.
    Tls {
        /// `host:port`.
        addr: String,
        /// Name the certificate must carry (SNI too).
        server_name: ServerName<'static>,
        /// Roots and client certificate; built with an explicit ring provider.
        config: Arc<ClientConfig>,
    },
    /// HTTP over a unix socket.
    Unix {
        /// The socket file.
        path: PathBuf,
    },
}

impl Target {
    /// How messages name the target: `127.0.0.1:8500`, `https://h:8501`, `unix:///path`.
    pub(crate) fn display(&self) -> String {
        match self {
            Target::Tcp { addr } => addr.clone(),
            Target::Tls { addr, .. } => format!("https://{addr}"),
            Target::Unix { path } => format!("unix://{}", path.display()),
        }
    }
}

/// A request body.
pub(crate) enum Body {
    /// No body (`Content-Length: 0` on PUT/POST).
    Empty,
    /// `application/json`.
    Json(Vec<u8>),
    /// Bytes stored as they are (a KV value).
    Raw(Vec<u8>),
}

impl Body {
    /// `value` serialized as JSON.
    pub(crate) fn json<T: serde::Serialize>(value: &T) -> Body {
        // Our payloads are plain structs and maps with string keys: encoding cannot fail.
        Body::Json(serde_json::to_vec(value).expect("request bodies serialize"))
    }
}

/// An HTTP client of one registry.
#[derive(Debug, Clone)]
pub(crate) struct HttpTransport {
    /// Backend name for messages (`consul`, `etcd`).
    backend: &'static str,
    target: Target,
    /// Sent with every request (`X-Consul-Token`).
    headers: Vec<(&'static str, String)>,
    /// What [`BackendError::Unreachable`] suggests.
    hint: &'static str,
}

impl HttpTransport {
    /// A client of `target`; `hint` ends the "unreachable" message.
    pub(crate) fn new(backend: &'static str, target: Target, hint: &'static str) -> HttpTransport {
        HttpTransport {
            backend,
            target,
            headers: Vec::new(),
            hint,
        }
    }

    /// Adds a header to every request.
    pub(crate) fn with_header(mut self, name: &'static str, value: String) -> HttpTransport {
        self.headers.push((name, value));
        self
    }

    /// The target as messages name it.
    pub(crate) fn addr(&self) -> String {
        self.target.display()
    }

    /// Sends a request; a non-2xx answer becomes [`BackendError::Refused`].
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<Bytes, BackendError> {
        let action = format!("{method} {}", path.split('?').next().unwrap_or(path));
        let (status, bytes) = self.send(method, path, body).await?;
        if !(200..300).contains(&status) {
            return Err(BackendError::Refused {
                backend: self.backend,
                addr: self.addr(),
                action,
                status,
                message: error_message(&bytes),
            });
        }
        Ok(bytes)
    }

    /// [`HttpTransport::call`], then decodes the JSON answer.
    pub(crate) async fn call_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<T, BackendError> {
        let bytes = self.call(method.clone(), path, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| BackendError::BadResponse {
            backend: self.backend,
            addr: self.addr(),
            action: format!("{method} {}", path.split('?').next().unwrap_or(path)),
            reason: e.to_string(),
        })
    }

    /// Sends a request and returns status and body, whatever the status.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<(u16, Bytes), BackendError> {
        let request = self.build(method, path, body)?;
        match tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(request)).await {
            Ok(result) => result,
            Err(_) => Err(self.unreachable(format!("no answer within {REQUEST_TIMEOUT:?}"))),
        }
    }

    fn build(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<Request<Full<Bytes>>, BackendError> {
        let host = match &self.target {
            Target::Tcp { addr } | Target::Tls { addr, .. } => addr.as_str(),
            // Consul's Go client sends this for unix sockets too.
            Target::Unix { .. } => "localhost",
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, host)
            .header(
                USER_AGENT,
                concat!("registrator/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in &self.headers {
            builder = builder.header(*name, value.as_str());
        }
        let bytes = match body {
            Body::Empty => Bytes::new(),
            Body::Json(bytes) => {
                builder = builder.header(CONTENT_TYPE, "application/json");
                Bytes::from(bytes)
            }
            Body::Raw(bytes) => Bytes::from(bytes),
        };
        builder.body(Full::new(bytes)).map_err(|e| {
            BackendError::Config(format!(
                "{}: cannot build a request for {path}: {e}",
                self.backend
            ))
        })
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<(u16, Bytes), BackendError> {
        let connect_failed = |e: std::io::Error| self.unreachable(io_reason(&e));
        let connect_timeout =
            || self.unreachable(format!("connect timed out after {CONNECT_TIMEOUT:?}"));
        let result = match &self.target {
            Target::Tcp { addr } => {
                let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr.as_str()))
                    .await
                    .map_err(|_| connect_timeout())?
                    .map_err(connect_failed)?;
                let _ = tcp.set_nodelay(true);
                roundtrip(tcp, request).await
            }
            Target::Tls {
                addr,
                server_name,
                config,
            } => {
                let handshake = async {
                    let tcp = TcpStream::connect(addr.as_str())
                        .await
                        .map_err(connect_failed)?;
                    let _ = tcp.set_nodelay(true);
                    TlsConnector::from(config.clone())
                        .connect(server_name.clone(), tcp)
                        .await
                        .map_err(|e| BackendError::Tls {
                            backend: self.backend,
                            addr: self.addr(),
                            reason: io_reason(&e),
                        })
                };
                let tls = tokio::time::timeout(CONNECT_TIMEOUT, handshake)
                    .await
                    .map_err(|_| connect_timeout())??;
                roundtrip(tls, request).await
            }
            Target::Unix { path } => {
                let unix = tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(path))
                    .await
                    .map_err(|_| connect_timeout())?
                    .map_err(connect_failed)?;
                roundtrip(unix, request).await
            }
        };
        result.map_err(|e| self.unreachable(hyper_reason(&e)))
    }

    fn unreachable(&self, reason: String) -> BackendError {
        BackendError::Unreachable {
            backend: self.backend,
            addr: self.addr(),
            reason,
            hint: self.hint,
        }
    }
}

/// Aborts the task driving a connection when the request is done or dropped (timeout).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One request/response on a fresh connection.
async fn roundtrip<S>(io: S, request: Request<Full<Bytes>>) -> Result<(u16, Bytes), hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    let _driver = AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "registry connection ended with an error");
        }
    }));
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// A connect error as a short lower-case reason.
fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => "connection refused".into(),
        ErrorKind::NotFound => "no such socket file".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// A hyper error with its causes (`connection closed before message completed: ...`).
fn hyper_reason(e: &hyper::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The registry's error text: `error`/`message` of a JSON body (etcd's gateway), or
/// the body itself (Consul), trimmed and cut to 512 bytes.
fn error_message(body: &[u8]) -> String {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) {
        for key in ["message", "error"] {
            if let Some(serde_json::Value::String(text)) = map.get(key) {
                return text.clone();
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(512) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// Percent-encodes one path segment (a service ID such as `host:web:80`, a KV key):
/// `/` is kept so KV keys keep their hierarchy.
pub(crate) fn escape_path(raw: &str) -> String {
    registry_api::client::escape_path(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_prefer_the_json_text() {
        assert_eq!(
            error_message(br#"{"error":"etcdserver: requested lease not found","code":5}"#),
            "etcdserver: requested lease not found"
        );
        assert_eq!(
            error_message(b"Invalid service meta key\n"),
            "Invalid service meta key"
        );
        assert_eq!(error_message(&[b'x'; 600]).len(), 515);
    }

    #[test]
    fn paths_are_escaped() {
        assert_eq!(escape_path("h:web 1:80"), "h:web%201:80");
    }
}
