//! Check runner tests against real local servers, processes and (when present) Docker.
//!
//! Every test starts what it probes on 127.0.0.1 port 0, flips it, and waits on the update
//! channel for the expected result (bounded waits, no fixed sleeps as assertions).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use registry_api::{CRITICAL, CheckDefinition, GoDuration, PASSING, WARNING};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;

use super::output::RingBuffer;
use super::status::StatusHandler;
use super::*;

/// How long any single expected update may take to show up.
const WAIT: Duration = Duration::from_secs(10);
/// Short interval so the tests run quickly.
const FAST: Duration = Duration::from_millis(100);

// ----- harness -----------------------------------------------------------------------------

/// Local health for alias checks: test data, set by the test.
#[derive(Default)]
struct FakeHealth {
    services: Mutex<HashMap<String, (String, String)>>,
    nodes: Mutex<HashMap<String, (String, String)>>,
}

impl HealthView for FakeHealth {
    fn service_health(&self, service_id: &str) -> Option<(String, String)> {
        self.services.lock().unwrap().get(service_id).cloned()
    }
    fn node_health(&self, node: &str) -> Option<(String, String)> {
        self.nodes.lock().unwrap().get(node).cloned()
    }
}

struct Harness {
    runner: CheckRunner,
    rx: UnboundedReceiver<CheckUpdate>,
    /// Updates of other checks that arrived while waiting for one check.
    backlog: Vec<CheckUpdate>,
    health: Arc<FakeHealth>,
    token: CancellationToken,
}

impl Harness {
    fn new(settings: RunnerSettings) -> Self {
        let (tx, rx) = unbounded_channel();
        let health = Arc::new(FakeHealth::default());
        let token = CancellationToken::new();
        let runner = CheckRunner::new(settings, tx, health.clone(), token.clone());
        Self {
            runner,
            rx,
            backlog: Vec::new(),
            health,
            token,
        }
    }

