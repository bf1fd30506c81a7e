//! Datagram transports for the gossip runtime.
//!
//! The runtime hands a transport sealed datagrams (see `crypto`) and reads sealed
//! datagrams back; it never knows whether they crossed a UDP socket or an in-memory
//! channel. [`UdpTransport`] is the real one and takes an already-bound socket (port 0
//! in tests, the agent's `serf_lan`/`serf_wan` listener in production).
//! [`ChannelNetwork`] is an in-process network with fault switches for tests.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Largest datagram we accept (UDP payload maximum); the runtime sends far less.
const MAX_DATAGRAM: usize = 65_507;

/// A datagram transport.
pub trait Transport: Send + 'static {
    /// The address peers reach us at.
    fn local_addr(&self) -> SocketAddr;

    /// Best-effort send of one datagram (UDP semantics: may be dropped). Never blocks:
    /// the one gossip task must not stall on a slow peer.
    fn send_to(&self, to: SocketAddr, packet: &[u8]) -> io::Result<()>;

    /// Receives the next datagram. Must be cancel-safe: the runtime `select!`s on it.
    fn recv(&mut self) -> impl Future<Output = io::Result<(SocketAddr, Vec<u8>)>> + Send;
}

/// Gossip over a UDP socket the caller bound.
#[derive(Debug)]
pub struct UdpTransport {
    socket: UdpSocket,
    /// A clone of the same (non-blocking) socket for synchronous sends. tokio's
    /// `try_send_to` reports `WouldBlock` until the reactor has seen the socket
    /// writable, which would silently drop the first datagrams.
    sender: std::net::UdpSocket,
    local: SocketAddr,
    buf: Vec<u8>,
}

impl UdpTransport {
    /// Wraps an already-bound socket (we never bind here; see STYLE practice 3).
    pub fn new(socket: UdpSocket) -> io::Result<Self> {
        let std_socket = socket.into_std()?;
        let sender = std_socket.try_clone()?;
        let socket = UdpSocket::from_std(std_socket)?;
        let local = socket.local_addr()?;
        Ok(UdpTransport {
            socket,
            sender,
            local,
            buf: vec![0; MAX_DATAGRAM],
        })
    }
}

impl Transport for UdpTransport {
    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn send_to(&self, to: SocketAddr, packet: &[u8]) -> io::Result<()> {
        if link_cut(self.local, to) {
            return Ok(());
        }
        match self.sender.send_to(packet, to) {
            // A full socket buffer is a dropped datagram; SWIM tolerates loss.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            other => other.map(drop),
        }
    }

    async fn recv(&mut self) -> io::Result<(SocketAddr, Vec<u8>)> {
        loop {
            // `recv_from` is cancel-safe: no datagram is consumed unless it returns.
            let (n, from) = self.socket.recv_from(&mut self.buf).await?;
            if link_cut(from, self.local) {
                continue;
            }
            return Ok((from, self.buf[..n].to_vec()));
        }
    }
}

/// Whether a test cut the link (always false outside tests).
fn link_cut(from: SocketAddr, to: SocketAddr) -> bool {
    #[cfg(feature = "test-util")]
    {
        faults::is_cut(from, to)
    }
    #[cfg(not(feature = "test-util"))]
    {
        let _ = (from, to);
        false
    }
}

/// Cut links between UDP gossip addresses, for tests of agents on real
/// sockets in one process (addresses are unique per test, so one table serves
/// tests running in parallel).
#[cfg(feature = "test-util")]
pub mod faults {
    use std::collections::HashSet;
    use std::net::SocketAddr;
    use std::sync::{LazyLock, Mutex};

    static CUT: LazyLock<Mutex<HashSet<(SocketAddr, SocketAddr)>>> = LazyLock::new(Mutex::default);

    /// Cuts (or restores) the link between `a` and `b`, both directions.
    pub fn set(a: SocketAddr, b: SocketAddr, cut: bool) {
        let mut links = CUT.lock().expect("faults lock");
        for pair in [(a, b), (b, a)] {
            if cut {
                links.insert(pair);
            } else {
                links.remove(&pair);
            }
        }
    }

    /// True when datagrams from `from` to `to` are dropped.
    pub fn is_cut(from: SocketAddr, to: SocketAddr) -> bool {
        let links = CUT.lock().expect("faults lock");
        !links.is_empty() && links.contains(&(from, to))
    }
}

