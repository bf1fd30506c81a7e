//! UDP checks (Consul's `CheckUDP`).
//!
//! UDP has no handshake, so the probe sends one (empty, as Consul's) datagram on a connected
//! socket and waits up to the timeout for a reply. A reply or silence is passing
//! (`UDP connect <target>: Success`); a failed send, or an ICMP port-unreachable, which a
//! connected socket surfaces as `ECONNREFUSED` on the next receive, is critical with Go's
//! error text (`read udp 127.0.0.1:5000->127.0.0.1:53: read: connection refused`).
//! Consul's read has no deadline at all; here the check's timeout bounds it.

use std::net::SocketAddr;
use std::time::Duration;

use registry_api::{CRITICAL, PASSING};
use tokio::net::UdpSocket;
use tokio::time::timeout;

use super::Outcome;
use super::output::errno_text;
use super::tcp::{resolve, split_host_port};

/// A UDP probe.
pub(super) struct UdpCheck {
    target: String,
    timeout: Duration,
}

impl UdpCheck {
    pub(super) fn new(target: &str, timeout: Duration) -> Self {
        Self {
            target: target.to_string(),
            timeout,
        }
    }

    pub(super) async fn run(&self) -> Outcome {
        match self.probe().await {
            Ok(()) => Outcome::new(PASSING, format!("UDP connect {}: Success", self.target)),
            Err(e) => Outcome::new(CRITICAL, e),
        }
    }

    async fn probe(&self) -> Result<(), String> {
        let (host, port) =
            split_host_port(&self.target).map_err(|e| format!("dial udp {}: {e}", self.target))?;
        // Go's UDP dial uses the first resolved address.
        let addr = *resolve(&host, port)
            .await
            .map_err(|e| format!("dial udp: {e}"))?
            .first()
            .ok_or_else(|| format!("dial udp: lookup {host}: no such host"))?;
        let bind: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0".parse().expect("valid address")
        } else {
            "[::]:0".parse().expect("valid address")
        };
        let socket = UdpSocket::bind(bind)
            .await
            .map_err(|e| format!("dial udp {addr}: socket: {}", errno_text(&e)))?;
        socket
            .connect(addr)
            .await
            .map_err(|e| format!("dial udp {addr}: connect: {}", errno_text(&e)))?;
        let local = socket
            .local_addr()
            .map_err(|e| format!("dial udp {addr}: {}", errno_text(&e)))?;
        socket
            .send(&[])
            .await
            .map_err(|e| format!("write udp {local}->{addr}: write: {}", errno_text(&e)))?;
        let mut buf = [0u8; 1];
        match timeout(self.timeout, socket.recv(&mut buf)).await {
            // Silence until the timeout is what a healthy UDP service usually gives.
            Err(_) | Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!(
                "read udp {local}->{addr}: read: {}",
                errno_text(&e)
            )),
        }
    }
}
