//! This node's Raft member, behind a gate that stopping shuts first.

use std::future::Future;

use kv_control::openraft::{EmptyNode, RaftMetrics};
use kv_router::NodeId;
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

/// This node's openraft member, with a gate in front of its API.
///
/// openraft logs an error for every API call that reaches a stopped
/// member, and for every call a member stops under. Peers keep sending a
/// stopping node Raft RPCs until they stop too, and its own controller
/// loop may be proposing, so without the gate a whole cluster stopping
/// together printed such an error now and then (seen as noise on the
/// stderr of one-shot `kv` commands). Every call therefore goes through
/// [`Member::call`], and [`Member::stop`] shuts the gate before it stops
/// the member: calls in flight are dropped (their answers never read),
/// later ones are refused.
pub(crate) struct Member {
    raft: kv_control::Raft,
    /// Whether the member has been stopped. A call holds a read guard
    /// while it runs, so `stop`, holding the write guard, knows none runs.
    stopped: RwLock<bool>,
    /// Cancelled when the gate shuts: calls in flight give up, later ones
    /// return at once.
    closing: CancellationToken,
}

impl Member {
    pub fn new(raft: kv_control::Raft) -> Member {
        Member {
            raft,
            stopped: RwLock::new(false),
            closing: CancellationToken::new(),
        }
    }

    /// The member's metrics (read without calling into the member, so at
    /// any time).
    pub fn metrics(&self) -> RaftMetrics<NodeId, EmptyNode> {
        self.raft.metrics().borrow().clone()
    }

    /// Runs `call` with the member, unless the gate is shut or shuts
    /// while it runs (then `None`, and the call is dropped unfinished).
    pub async fn call<F, Fut>(&self, call: F) -> Option<Fut::Output>
    where
        F: FnOnce(kv_control::Raft) -> Fut,
        Fut: Future,
    {
        let _running = self.stopped.read().await;
        tokio::select! {
            biased;
            () = self.closing.cancelled() => None,
            out = call(self.raft.clone()) => Some(out),
        }
    }

    /// Shuts the gate, waits until no call runs, and stops the member
    /// (once: later calls of `stop` only wait).
    pub async fn stop(&self) {
        self.closing.cancel();
        let mut stopped = self.stopped.write().await;
        if !std::mem::replace(&mut *stopped, true) {
            let _ = self.raft.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use kv_router::{ClusterConfig, ClusterMap};

    use super::*;
    use crate::control::network::Network;
    use crate::options::NodeOptions;

    /// A call the gate shuts under is dropped rather than awaited, and
    /// calls after it are refused without running.
    #[tokio::test]
    async fn stopping_drops_calls_in_flight_and_refuses_later_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (log, machine) = kv_control::storage::open(dir.path()).unwrap();
        let map = ClusterMap::new(&ClusterConfig::default_topology()).unwrap();
        let network = Network {
            options: NodeOptions::new(0, map, dir.path()),
        };
        let config = kv_control::openraft::Config::default().validate().unwrap();
        let raft = kv_control::Raft::new(0, Arc::new(config), network, log, machine)
            .await
            .unwrap();
        let member = Arc::new(Member::new(raft));
        let waiting = {
            let member = Arc::clone(&member);
            tokio::spawn(async move {
                member
                    .call(|_| std::future::pending::<()>())
                    .await
            })
        };
        tokio::task::yield_now().await;
        tokio::time::timeout(std::time::Duration::from_secs(10), member.stop())
            .await
            .expect("stop does not wait for a call that never ends");
        assert_eq!(waiting.await.unwrap(), None, "the call in flight was dropped");
        let ran = AtomicBool::new(false);
        let later = member
            .call(|_| async { ran.store(true, Ordering::SeqCst) })
            .await;
        assert_eq!(later, None);
        assert!(!ran.load(Ordering::SeqCst), "refused calls never run");
        member.stop().await;
    }
}
