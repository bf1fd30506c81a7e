//! HTTP and HTTPS checks (Consul's `CheckHTTP`).
//!
//! One request per run on a fresh connection (Consul disables keep-alives, so does this:
//! `Connection: close`), with `method` (default GET), `header` (a `Host` header sets the
//! request's host), `body`, and Consul's `User-Agent: Consul Health Check` and
//! `Accept: text/plain, text/*, */*` unless the definition sets them. Redirects are followed
//! like Go's client (at most 10; 301/302/303 turn into GET without a body) unless
//! `disable_redirects`. The timeout (default 10 s) covers connecting, the headers and the
//! body; a body cut off by the timeout still counts with what arrived.
//!
//! 2xx is passing, 429 warning, anything else critical; the output is Consul's
//! `HTTP <method> <url>: <code> <reason> Output: <body>`, the body capped to the check's output
//! size (its *last* bytes, as Consul's ring buffer keeps). A request that fails is critical
//! with Go's `*url.Error` text: `Get "<url>": dial tcp 127.0.0.1:80: connect: connection
//! refused`, `Get "<url>": context deadline exceeded (Client.Timeout exceeded while awaiting
//! headers)`.
//!
//! The client is hyper's connection-level HTTP/1.1 API over our own dialer and rustls, rather
//! than reqwest: that gives per-check SNI (`tls_server_name`), Go's error texts, and needs no
//! process-wide TLS crypto provider.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{
    ACCEPT, AUTHORIZATION, CONNECTION, COOKIE, HOST, HeaderName, HeaderValue, LOCATION, USER_AGENT,
    WWW_AUTHENTICATE,
};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use registry_api::{CRITICAL, CheckDefinition, PASSING, WARNING};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, timeout_at};

use super::Outcome;
use super::output::RingBuffer;
use super::tcp::dial_tcp;
use super::tls::{self, TlsConfigs};

/// Consul's `User-Agent` for HTTP checks.
pub(super) const USER_AGENT_VALUE: &str = "Consul Health Check";
/// Consul's default `Accept`.
const ACCEPT_VALUE: &str = "text/plain, text/*, */*";
/// Go's client gives up after this many redirects.
const MAX_REDIRECTS: usize = 10;
/// Go's suffix for errors caused by the client timeout.
const AWAITING_HEADERS: &str = " (Client.Timeout exceeded while awaiting headers)";

/// An HTTP probe.
pub(super) struct HttpCheck {
    /// The URL as configured, for the output.
    url: String,
    /// The method as configured (default GET), for the output.
    method_text: String,
    /// The parsed request, or the output of a definition that cannot make one.
    request: Result<Prepared, String>,
    timeout: Duration,
    max_output: usize,
    tls: Arc<TlsConfigs>,
    skip_verify: bool,
    tls_server_name: Option<String>,
    follow_redirects: bool,
}

/// The parts of the request that do not change between runs.
#[derive(Clone)]
struct Prepared {
    target: Target,
    method: Method,
    /// The definition's headers, without `Host`.
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The definition's `Host` header.
    host: Option<String>,
    body: Bytes,
}

/// A response as the probe needs it.
struct RawResponse {
    status: StatusCode,
    reason: String,
    location: Option<String>,
    body: String,
}

impl HttpCheck {
    pub(super) fn new(
        def: &CheckDefinition,
        timeout: Duration,
        max_output: usize,
        tls: Arc<TlsConfigs>,
    ) -> Self {
        let method_text = if def.method.is_empty() {
            "GET".to_string()
        } else {
            def.method.clone()
        };
        Self {
            url: def.http.clone(),
            request: prepare(def, &method_text),
            method_text,
            timeout,
            max_output,
            tls,
            skip_verify: def.tls_skip_verify,
            tls_server_name: (!def.tls_server_name.is_empty()).then(|| def.tls_server_name.clone()),
            follow_redirects: !def.disable_redirects,
        }
    }

    pub(super) async fn run(&self) -> Outcome {
        let prepared = match &self.request {
            Ok(p) => p,
            Err(output) => return Outcome::new(CRITICAL, output.clone()),
        };
        let deadline = Instant::now() + self.timeout;
        match self.fetch(prepared, deadline).await {
            Ok(resp) => {
                let result = format!(
                    "HTTP {} {}: {} {} Output: {}",
                    self.method_text,
                    self.url,
                    resp.status.as_u16(),
                    resp.reason,
                    resp.body
                );
                let status = match resp.status.as_u16() {
                    200..=299 => PASSING,
                    429 => WARNING,
                    _ => CRITICAL,
                };
                Outcome::new(status, result)
            }
            Err(output) => Outcome::new(CRITICAL, output),
        }
    }

