//! TCP checks, and the dialing helpers the HTTP and UDP probes share.
//!
//! Passing when a connection to `host:port` succeeds (`TCP connect <target>: Success`, or
//! `TCP+TLS connect …` when `tcp_use_tls` also completes a handshake); critical with Go's dial
//! error text otherwise (`dial tcp 127.0.0.1:80: connect: connection refused`). Like Go's
//! dialer, every resolved address is tried in order, each with its share of the timeout.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use registry_api::{CRITICAL, PASSING};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::Outcome;
use super::output::errno_text;
use super::tls;

/// Go's minimum share of the dial timeout per address (`net.partialDeadline`).
const MIN_DIAL_SHARE: Duration = Duration::from_secs(2);

/// A TCP (or TCP+TLS) connect probe.
pub(super) struct TcpCheck {
    target: String,
    timeout: Duration,
    /// TLS configuration and the `tls_server_name` override, for `tcp_use_tls`.
    tls: Option<(Arc<rustls::ClientConfig>, Option<String>)>,
}

impl TcpCheck {
    pub(super) fn new(
        target: &str,
        timeout: Duration,
        tls: Option<(Arc<rustls::ClientConfig>, Option<String>)>,
    ) -> Self {
        Self {
            target: target.to_string(),
            timeout,
            tls,
        }
    }

    pub(super) async fn run(&self) -> Outcome {
        let deadline = Instant::now() + self.timeout;
        let (host, port) = match split_host_port(&self.target) {
            Ok(hp) => hp,
            Err(e) => return Outcome::new(CRITICAL, format!("dial tcp {}: {e}", self.target)),
        };
        let stream = match dial_tcp(&host, port, deadline).await {
            Ok(stream) => stream,
            Err(e) => return Outcome::new(CRITICAL, e),
        };
        let Some((config, server_name)) = &self.tls else {
            return Outcome::new(PASSING, format!("TCP connect {}: Success", self.target));
        };
        let name = server_name.as_deref().unwrap_or(&host);
        match timeout_at(deadline, tls::connect(config.clone(), name, stream)).await {
            Ok(Ok(_)) => Outcome::new(PASSING, format!("TCP+TLS connect {}: Success", self.target)),
            Ok(Err(e)) => Outcome::new(CRITICAL, e),
            Err(_) => Outcome::new(CRITICAL, "tls: handshake timeout".to_string()),
        }
    }
}

/// Splits `host:port` (`[v6]:port` for IPv6) the way Go's `net.SplitHostPort` does.
pub(super) fn split_host_port(target: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = target.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("address {target}: missing ']' in address"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| format!("address {target}: missing port in address"))?;
        (host, port)
    } else {
        let (host, port) = target
            .rsplit_once(':')
            .ok_or_else(|| format!("address {target}: missing port in address"))?;
        if host.contains(':') {
            return Err(format!("address {target}: too many colons in address"));
        }
        (host, port)
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("address {target}: invalid port"))?;
    Ok((host.to_string(), port))
}

/// Resolves `host` (an empty host is the local system, as in Go). Errors are Go's
/// `lookup <host>: no such host`.
pub(super) async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    if host.is_empty() {
        return Ok(vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
        ]);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(format!("lookup {host}: no such host"))
            } else {
                Ok(addrs)
            }
        }
        Err(e) => {
            tracing::debug!(%host, error = %e, "check lookup failed");
            Err(format!("lookup {host}: no such host"))
        }
    }
}

/// Connects to the first address of `host` that answers before `deadline`. The error is the
/// first address's, formatted like Go's `*net.OpError`.
pub(super) async fn dial_tcp(
    host: &str,
    port: u16,
    deadline: Instant,
) -> Result<TcpStream, String> {
    let addrs = timeout_at(deadline, resolve(host, port))
        .await
        .map_err(|_| format!("dial tcp: lookup {host}: i/o timeout"))?
        .map_err(|e| format!("dial tcp: {e}"))?;
    let mut first_error = None;
    for (i, addr) in addrs.iter().enumerate() {
        let now = Instant::now();
        if now >= deadline {
            first_error.get_or_insert_with(|| format!("dial tcp {addr}: i/o timeout"));
            break;
        }
        // Later addresses still get a chance when an earlier one black-holes.
        let remaining = deadline - now;
        let left = u32::try_from(addrs.len() - i).unwrap_or(u32::MAX);
        let share = (remaining / left).max(MIN_DIAL_SHARE).min(remaining);
        match timeout_at(now + share, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => {
                first_error
                    .get_or_insert_with(|| format!("dial tcp {addr}: connect: {}", errno_text(&e)));
            }
            Err(_) => {
                first_error.get_or_insert_with(|| format!("dial tcp {addr}: i/o timeout"));
            }
        }
    }
    Err(first_error.unwrap_or_else(|| format!("dial tcp: lookup {host}: no such host")))
}
