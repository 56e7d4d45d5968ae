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

/// `tokio::task::spawn_blocking`, except under `sim`: there the call runs
/// on the simulated host's own thread, as a task, when the scheduler
/// polls it. A blocking-pool thread would finish in wall time, and the
/// simulation would see its result in whichever tick it happened to land
/// in; inline, store calls take no simulated time and happen in the same
/// order on every run.
#[cfg(feature = "server")]
pub(crate) fn spawn_blocking<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    #[cfg(not(feature = "sim"))]
    {
        tokio::task::spawn_blocking(f)
    }
    #[cfg(feature = "sim")]
    {
        tokio::task::spawn(async move { f() })
    }
}

/// Now, by the runtime's clock, as a `std::time::Instant`: the system's
/// clock in a normal build; under `sim` (or tokio's paused test clock)
/// the simulated one, so deadlines, leases and failure detection that are
/// measured in `std::time::Instant` follow simulated time.
#[cfg(feature = "server")]
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