    /// Waits for an update of `id` that satisfies `pred`. Earlier updates of `id` that do not
    /// match are dropped; updates of other checks are kept for their own waits.
    async fn wait_for(
        &mut self,
        id: &str,
        what: &str,
        pred: impl Fn(&CheckUpdate) -> bool,
    ) -> CheckUpdate {
        let mut skipped = Vec::new();
        while let Some(pos) = self.backlog.iter().position(|u| u.check_id == id) {
            let u = self.backlog.remove(pos);
            if pred(&u) {
                return u;
            }
            skipped.push(u);
        }
        let deadline = Instant::now() + WAIT;
        loop {
            match timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(u)) if u.check_id == id && pred(&u) => return u,
                Ok(Some(u)) if u.check_id == id => skipped.push(u),
                Ok(Some(u)) => self.backlog.push(u),
                Ok(None) => panic!("update channel closed while waiting for {what}"),
                Err(_) => panic!("no {what} update for {id} within {WAIT:?}; skipped {skipped:#?}"),
            }
        }
    }

    async fn wait_status(&mut self, id: &str, status: &str) -> CheckUpdate {
        self.wait_for(id, status, |u| u.status == status).await
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

fn check(f: impl FnOnce(&mut CheckDefinition)) -> CheckDefinition {
    let mut def = CheckDefinition {
        interval: Some(GoDuration(FAST)),
        timeout: Some(GoDuration(Duration::from_secs(2))),
        ..Default::default()
    };
    f(&mut def);
    def
}

// ----- pure parts --------------------------------------------------------------------------

#[test]
fn status_handler_follows_consul_thresholds() {
    // The first result after a (re)start is reported at once.
    let mut h = StatusHandler::new(0, 0, 3);
    assert_eq!(
        h.observe(CRITICAL, "x".into()),
        Some((CRITICAL, "x".into()))
    );
    assert_eq!(
        h.observe(PASSING, "ok".into()),
        Some((PASSING, "ok".into()))
    );
    // Then it takes three consecutive failures.
    assert_eq!(h.observe(CRITICAL, "1".into()), None);
    assert_eq!(h.observe(CRITICAL, "2".into()), None);
    assert_eq!(
        h.observe(CRITICAL, "3".into()),
        Some((CRITICAL, "3".into()))
    );
    // A success resets the failure count; warnings count as successes.
    assert_eq!(h.observe(WARNING, "w".into()), Some((WARNING, "w".into())));
    assert_eq!(h.observe(CRITICAL, "1".into()), None);

    // Warning after one failure, critical after three, passing after two successes.
    let mut h = StatusHandler::new(2, 1, 3);
    assert_eq!(
        h.observe(PASSING, "ok".into()),
        Some((PASSING, "ok".into()))
    );
    assert_eq!(h.observe(CRITICAL, "1".into()), Some((WARNING, "1".into())));
    assert_eq!(h.observe(CRITICAL, "2".into()), Some((WARNING, "2".into())));
    assert_eq!(
        h.observe(CRITICAL, "3".into()),
        Some((CRITICAL, "3".into()))
    );
    assert_eq!(h.observe(PASSING, "a".into()), None);
    assert_eq!(h.observe(PASSING, "b".into()), Some((PASSING, "b".into())));

    // Zero thresholds: every result goes through.
    let mut h = StatusHandler::new(0, 0, 0);
    assert_eq!(
        h.observe(CRITICAL, "c".into()),
        Some((CRITICAL, "c".into()))
    );
    assert_eq!(h.observe(PASSING, "p".into()), Some((PASSING, "p".into())));
}

#[test]
fn ring_buffer_keeps_the_tail_like_circbuf() {
    let mut b = RingBuffer::new(4);
    b.write(b"ab");
    assert_eq!((b.text(), b.captured()), ("ab".into(), "ab".into()));
    b.write(b"cdef");
    assert_eq!(b.text(), "cdef");
    assert_eq!(b.captured(), "Captured 4 of 6 bytes\n...\ncdef");
    // A cut inside a UTF-8 sequence drops the orphaned bytes.
    let mut b = RingBuffer::new(3);
    b.write("xé€".as_bytes()); // 1 + 2 + 3 bytes
    assert_eq!(b.text(), "€");
    let mut b = RingBuffer::new(4);
    b.write("xé€".as_bytes());
    assert_eq!(b.text(), "€");
}

#[test]
fn output_cap_is_the_smaller_of_check_and_agent() {
    assert_eq!(output_cap(0, 0), 4096);
    assert_eq!(output_cap(0, 100), 100);
    assert_eq!(output_cap(10, 100), 10);
    assert_eq!(output_cap(1000, 100), 100);
}

#[test]
fn errno_text_reads_like_go() {
    let e = std::io::Error::from_raw_os_error(111);
    assert_eq!(super::output::errno_text(&e), "connection refused");
}

// ----- HTTP --------------------------------------------------------------------------------

/// What the test HTTP server saw last and what it answers.
#[derive(Default)]
struct HttpState {
    code: AtomicU16,
    last: Mutex<Option<(Method, HeaderMap, Bytes)>>,
    hits: AtomicUsize,
}

async fn answer(
    State(state): State<Arc<HttpState>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    state.hits.fetch_add(1, Ordering::SeqCst);
    *state.last.lock().unwrap() = Some((method, headers, body));
    let code = StatusCode::from_u16(state.code.load(Ordering::SeqCst)).unwrap();
    let text = match code.as_u16() {
        200 => "hello",
        429 => "slow down",
        _ => "broken",
    };
    (code, text)
}

/// An axum server on 127.0.0.1:0 until `stop` is cancelled.
async fn http_server(
    state: Arc<HttpState>,
    stop: CancellationToken,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let app = Router::new()
        .route("/health", axum::routing::any(answer))
        .route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route(
            "/redirect",
            axum::routing::get(|| async {
                (
                    StatusCode::FOUND,
                    [(axum::http::header::LOCATION, "/health")],
                    "",
                )
            }),
        )
        .route(
            "/big",
            axum::routing::get(|| async { format!("{}0123456789", "a".repeat(5000)) }),
        )
        .with_state(state);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
            .unwrap();
    });
    (addr, handle)
}