    /// Sends the request and follows redirects; errors are Go's `*url.Error` texts.
    async fn fetch(&self, p: &Prepared, deadline: Instant) -> Result<RawResponse, String> {
        let first_host = p.target.host.clone();
        let mut target = p.target.clone();
        let mut url = self.url.clone();
        let mut method = p.method.clone();
        let mut headers = p.headers.clone();
        let mut host = p.host.clone();
        let mut body = p.body.clone();
        let mut redirects = 0;
        loop {
            let resp = self
                .round_trip(&target, &method, &headers, host.as_deref(), &body, deadline)
                .await
                .map_err(|e| url_error(&method, &url, &e))?;
            let redirect = matches!(resp.status.as_u16(), 301 | 302 | 303 | 307 | 308);
            let Some(location) = resp
                .location
                .as_deref()
                .filter(|_| self.follow_redirects && redirect)
            else {
                return Ok(resp);
            };
            let next = target.join(location).map_err(|e| {
                url_error(
                    &method,
                    &url,
                    &format!("failed to parse Location header {location:?}: {e}"),
                )
            })?;
            if redirects == MAX_REDIRECTS {
                return Err(url_error(
                    &method,
                    &next.to_string(),
                    &format!("stopped after {MAX_REDIRECTS} redirects"),
                ));
            }
            redirects += 1;
            if matches!(resp.status.as_u16(), 301..=303) {
                if method != Method::HEAD {
                    method = Method::GET;
                }
                body = Bytes::new();
            }
            // Go keeps a custom Host only across relative redirects.
            if location.contains("://") {
                host = None;
            }
            // Go drops credentials when the redirect leaves the original domain.
            if next.host != first_host && !next.host.ends_with(&format!(".{first_host}")) {
                headers.retain(|(name, _)| {
                    name != AUTHORIZATION
                        && name != WWW_AUTHENTICATE
                        && name != COOKIE
                        && name != "cookie2"
                });
            }
            url = next.to_string();
            target = next;
        }
    }

    /// One request on a new connection. Errors are the inner text of Go's `*url.Error`.
    async fn round_trip(
        &self,
        target: &Target,
        method: &Method,
        headers: &[(HeaderName, HeaderValue)],
        host: Option<&str>,
        body: &Bytes,
        deadline: Instant,
    ) -> Result<RawResponse, String> {
        let https = match target.scheme.to_ascii_lowercase().as_str() {
            "http" => false,
            "https" => true,
            _ => return Err(format!("unsupported protocol scheme {:?}", target.scheme)),
        };
        let mut req = Request::builder()
            .method(method.clone())
            .uri(target.path.as_str());
        let hdrs = req
            .headers_mut()
            .ok_or_else(|| format!("net/http: invalid request target {:?}", target.path))?;
        let host = host.unwrap_or(&target.authority);
        hdrs.insert(
            HOST,
            HeaderValue::from_str(host)
                .map_err(|_| format!("http: invalid Host header {host:?}"))?,
        );
        for (name, value) in headers {
            hdrs.append(name.clone(), value.clone());
        }
        if !hdrs.contains_key(USER_AGENT) {
            hdrs.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        }
        if !hdrs.contains_key(ACCEPT) {
            hdrs.insert(ACCEPT, HeaderValue::from_static(ACCEPT_VALUE));
        }
        hdrs.insert(CONNECTION, HeaderValue::from_static("close"));
        let req = req
            .body(Full::new(body.clone()))
            .map_err(|e| e.to_string())?;

        let with_timeout_note = |e: String| {
            if Instant::now() >= deadline {
                format!("{e}{AWAITING_HEADERS}")
            } else {
                e
            }
        };
        let tcp = dial_tcp(&target.host, target.port, deadline)
            .await
            .map_err(with_timeout_note)?;
        if !https {
            return exchange(tcp, req, deadline, self.max_output).await;
        }
        let name = self.tls_server_name.as_deref().unwrap_or(&target.host);
        let config = self.tls.http(self.skip_verify);
        let stream = timeout_at(deadline, tls::connect(config, name, tcp))
            .await
            .map_err(|_| format!("context deadline exceeded{AWAITING_HEADERS}"))??;
        exchange(stream, req, deadline, self.max_output).await
    }
}

/// Builds the fixed parts of the request. The error is the check's output, in Go's words.
fn prepare(def: &CheckDefinition, method_text: &str) -> Result<Prepared, String> {
    let method = Method::from_bytes(method_text.as_bytes())
        .map_err(|_| format!("net/http: invalid method {method_text:?}"))?;
    let target = Target::parse(&def.http)?;
    let mut headers = Vec::new();
    let mut host = None;
    for (name, values) in &def.header {
        if name.eq_ignore_ascii_case("host") {
            host = values.first().cloned();
            continue;
        }
        let invalid = || {
            url_error(
                &method,
                &def.http,
                &format!("net/http: invalid header field name {name:?}"),
            )
        };
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
        for value in values {
            let value = HeaderValue::from_str(value).map_err(|_| {
                url_error(
                    &method,
                    &def.http,
                    &format!("net/http: invalid header field value for {name:?}"),
                )
            })?;
            headers.push((header.clone(), value));
        }
    }
    Ok(Prepared {
        target,
        method,
        headers,
        host,
        body: Bytes::from(def.body.clone()),
    })
}

