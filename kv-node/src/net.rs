//! The network seam: the TCP types every socket of the crate goes through.
//!
//! A normal build re-exports tokio's; with feature `sim` they are
//! turmoil's simulated sockets, so whole nodes (servers, replication,
//! control plane) and their clients run inside one turmoil simulation,
//! on simulated TCP and time. The two sets have the same names and the
//! methods this crate uses (`bind`, `accept`, `connect`, `local_addr`,
//! `peer_addr`, `set_nodelay`, `into_split`); turmoil's `bind` accepts
//! only unspecified or loopback addresses, and its `set_nodelay` does
//! nothing.

#[cfg(not(feature = "sim"))]
pub use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
#[cfg(not(feature = "sim"))]
pub use tokio::net::{TcpListener, TcpStream};

#[cfg(feature = "sim")]
pub use turmoil::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
#[cfg(feature = "sim")]
pub use turmoil::net::{TcpListener, TcpStream};

/// Waits until `socket` has bytes to read, or is closed (a read then
/// returns end of stream or the error); cancel safe. tokio's
/// `TcpStream::readable`; turmoil has no readiness API, so under `sim`
/// it is a one-byte peek (the segment stays buffered for the next read).
#[cfg(feature = "server")]
pub(crate) async fn readable(socket: &mut TcpStream) -> std::io::Result<()> {
    #[cfg(not(feature = "sim"))]
    {
        socket.readable().await
    }
    #[cfg(feature = "sim")]
    {
        socket.peek(&mut [0u8; 1]).await.map(|_| ())
    }
}