/// 200 → 429 → 503 → server gone: passing → warning → critical → critical (connection
/// refused), with Consul's outputs; method, headers (incl. Host) and body are sent.
#[tokio::test]
async fn http_check_follows_the_server() {
    let mut h = Harness::new(RunnerSettings::for_test());
    let state = Arc::new(HttpState::default());
    state.code.store(200, Ordering::SeqCst);
    let stop = CancellationToken::new();
    let (addr, server) = http_server(state.clone(), stop.clone()).await;
    let url = format!("http://{addr}/health");
    let def = check(|d| {
        d.http = url.clone();
        d.method = "POST".into();
        d.body = "ping".into();
        d.header = BTreeMap::from([
            ("X-Test".to_string(), vec!["a".to_string(), "b".to_string()]),
            ("Host".to_string(), vec!["example.test".to_string()]),
        ]);
    });

    tracing::info!("--- step: 200 is passing");
    h.runner.start("web", &def, false).unwrap();
    assert_eq!(h.runner.running(), 1);
    let u = h.wait_status("web", PASSING).await;
    assert_eq!(u.output, format!("HTTP POST {url}: 200 OK Output: hello"));
    let (method, headers, body) = state.last.lock().unwrap().clone().unwrap();
    assert_eq!(method, Method::POST);
    assert_eq!(body, Bytes::from_static(b"ping"));
    assert_eq!(headers["host"], "example.test");
    assert_eq!(headers["user-agent"], "Consul Health Check");
    assert_eq!(headers["accept"], "text/plain, text/*, */*");
    let x_test: Vec<_> = headers.get_all("x-test").iter().collect();
    assert_eq!(x_test, ["a", "b"]);

    tracing::info!("--- step: 429 is warning");
    state.code.store(429, Ordering::SeqCst);
    let u = h.wait_status("web", WARNING).await;
    assert_eq!(
        u.output,
        format!("HTTP POST {url}: 429 Too Many Requests Output: slow down")
    );

    tracing::info!("--- step: 503 is critical");
    state.code.store(503, Ordering::SeqCst);
    let u = h.wait_status("web", CRITICAL).await;
    assert_eq!(
        u.output,
        format!("HTTP POST {url}: 503 Service Unavailable Output: broken")
    );

    tracing::info!("--- step: no server is critical");
    stop.cancel();
    server.await.unwrap();
    let u = h
        .wait_for("web", "connection refused", |u| {
            u.output.contains("refused")
        })
        .await;
    assert_eq!(u.status, CRITICAL);
    assert_eq!(
        u.output,
        format!("Post \"{url}\": dial tcp {addr}: connect: connection refused")
    );
    h.runner.shutdown().await;
    assert_eq!(h.runner.running(), 0);
}