/// Sends `req` over `io` and reads the response, the body until EOF or `deadline`.
async fn exchange<S>(
    io: S,
    req: Request<Full<Bytes>>,
    deadline: Instant,
    max_output: usize,
) -> Result<RawResponse, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| hyper_error(&e))?;
    let work = async move {
        let resp = match timeout_at(deadline, sender.send_request(req)).await {
            Err(_) => return Err(format!("context deadline exceeded{AWAITING_HEADERS}")),
            Ok(Err(e)) => return Err(hyper_error(&e)),
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status();
        // Go reports the reason phrase the server sent.
        let reason = resp
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
            .or_else(|| status.canonical_reason().map(str::to_string))
            .unwrap_or_default();
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = resp.into_body();
        let mut buf = RingBuffer::new(max_output);
        loop {
            match timeout_at(deadline, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        buf.write(data);
                    }
                }
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "check error while reading body");
                    break;
                }
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!("check timed out while reading body");
                    break;
                }
            }
        }
        Ok(RawResponse {
            status,
            reason,
            location,
            body: buf.text(),
        })
    };
    // The connection future does the I/O; drive it alongside, inside this task, so that a
    // cancelled check leaves nothing running.
    tokio::pin!(conn, work);
    let mut conn_done = false;
    loop {
        tokio::select! {
            result = &mut work => return result,
            done = &mut conn, if !conn_done => {
                conn_done = true;
                if let Err(e) = done {
                    tracing::trace!(error = %e, "check connection ended with an error");
                }
            }
        }
    }
}

/// Go's `*url.Error` text: `Get "http://…": <err>`.
fn url_error(method: &Method, url: &str, err: &str) -> String {
    let m = method.as_str();
    let op = match m.get(..1) {
        Some(first) => format!("{first}{}", m[1..].to_ascii_lowercase()),
        None => "Get".to_string(),
    };
    format!("{op} {url:?}: {err}")
}

/// hyper's errors, with Go's `EOF` for a connection closed before the response.
fn hyper_error(e: &hyper::Error) -> String {
    if e.is_incomplete_message() {
        "EOF".into()
    } else {
        e.to_string()
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    scheme: String,
    /// Host without IPv6 brackets (for dialing and SNI).
    host: String,
    port: u16,
    /// `host[:port]` as written, without user info: the `Host` header.
    authority: String,
    /// Path and query (`/` when empty).
    path: String,
}

impl Target {
    /// Parses an absolute URL; the error is Go's `parse "<url>": …`.
    fn parse(url: &str) -> Result<Self, String> {
        // The fragment is never sent.
        let url_no_fragment = url.split('#').next().unwrap_or(url);
        let uri: Uri = url_no_fragment
            .parse()
            .map_err(|e| format!("parse {url:?}: {e}"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(format!("parse {url:?}: missing scheme or host"));
        };
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = match (authority.port_u16(), scheme.to_ascii_lowercase().as_str()) {
            (Some(port), _) => port,
            (None, "https") => 443,
            (None, _) => 80,
        };
        let authority = authority
            .as_str()
            .rsplit('@')
            .next()
            .unwrap_or_default()
            .to_string();
        let path = uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or("/");
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        Ok(Self {
            scheme: scheme.to_string(),
            host,
            port,
            authority,
            path,
        })
    }

    /// Resolves a `Location` header against this URL.
    fn join(&self, location: &str) -> Result<Self, String> {
        let location = location.split('#').next().unwrap_or(location);
        let absolute = if location.contains("://") {
            location.to_string()
        } else if let Some(rest) = location.strip_prefix("//") {
            format!("{}://{rest}", self.scheme)
        } else if location.starts_with('/') {
            format!("{}://{}{location}", self.scheme, self.authority)
        } else if location.starts_with('?') {
            let path = self.path.split('?').next().unwrap_or("/");
            format!("{}://{}{path}{location}", self.scheme, self.authority)
        } else {
            let path = self.path.split('?').next().unwrap_or("/");
            let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
            format!("{}://{}{dir}{location}", self.scheme, self.authority)
        };
        Self::parse(&absolute)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.path)
    }
}

#[cfg(test)]
mod target_tests {
    use super::Target;

    #[test]
    fn parses_and_joins_like_a_browser() {
        let t = Target::parse("http://user@[::1]:8080/a/b?x=1#frag").unwrap();
        assert_eq!(t.host, "::1");
        assert_eq!(t.port, 8080);
        assert_eq!(t.authority, "[::1]:8080");
        assert_eq!(t.path, "/a/b?x=1");

        let t = Target::parse("https://example.test").unwrap();
        assert_eq!((t.port, t.path.as_str()), (443, "/"));

        let base = Target::parse("http://h:1/a/b?q").unwrap();
        assert_eq!(base.join("/c").unwrap().to_string(), "http://h:1/c");
        assert_eq!(base.join("c?d").unwrap().to_string(), "http://h:1/a/c?d");
        assert_eq!(base.join("?z").unwrap().to_string(), "http://h:1/a/b?z");
        assert_eq!(base.join("//o:2/p").unwrap().to_string(), "http://o:2/p");
        assert_eq!(base.join("https://o/p").unwrap().to_string(), "https://o/p");
        assert!(Target::parse("not a url").is_err());
    }
}
