//! A tiny web service for the registrator demo and its Docker tests.
//!
//! * `demo-web`: serves HTTP on `PORT` (default 8080) and, when set, `PORT2`:
//!   `/` answers with the container's hostname, `/health` with 200, or 503 once
//!   the file `/tmp/unhealthy` exists (a test creates it with `docker cp`: the image
//!   has no shell). SIGTERM/SIGINT exit with `EXIT_CODE` (default 0), so a test can
//!   make `docker stop` look like a failure.
//! * `demo-web check <http://host:port/path>`: exits 0 when the URL answers 2xx,
//!   1 otherwise: the image's `HEALTHCHECK` command.

use std::convert::Infallible;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const UNHEALTHY_FLAG: &str = "/tmp/unhealthy";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("demo-web: {e}");
            return ExitCode::FAILURE;
        }
    };
    match args.first().map(String::as_str) {
        Some("check") => {
            let url = args
                .get(1)
                .map_or("http://127.0.0.1:8080/health", String::as_str);
            match runtime.block_on(check(url)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("demo-web check {url}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        None => runtime.block_on(serve()),
        Some(other) => {
            eprintln!("usage: demo-web [check URL] (unknown argument {other:?})");
            ExitCode::from(2)
        }
    }
}

async fn serve() -> ExitCode {
    let mut ports = vec![env_port("PORT").unwrap_or(8080)];
    ports.extend(env_port("PORT2"));
    for port in ports {
        let listener = match TcpListener::bind(("0.0.0.0", port)).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("demo-web: cannot listen on {port}: {e}");
                return ExitCode::FAILURE;
            }
        };
        eprintln!("demo-web: listening on {port}");
        tokio::spawn(accept_loop(listener));
    }
    let code = std::env::var("EXIT_CODE")
        .ok()
        .and_then(|c| c.parse::<u8>().ok())
        .unwrap_or(0);
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return ExitCode::FAILURE;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    ExitCode::from(code)
}

fn env_port(name: &str) -> Option<u16> {
    std::env::var(name).ok()?.parse().ok()
}

async fn accept_loop(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match req.uri().path() {
        "/" => (StatusCode::OK, format!("{}\n", hostname())),
        "/health" if std::path::Path::new(UNHEALTHY_FLAG).exists() => {
            (StatusCode::SERVICE_UNAVAILABLE, "unhealthy\n".to_string())
        }
        "/health" => (StatusCode::OK, "ok\n".to_string()),
        _ => (StatusCode::NOT_FOUND, "not found\n".to_string()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    Ok(response)
}

/// `HOSTNAME` (Docker sets it), else the kernel's.
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// A one-shot HTTP/1.0 GET of a plain `http://host:port/path` URL.
async fn check(url: &str) -> Result<(), String> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let attempt = async {
        let mut stream = TcpStream::connect(authority)
            .await
            .map_err(|e| e.to_string())?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut head = vec![0; 64];
        let n = stream.read(&mut head).await.map_err(|e| e.to_string())?;
        let line = String::from_utf8_lossy(&head[..n]);
        match line.split_whitespace().nth(1) {
            Some(code) if code.starts_with('2') => Ok(()),
            Some(code) => Err(format!("status {code}")),
            None => Err("no HTTP answer".to_string()),
        }
    };
    tokio::time::timeout(Duration::from_secs(3), attempt)
        .await
        .map_err(|_| "timed out".to_string())?
}