/// Timeouts, redirects (followed or not) and the output cap.
#[tokio::test]
async fn http_check_timeout_redirects_and_output_cap() {
    let mut h = Harness::new(RunnerSettings::for_test());
    let state = Arc::new(HttpState::default());
    state.code.store(200, Ordering::SeqCst);
    let stop = CancellationToken::new();
    let (addr, _server) = http_server(state.clone(), stop.clone()).await;

    tracing::info!("--- step: a slow server times out");
    let slow = format!("http://{addr}/slow");
    let def = check(|d| {
        d.http = slow.clone();
        d.timeout = Some(GoDuration(Duration::from_millis(300)));
    });
    h.runner.start("slow", &def, false).unwrap();
    let u = h.wait_status("slow", CRITICAL).await;
    assert_eq!(
        u.output,
        format!(
            "Get \"{slow}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )
    );
    h.runner.stop("slow");

    tracing::info!("--- step: redirects are followed by default");
    let redirect = format!("http://{addr}/redirect");
    h.runner
        .start("follow", &check(|d| d.http = redirect.clone()), false)
        .unwrap();
    let u = h.wait_status("follow", PASSING).await;
    assert_eq!(
        u.output,
        format!("HTTP GET {redirect}: 200 OK Output: hello")
    );

    tracing::info!("--- step: disable_redirects reports the 302");
    let def = check(|d| {
        d.http = redirect.clone();
        d.disable_redirects = true;
    });
    h.runner.start("nofollow", &def, false).unwrap();
    let u = h.wait_status("nofollow", CRITICAL).await;
    assert_eq!(u.output, format!("HTTP GET {redirect}: 302 Found Output: "));

    tracing::info!("--- step: the body is capped to its last bytes");
    let big = format!("http://{addr}/big");
    let def = check(|d| {
        d.http = big.clone();
        d.output_max_size = 10;
    });
    h.runner.start("big", &def, false).unwrap();
    let u = h.wait_status("big", PASSING).await;
    assert_eq!(
        u.output,
        format!("HTTP GET {big}: 200 OK Output: 0123456789")
    );
    stop.cancel();
}

/// HTTPS and TCP+TLS against a self-signed server: verified → critical (unknown authority),
/// `tls_skip_verify` → passing, `tls_server_name` is the SNI sent.
#[tokio::test]
async fn https_and_tcp_tls_checks() {
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::rustls;

    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sni_seen = Arc::new(Mutex::new(Vec::<Option<String>>::new()));
    let server_sni = sni_seen.clone();
    let server = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let sni = server_sni.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                sni.lock()
                    .unwrap()
                    .push(tls.get_ref().1.server_name().map(str::to_string));
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"secure")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });

    let mut h = Harness::new(RunnerSettings::for_test());
    let url = format!("https://{addr}/");

    tracing::info!("--- step: an unknown issuer fails verification");
    h.runner
        .start("verify", &check(|d| d.http = url.clone()), false)
        .unwrap();
    let u = h.wait_status("verify", CRITICAL).await;
    assert_eq!(
        u.output,
        format!(
            "Get \"{url}\": tls: failed to verify certificate: x509: certificate signed by unknown authority"
        )
    );
    h.runner.stop("verify");

    tracing::info!("--- step: tls_skip_verify passes and sends tls_server_name as SNI");
    let def = check(|d| {
        d.http = url.clone();
        d.tls_skip_verify = true;
        d.tls_server_name = "localhost".into();
    });
    h.runner.start("skip", &def, false).unwrap();
    let u = h.wait_status("skip", PASSING).await;
    assert_eq!(u.output, format!("HTTP GET {url}: 200 OK Output: secure"));
    assert!(
        sni_seen
            .lock()
            .unwrap()
            .contains(&Some("localhost".to_string()))
    );
    h.runner.stop("skip");

    tracing::info!("--- step: TCP+TLS");
    let def = check(|d| {
        d.tcp = addr.to_string();
        d.tcp_use_tls = true;
        d.tls_skip_verify = true;
    });
    h.runner.start("tcptls", &def, false).unwrap();
    let u = h.wait_status("tcptls", PASSING).await;
    assert_eq!(u.output, format!("TCP+TLS connect {addr}: Success"));
    server.abort();
}