type Datagram = (SocketAddr, Vec<u8>);

#[derive(Debug, Default)]
struct NetState {
    nodes: HashMap<SocketAddr, mpsc::UnboundedSender<Datagram>>,
    /// Cut links, stored in both directions.
    cut: HashSet<(SocketAddr, SocketAddr)>,
    isolated: HashSet<SocketAddr>,
    next_port: u16,
}

/// An in-memory datagram network for tests: each [`ChannelTransport`] has an address;
/// links can be cut ([`partition`](Self::partition), [`isolate`](Self::isolate)) and
/// restored ([`heal`](Self::heal)). Delivery is immediate and in order unless cut.
#[derive(Debug, Clone, Default)]
pub struct ChannelNetwork {
    state: Arc<Mutex<NetState>>,
}

impl ChannelNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// Attaches a node at the next free loopback address (`127.0.0.1:20000+n`).
    pub fn add_node(&self) -> ChannelTransport {
        let addr = {
            let mut st = self.lock();
            st.next_port += 1;
            SocketAddr::from(([127, 0, 0, 1], 20_000 + st.next_port))
        };
        self.attach(addr)
    }

    /// Attaches a node at `addr` (replacing any previous node there, like a restart).
    pub fn attach(&self, addr: SocketAddr) -> ChannelTransport {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().nodes.insert(addr, tx);
        ChannelTransport {
            net: self.clone(),
            addr,
            rx,
        }
    }

    /// Cuts the link between `a` and `b` in both directions.
    pub fn partition(&self, a: SocketAddr, b: SocketAddr) {
        let mut st = self.lock();
        st.cut.insert((a, b));
        st.cut.insert((b, a));
    }

    /// Cuts every link of `a`.
    pub fn isolate(&self, a: SocketAddr) {
        self.lock().isolated.insert(a);
    }

    /// Restores every link.
    pub fn heal(&self) {
        let mut st = self.lock();
        st.cut.clear();
        st.isolated.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NetState> {
        self.state.lock().expect("channel network poisoned")
    }

    fn deliver(&self, from: SocketAddr, to: SocketAddr, packet: &[u8]) {
        let st = self.lock();
        if st.cut.contains(&(from, to)) || st.isolated.contains(&from) || st.isolated.contains(&to)
        {
            return;
        }
        if let Some(tx) = st.nodes.get(&to) {
            // A closed receiver is a stopped node: the datagram is lost, as on UDP.
            let _ = tx.send((from, packet.to_vec()));
        }
    }
}

/// One node's end of a [`ChannelNetwork`].
#[derive(Debug)]
pub struct ChannelTransport {
    net: ChannelNetwork,
    addr: SocketAddr,
    rx: mpsc::UnboundedReceiver<Datagram>,
}

impl Transport for ChannelTransport {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn send_to(&self, to: SocketAddr, packet: &[u8]) -> io::Result<()> {
        self.net.deliver(self.addr, to, packet);
        Ok(())
    }

    async fn recv(&mut self) -> io::Result<(SocketAddr, Vec<u8>)> {
        self.rx
            .recv()
            .await
            .ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "channel network closed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn channel_network_delivers_and_cuts() {
        let net = ChannelNetwork::new();
        let (mut a, mut b) = (net.add_node(), net.add_node());
        a.send_to(b.local_addr(), b"hi").unwrap();
        assert_eq!(b.recv().await.unwrap(), (a.local_addr(), b"hi".to_vec()));
        net.partition(a.local_addr(), b.local_addr());
        b.send_to(a.local_addr(), b"lost").unwrap();
        net.heal();
        net.isolate(b.local_addr());
        b.send_to(a.local_addr(), b"lost too").unwrap();
        net.heal();
        b.send_to(a.local_addr(), b"back").unwrap();
        assert_eq!(a.recv().await.unwrap().1, b"back");
    }

    #[tokio::test]
    async fn udp_transport_round_trip() {
        let a = UdpTransport::new(UdpSocket::bind("127.0.0.1:0").await.unwrap()).unwrap();
        let mut b = UdpTransport::new(UdpSocket::bind("127.0.0.1:0").await.unwrap()).unwrap();
        a.send_to(b.local_addr(), b"ping").unwrap();
        let (from, data) = b.recv().await.unwrap();
        assert_eq!((from, data.as_slice()), (a.local_addr(), &b"ping"[..]));
    }
}
