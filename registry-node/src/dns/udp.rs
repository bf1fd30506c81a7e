//! The UDP path. hickory-server's UDP loop spawns a task per question and
//! sends each reply through a channel back to the socket's task: three task
//! switches and wakeups per query, which cost more than the answer itself.
//! Here a few reader tasks share the socket; each receives, answers from the
//! store and sends in place, so a query costs one wakeup. Questions that must
//! wait (recursors, a client agent's server, a read barrier) go to a spawned
//! task. TCP stays on hickory-server ([`super::server::serve`]).

use std::net::SocketAddr;
use std::sync::Arc;

use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;
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

/// Serves DNS over `socket` until `token` is cancelled: one reader per core
/// (at most four), each on its own `SO_REUSEPORT` socket when the first one
/// allows it.
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
    let mut tasks = JoinSet::new();
    for socket in sockets {
        tasks.spawn(read_loop(handler.clone(), Arc::new(socket)));
    }
    token.cancelled().await;
    tasks.abort_all();
}

async fn read_loop(handler: Arc<DnsHandler>, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
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
            send(&handler, &socket, &request, reply, peer).await;
            continue;
        };
        let no_edns = request.edns.is_none();
        match handler.reply_now(&qname, qtype, no_edns) {
            Some(reply) => send(&handler, &socket, &request, reply, peer).await,
            None => {
                let (handler, socket) = (handler.clone(), socket.clone());
                tokio::spawn(async move {
                    let reply = handler.reply(&qname, qtype, no_edns).await;
                    send(&handler, &socket, &request, reply, peer).await;
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

async fn send(
    handler: &DnsHandler,
    socket: &UdpSocket,
    request: &Message,
    reply: Reply,
    peer: SocketAddr,
) {
    let Some(bytes) = encode(handler, request, reply) else {
        return;
    };
    if let Err(e) = socket.send_to(&bytes, peer).await {
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
