//! The UDP path. hickory-server's UDP loop spawns a task per question and
//! sends each reply through a channel back to the socket's task: three task
//! switches and wakeups per query, which cost more than the answer itself.
//! Here one thread per core blocks in `recvfrom` on its own `SO_REUSEPORT`
//! socket, answers from the store and sends in place. Questions that must
//! wait (recursors, a client agent's server, a read barrier) go to a task on
//! the agent's runtime. TCP stays on hickory-server ([`super::server::serve`]).

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::server::{DnsHandler, Reply};

/// Largest query read (EDNS queries are far smaller; bigger ones are cut and fail to parse).
const RECV_BUFFER: usize = 4096;

/// A reply never exceeds this many bytes without EDNS (RFC 1035).
const CLASSIC_UDP_LIMIT: usize = 512;

/// Binds a UDP socket with `SO_REUSEPORT`, so [`serve`] can open one more
/// per reader on the same address and let the kernel spread the clients.
pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Serves DNS over `socket` until `token` is cancelled: one reader thread
/// per core (at most four), each on its own `SO_REUSEPORT` socket when the
/// first one allows it. Plain threads blocked in `recvfrom`, like a C DNS
/// server: no reactor or waker between the packet and the answer.
pub async fn serve(handler: Arc<DnsHandler>, socket: UdpSocket, token: CancellationToken) {
    let readers = std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4));
    let mut sockets = Vec::with_capacity(readers);
    if let Ok(addr) = socket.local_addr() {
        for _ in 1..readers {
            match bind(addr) {
                Ok(s) => sockets.push(s),
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "dns: one UDP reader only");
                    break;
                }
            }
        }
    }
    sockets.push(socket);
    let runtime = tokio::runtime::Handle::current();
    let mut threads = Vec::new();
    for socket in sockets {
        let socket = match blocking(socket) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::error!(error = %e, "dns: cannot serve a UDP socket");
                continue;
            }
        };
        let (handler, token, runtime) = (handler.clone(), token.clone(), runtime.clone());
        let spawned = std::thread::Builder::new()
            .name("dns-udp".into())
            .spawn(move || read_loop(&handler, &socket, &token, &runtime));
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => tracing::error!(error = %e, "dns: cannot start a UDP reader"),
        }
    }
    token.cancelled().await;
    // The readers notice within one receive timeout.
    let _ =
        tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| drop(t.join()))).await;
}

/// How often a reader waiting for a packet checks for shutdown.
const SHUTDOWN_POLL: Duration = Duration::from_millis(250);

fn blocking(socket: UdpSocket) -> std::io::Result<std::net::UdpSocket> {
    let socket = socket.into_std()?;
    socket.set_nonblocking(false)?;
    socket.set_read_timeout(Some(SHUTDOWN_POLL))?;
    Ok(socket)
}

fn read_loop(
    handler: &Arc<DnsHandler>,
    socket: &Arc<std::net::UdpSocket>,
    token: &CancellationToken,
    runtime: &tokio::runtime::Handle,
) {
    let mut buf = vec![0u8; RECV_BUFFER];
    while !token.is_cancelled() {
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "dns: UDP receive failed");
                continue;
            }
        };
        // Port 0 cannot be answered (and is a classic reflection trick).
        if peer.port() == 0 {
            continue;
        }
        let Ok(request) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if request.metadata.message_type != MessageType::Query {
            continue;
        }
        let Some((qname, qtype)) = question(&request) else {
            let reply = Reply::code(if request.metadata.op_code == OpCode::Query {
                ResponseCode::FormErr
            } else {
                ResponseCode::NotImp
            });
            send(handler, socket, &request, reply, peer);
            continue;
        };
        let no_edns = request.edns.is_none();
        match handler.reply_now(&qname, qtype, no_edns) {
            Some(reply) => send(handler, socket, &request, reply, peer),
            None => {
                // Recursors, a server's answer, a read barrier: wait elsewhere.
                let (handler, socket) = (handler.clone(), socket.clone());
                runtime.spawn(async move {
                    let reply = handler.reply(&qname, qtype, no_edns).await;
                    send(&handler, &socket, &request, reply, peer);
                });
            }
        }
    }
}

/// The one question of a standard query.
fn question(
    request: &Message,
) -> Option<(
    hickory_server::proto::rr::Name,
    hickory_server::proto::rr::RecordType,
)> {
    if request.metadata.op_code != OpCode::Query || request.queries.len() != 1 {
        return None;
    }
    let q = &request.queries[0];
    Some((q.name().clone(), q.query_type()))
}

fn send(
    handler: &DnsHandler,
    socket: &std::net::UdpSocket,
    request: &Message,
    reply: Reply,
    peer: SocketAddr,
) {
    let Some(bytes) = encode(handler, request, reply) else {
        return;
    };
    // A UDP send does not wait for the peer; at worst for buffer space.
    if let Err(e) = socket.send_to(&bytes, peer) {
        tracing::debug!(%peer, error = %e, "dns: cannot send a UDP reply");
    }
}

/// The reply's wire form, fitted to the client's buffer (512 bytes without
/// EDNS): when it does not fit, the additionals go, then answers from the
/// end, and TC is set so the client retries over TCP.
fn encode(handler: &DnsHandler, request: &Message, reply: Reply) -> Option<Vec<u8>> {
    let mut m = Message::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    m.metadata = handler.metadata(&request.metadata, &reply);
    m.queries = request.queries.clone();
    if let Some(a) = reply.answer {
        m.answers = a.answers;
        m.authorities = a.authority;
        m.additionals = a.additionals;
    }
    let limit = match &request.edns {
        Some(e) => {
            let size = e.max_payload().max(CLASSIC_UDP_LIMIT as u16);
            let mut out = Edns::new();
            out.set_max_payload(size);
            m.set_edns(out);
            usize::from(size)
        }
        None => CLASSIC_UDP_LIMIT,
    };
    let mut bytes = m.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    m.metadata.truncation = true;
    m.additionals.clear();
    loop {
        bytes = m.to_vec().ok()?;
        if bytes.len() <= limit || (m.answers.is_empty() && m.authorities.is_empty()) {
            return Some(bytes);
        }
        if m.answers.is_empty() {
            m.authorities.clear();
            continue;
        }
        // Shrink in proportion first, then one by one.
        let keep = (m.answers.len() * limit / bytes.len()).min(m.answers.len() - 1);
        m.answers.truncate(keep);
    }
}
