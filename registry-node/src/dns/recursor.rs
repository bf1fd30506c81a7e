//! Forwarding of names outside our zones to the configured `recursors`, the
//! way Consul does it: the question is sent as is to each recursor in turn
//! (or in random order with `recursor_strategy = "random"`), over UDP with a
//! TCP retry when the answer is truncated; the first NOERROR or NXDOMAIN
//! answer wins, anything else moves on to the next recursor.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::proto::op::{Edns, Message, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RecordType};
use rand::seq::SliceRandom;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Parses a recursor address: `ip` (port 53) or `ip:port` / `[ipv6]:port`.
pub fn parse_recursor(text: &str) -> Option<SocketAddr> {
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

/// Asks the recursors; `None` when none gave a usable answer (SERVFAIL).
pub async fn forward(
    recursors: &[SocketAddr],
    random: bool,
    timeout: Duration,
    qname: &Name,
    qtype: RecordType,
) -> Option<Message> {
    let mut order = recursors.to_vec();
    if random {
        order.shuffle(&mut rand::rng());
    }
    let mut query = Message::query();
    query.add_query(Query::query(qname.clone(), qtype));
    query.metadata.recursion_desired = true;
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    query.set_edns(edns);
    let bytes = query.to_vec().ok()?;
    for addr in order {
        match tokio::time::timeout(timeout, exchange(addr, &bytes, query.metadata.id)).await {
            Ok(Ok(reply))
                if matches!(
                    reply.metadata.response_code,
                    ResponseCode::NoError | ResponseCode::NXDomain
                ) =>
            {
                return Some(reply);
            }
            Ok(Ok(reply)) => {
                tracing::debug!(recursor = %addr, rcode = ?reply.metadata.response_code, "dns: recursor answered with an error; trying the next");
            }
            Ok(Err(e)) => tracing::debug!(recursor = %addr, error = %e, "dns: recursor failed"),
            Err(_) => tracing::debug!(recursor = %addr, ?timeout, "dns: recursor timed out"),
        }
    }
    None
}

async fn exchange(addr: SocketAddr, bytes: &[u8], id: u16) -> std::io::Result<Message> {
    let bind: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let sock = UdpSocket::bind(bind).await?;
    sock.connect(addr).await?;
    sock.send(bytes).await?;
    let mut buf = vec![0u8; 65535];
    let reply = loop {
        let n = sock.recv(&mut buf).await?;
        match Message::from_vec(&buf[..n]) {
            Ok(m) if m.metadata.id == id => break m,
            // A stray or forged datagram: keep waiting for ours.
            _ => continue,
        }
    };
    if !reply.metadata.truncation {
        return Ok(reply);
    }
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(&(bytes.len() as u16).to_be_bytes()).await?;
    tcp.write_all(bytes).await?;
    let len = tcp.read_u16().await? as usize;
    let mut buf = vec![0u8; len];
    tcp.read_exact(&mut buf).await?;
    Message::from_vec(&buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recursor_addresses_default_to_port_53() {
        assert_eq!(parse_recursor("8.8.8.8"), Some(([8, 8, 8, 8], 53).into()));
        assert_eq!(
            parse_recursor("127.0.0.1:5353"),
            Some(([127, 0, 0, 1], 5353).into())
        );
        assert!(parse_recursor("[::1]:53").is_some());
        assert!(parse_recursor("dns.example").is_none());
    }
}