/// A server answering 200 then 503: with failures_before_critical=3 the check stays passing
/// until the third consecutive failure; success_before_passing=2 needs two successes back.
#[tokio::test]
async fn thresholds_hold_back_status_changes() {
    let mut h = Harness::new(RunnerSettings::for_test());
    let state = Arc::new(HttpState::default());
    state.code.store(200, Ordering::SeqCst);
    let stop = CancellationToken::new();
    let (addr, _server) = http_server(state.clone(), stop.clone()).await;
    let def = check(|d| {
        d.http = format!("http://{addr}/health");
        d.failures_before_critical = 3;
        d.success_before_passing = 2;
    });
    h.runner.start("t", &def, false).unwrap();
    h.wait_status("t", PASSING).await;

    tracing::info!("--- step: three failures to critical");
    let before = state.hits.load(Ordering::SeqCst);
    state.code.store(503, Ordering::SeqCst);
    // The next update must be the critical one: no warning in between (warning threshold
    // defaults to the critical one).
    let u = h.wait_for("t", "any", |_| true).await;
    assert_eq!(u.status, CRITICAL, "{u:?}");
    let failures = state.hits.load(Ordering::SeqCst) - before;
    assert!(failures >= 3, "critical after {failures} failing probes");

    tracing::info!("--- step: two successes to passing");
    let before = state.hits.load(Ordering::SeqCst);
    state.code.store(200, Ordering::SeqCst);
    let u = h.wait_for("t", "any", |_| true).await;
    assert_eq!(u.status, PASSING, "{u:?}");
    let successes = state.hits.load(Ordering::SeqCst) - before;
    assert!(successes >= 2, "passing after {successes} good probes");
    stop.cancel();
}

// ----- TCP and UDP -------------------------------------------------------------------------

/// A listener that is open, then closed: passing → critical.
#[tokio::test]
async fn tcp_check_open_then_closed() {
    let mut h = Harness::new(RunnerSettings::for_test());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    h.runner
        .start("tcp", &check(|d| d.tcp = addr.to_string()), false)
        .unwrap();
    let u = h.wait_status("tcp", PASSING).await;
    assert_eq!(u.output, format!("TCP connect {addr}: Success"));

    drop(listener);
    let u = h.wait_status("tcp", CRITICAL).await;
    assert_eq!(
        u.output,
        format!("dial tcp {addr}: connect: connection refused")
    );

    tracing::info!("--- step: a malformed address is critical");
    h.runner
        .start("bad", &check(|d| d.tcp = "no-port".into()), false)
        .unwrap();
    let u = h.wait_status("bad", CRITICAL).await;
    assert_eq!(
        u.output,
        "dial tcp no-port: address no-port: missing port in address"
    );
}

/// A bound UDP socket (silent) is passing; once dropped, the ICMP port-unreachable makes it
/// critical.
#[tokio::test]
async fn udp_check_bound_then_dropped() {
    let mut h = Harness::new(RunnerSettings::for_test());
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let def = check(|d| {
        d.udp = addr.to_string();
        d.timeout = Some(GoDuration(Duration::from_millis(200)));
    });
    h.runner.start("udp", &def, false).unwrap();
    let u = h.wait_status("udp", PASSING).await;
    assert_eq!(u.output, format!("UDP connect {addr}: Success"));

    drop(socket);
    let u = h.wait_status("udp", CRITICAL).await;
    assert!(
        u.output.starts_with("read udp 127.0.0.1:")
            && u.output
                .ends_with(&format!("->{addr}: read: connection refused")),
        "{}",
        u.output
    );
}

// ----- scripts -----------------------------------------------------------------------------

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

/// Exit 0/1/2 map to passing/warning/critical, with stdout and stderr captured.
#[tokio::test]
async fn script_exit_codes() {
    let mut h = Harness::new(RunnerSettings::for_test());
    for (id, script) in [
        ("s0", "echo fine; exit 0"),
        ("s1", "echo meh >&2; exit 1"),
        ("s2", "echo bad; exit 2"),
    ] {
        h.runner
            .start(id, &check(|d| d.args = sh(script)), false)
            .unwrap();
    }
    assert_eq!(h.runner.running(), 3);
    assert_eq!(h.wait_status("s0", PASSING).await.output, "fine\n");
    assert_eq!(h.wait_status("s1", WARNING).await.output, "meh\n");
    assert_eq!(h.wait_status("s2", CRITICAL).await.output, "bad\n");

    tracing::info!("--- step: long output is cut with Consul's prefix");
    let def = check(|d| {
        d.args = sh("printf 'aaaaaaaaaa0123456789'");
        d.output_max_size = 10;
    });
    h.runner.start("long", &def, false).unwrap();
    assert_eq!(
        h.wait_status("long", PASSING).await.output,
        "Captured 10 of 20 bytes\n...\n0123456789"
    );

    tracing::info!("--- step: a missing program is critical");
    let def = check(|d| d.args = vec!["no-such-program-for-checks".into()]);
    h.runner.start("missing", &def, false).unwrap();
    assert_eq!(
        h.wait_status("missing", CRITICAL).await.output,
        "exec: \"no-such-program-for-checks\": executable file not found in $PATH"
    );
}

