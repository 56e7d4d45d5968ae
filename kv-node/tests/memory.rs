//! Memory from headers (issue 8): 100 connections each sending an almost
//! complete 16 MiB frame. Alone in its test binary, so the process RSS is
//! this test's.
// Real sockets on a real runtime: not under the simulator (feature `sim`).
#![cfg(not(feature = "sim"))]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{TestCluster, raw};
use kv_node::protocol::DEFAULT_MAX_FRAME_BYTES;
use kv_node::{ClientOptions, NodeClient, NodeOptions};
use kv_router::ClusterConfig;
use tokio::io::AsyncWriteExt;

const CONNECTIONS: usize = 100;
/// The node's budget for partly received requests (the default).
const BUDGET: usize = 256 << 20;
/// Stated bound on RSS growth: the budget plus 144 MiB for the
/// per-connection allowance, buffers and the runtime.
const BOUND: usize = BUDGET + (144 << 20);

/// `VmRSS` and `VmHWM` (peak) of this process, in bytes.
fn rss() -> (usize, usize) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<usize>().ok())
            .map(|kb| kb * 1024)
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn budget(o: &mut NodeOptions) {
    o.max_inflight_request_bytes = BUDGET;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_almost_complete_frames_stays_under_the_bound() {
    let mut config = ClusterConfig::default_topology();
    config.nodes.truncate(1);
    config.replication_factor = 1;
    let cluster = TestCluster::start_with(config, budget).await;
    let addr = cluster.node(0).local_addr().to_string();
    // One shared, touched buffer: the announced length and almost all of it.
    let len = DEFAULT_MAX_FRAME_BYTES - 16;
    let mut frame = (len as u32).to_be_bytes().to_vec();
    frame.extend(std::iter::repeat_n(1u8, len - 1024));
    let frame = Bytes::from(frame);
    let mut sockets = Vec::new();
    for _ in 0..CONNECTIONS {
        sockets.push(raw::client(&addr, None).await);
    }
    let (before, _) = rss();

    let sends: Vec<_> = sockets
        .into_iter()
        .map(|mut s| {
            let frame = frame.clone();
            tokio::spawn(async move {
                let sent = s.write_all(&frame).await.is_ok();
                (s, sent)
            })
        })
        .collect();
    let mut held = Vec::new();
    let mut refused = 0;
    for send in sends {
        let (s, sent) = tokio::time::timeout(Duration::from_secs(120), send)
            .await
            .expect("sends finish")
            .unwrap();
        refused += usize::from(!sent);
        held.push(s);
    }
    // Let the node read what the sockets still hold.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (now, peak) = rss();
    let mb = |b: usize| b as f64 / (1 << 20) as f64;
    println!(
        "RSS before {:.0} MiB, peak {:.0} MiB, now {:.0} MiB (growth {:.0} MiB, bound {:.0} MiB); {refused} of {CONNECTIONS} senders refused",
        mb(before),
        mb(peak),
        mb(now),
        mb(peak.saturating_sub(before)),
        mb(BOUND)
    );
    assert!(
        peak.saturating_sub(before) < BOUND,
        "RSS grew by {:.0} MiB",
        mb(peak - before)
    );
    // The node still serves.
    let c = NodeClient::new(0, addr, ClientOptions::default());
    assert_eq!(c.ping().await.unwrap(), 0);
    drop(held);
    cluster.shutdown().await;
}