/// A marker no other process on the machine has.
fn unique_marker() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "0.{}{:09}{}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// Processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(marker) {
                found.push(format!(
                    "{}: {cmdline}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
    }
    found
}

/// Waits until no process carries `marker`.
async fn wait_gone(marker: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = processes_with(marker);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "processes survived: {left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A script that hangs (and has a background child) is killed at its timeout, with its
/// whole process group.
#[tokio::test]
async fn hanging_script_is_killed_with_its_group() {
    let mut h = Harness::new(RunnerSettings::for_test());
    let marker = unique_marker();
    // GNU sleep adds its arguments; the marker is a harmless fraction of a second.
    let script = format!("echo started; sleep 60 {marker} & sleep 60 {marker}; true");
    let def = check(|d| {
        d.args = sh(&script);
        d.timeout = Some(GoDuration(Duration::from_millis(500)));
        // The first run comes after a random stagger below one interval.
        d.interval = Some(GoDuration(Duration::from_secs(1)));
    });
    h.runner.start("hang", &def, false).unwrap();
    let u = h.wait_status("hang", CRITICAL).await;
    assert_eq!(u.output, "Timed out (500ms) running check\n\nstarted\n");
    wait_gone(&marker).await;

    tracing::info!("--- step: stopping a check mid-run kills its group too");
    let marker = unique_marker();
    let script = format!("sleep 60 {marker} & sleep 60 {marker}; true");
    let def = check(|d| {
        d.args = sh(&script);
        d.timeout = Some(GoDuration(Duration::from_secs(60)));
        d.interval = Some(GoDuration(Duration::from_millis(1)));
    });
    h.runner.start("stopme", &def, false).unwrap();
    let deadline = Instant::now() + WAIT;
    while processes_with(&marker).len() < 2 {
        assert!(Instant::now() < deadline, "script never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.runner.stop("stopme");
    wait_gone(&marker).await;
}

/// Script (and docker) checks need `enable_script_checks`, or `enable_local_script_checks`
/// for checks from config files.
#[tokio::test]
async fn script_checks_are_refused_unless_enabled() {
    let script = check(|d| d.args = sh("exit 0"));
    let docker = check(|d| {
        d.docker_container_id = "c".into();
        d.args = sh("exit 0");
    });
    let remote = "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true";
    let local = "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true";

    let h = Harness::new(RunnerSettings::default());
    for def in [&script, &docker] {
        assert_eq!(h.runner.start("x", def, false).unwrap_err(), remote);
        assert_eq!(h.runner.start("x", def, true).unwrap_err(), local);
    }
    assert_eq!(h.runner.running(), 0);

    let h = Harness::new(RunnerSettings {
        enable_local_script_checks: true,
        ..RunnerSettings::default()
    });
    assert_eq!(h.runner.start("x", &script, false).unwrap_err(), remote);
    h.runner.start("x", &script, true).unwrap();
    assert_eq!(h.runner.running(), 1);

    let h = Harness::new(RunnerSettings {
        enable_script_checks: true,
        ..RunnerSettings::default()
    });
    h.runner.start("x", &script, false).unwrap();
    h.runner.start("y", &script, true).unwrap();
    assert_eq!(h.runner.running(), 2);
    h.runner.shutdown().await;
}

// ----- alias, unsupported types, lifecycle -------------------------------------------------

/// An alias check mirrors the service's (and node's) health from the agent's view.
#[tokio::test(start_paused = true)]
async fn alias_check_mirrors_local_health() {
    let mut h = Harness::new(RunnerSettings::for_test());
    let def = check(|d| {
        d.alias_service = "web".into();
        d.interval = None;
    });
    h.runner.start("alias", &def, false).unwrap();
    let u = h.wait_status("alias", CRITICAL).await;
    assert_eq!(u.output, "Service web could not be found on node ");

    let set = |h: &Harness, id: &str, status: &str, out: &str| {
        h.health
            .services
            .lock()
            .unwrap()
            .insert(id.into(), (status.into(), out.into()));
    };
    set(&h, "web", PASSING, "All checks passing.");
    let u = h.wait_status("alias", PASSING).await;
    assert_eq!(u.output, "All checks passing.");
    set(&h, "web", WARNING, "Aliased check \"w\" failing: slow");
    h.wait_status("alias", WARNING).await;
    set(
        &h,
        "web",
        "maintenance",
        "Aliased check \"m\" failing: maintenance",
    );
    h.wait_status("alias", CRITICAL).await;

    tracing::info!("--- step: with alias_node, the node's health counts too");
    set(&h, "web", PASSING, "All checks passing.");
    h.health.nodes.lock().unwrap().insert(
        "n1".into(),
        (
            CRITICAL.into(),
            "Aliased check \"disk\" failing: full".into(),
        ),
    );
    let def = check(|d| {
        d.alias_service = "web".into();
        d.alias_node = "n1".into();
    });
    h.runner.start("alias2", &def, false).unwrap();
    let u = h.wait_status("alias2", CRITICAL).await;
    assert_eq!(u.output, "Aliased check \"disk\" failing: full");
    h.health
        .nodes
        .lock()
        .unwrap()
        .insert("n1".into(), (PASSING.into(), "All checks passing.".into()));
    h.wait_status("alias2", PASSING).await;
    h.runner.shutdown().await;
}

/// TTL checks run nothing; gRPC/H2PING report "not supported" once; restarting replaces.
#[tokio::test]
async fn lifecycle_ttl_grpc_restart_and_shutdown() {
    let mut h = Harness::new(RunnerSettings::for_test());
    let ttl = check(|d| {
        d.ttl = Some(GoDuration(Duration::from_secs(10)));
        d.interval = None;
    });
    h.runner.start("ttl", &ttl, false).unwrap();
    assert_eq!(h.runner.running(), 0);

    h.runner
        .start("grpc", &check(|d| d.grpc = "127.0.0.1:1".into()), false)
        .unwrap();
    let u = h.wait_status("grpc", CRITICAL).await;
    assert_eq!(u.output, "gRPC checks are not supported by this agent");

    tracing::info!("--- step: a periodic check without an interval is refused");
    let err = h
        .runner
        .start(
            "noint",
            &check(|d| {
                d.tcp = "127.0.0.1:1".into();
                d.interval = None;
            }),
            false,
        )
        .unwrap_err();
    assert_eq!(err, "Interval must be > 0 for tcp checks");

    tracing::info!("--- step: restarting a check replaces its task");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    h.runner
        .start("re", &check(|d| d.tcp = "127.0.0.1:1".into()), false)
        .unwrap();
    h.wait_status("re", CRITICAL).await;
    h.runner
        .start("re", &check(|d| d.tcp = addr.to_string()), false)
        .unwrap();
    assert_eq!(h.runner.running(), 1);
    // After the restart only the new definition reports.
    let u = h.wait_status("re", PASSING).await;
    assert_eq!(u.output, format!("TCP connect {addr}: Success"));

    tracing::info!("--- step: shutdown ends every task, promptly");
    for i in 0..5 {
        let def = check(|d| d.args = sh("sleep 30"));
        h.runner.start(&format!("sleeper{i}"), &def, false).unwrap();
    }
    assert_eq!(h.runner.running(), 6);
    tokio::time::timeout(Duration::from_secs(5), h.runner.shutdown())
        .await
        .expect("shutdown finished in time");
    assert_eq!(h.runner.running(), 0);
    // A runner that is shut down starts nothing.
    h.runner
        .start("late", &check(|d| d.tcp = addr.to_string()), false)
        .unwrap();
    assert_eq!(h.runner.running(), 0);
}

// ----- docker ------------------------------------------------------------------------------

/// Docker checks against the real daemon: a missing container is critical with Consul's
/// text. Without a daemon the test logs and returns, unless REGISTRY_REQUIRE_DOCKER=1. An
/// exec that succeeds is tested when REGISTRY_DOCKER_TEST_IMAGE names a local image with `sh`.
#[tokio::test]
async fn docker_check_against_the_daemon() {
    tracing::info!("--- step: an unreachable daemon is critical");
    let mut h = Harness::new(RunnerSettings {
        docker_host: Some("unix:///nonexistent/registry-checks-docker.sock".into()),
        ..RunnerSettings::for_test()
    });
    let def = check(|d| {
        d.docker_container_id = "whatever".into();
        d.args = vec!["true".into()];
    });
    h.runner.start("nodaemon", &def, false).unwrap();
    let u = h.wait_status("nodaemon", CRITICAL).await;
    assert!(
        u.output
            .starts_with("create exec failed for container whatever: "),
        "{}",
        u.output
    );

    let docker = match super::docker::connect(None) {
        Ok(d) => d,
        Err(e) => return docker_unavailable(&e),
    };
    if let Err(e) = docker.ping().await {
        return docker_unavailable(&e.to_string());
    }

    tracing::info!("--- step: a missing container is critical");
    let mut h = Harness::new(RunnerSettings::for_test());
    let missing = format!("registry-checks-missing-{}", std::process::id());
    let def = check(|d| {
        d.docker_container_id = missing.clone();
        d.args = vec!["true".into()];
    });
    h.runner.start("missing", &def, false).unwrap();
    let u = h.wait_status("missing", CRITICAL).await;
    assert_eq!(
        u.output,
        format!("create exec failed for unknown container {missing}")
    );

    let Ok(image) = std::env::var("REGISTRY_DOCKER_TEST_IMAGE") else {
        tracing::info!("REGISTRY_DOCKER_TEST_IMAGE not set: skipping the exec step");
        return;
    };
    tracing::info!(%image, "--- step: exec exit codes in a real container");
    use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
    let name = format!("registry-checks-{}", std::process::id());
    let body = bollard::models::ContainerCreateBody {
        image: Some(image),
        cmd: Some(vec!["sleep".into(), "300".into()]),
        ..Default::default()
    };
    docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(&name).build()),
            body,
        )
        .await
        .unwrap();
    docker
        .start_container(
            &name,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .unwrap();
    for (id, script, status) in [
        ("d0", "echo ok", PASSING),
        ("d1", "echo meh >&2; exit 1", WARNING),
        ("d2", "exit 3", CRITICAL),
    ] {
        let def = check(|d| {
            d.docker_container_id = name.clone();
            d.args = sh(script);
            d.interval = Some(GoDuration(Duration::from_millis(300)));
        });
        h.runner.start(id, &def, false).unwrap();
        let u = h.wait_status(id, status).await;
        let expected = match id {
            "d0" => "ok\n",
            "d1" => "meh\n",
            _ => "",
        };
        assert_eq!(u.output, expected);
    }
    h.runner.shutdown().await;
    docker
        .remove_container(
            &name,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await
        .unwrap();
}

fn docker_unavailable(error: &str) {
    if std::env::var("REGISTRY_REQUIRE_DOCKER").as_deref() == Ok("1") {
        panic!("Docker is required (REGISTRY_REQUIRE_DOCKER=1) but not reachable: {error}");
    }
    tracing::warn!(%error, "Docker daemon not reachable: skipping docker check test");
}
