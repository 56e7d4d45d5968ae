//! The client patterns, identical for both servers: one request at a time,
//! one connection pipelining (send a batch, then read the batch), and many
//! connections each pipelining. Keys are drawn uniformly from the preloaded
//! set; every GET reply is checked against the value, every SET must be OK.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use kv_node::NodeClient;
use tokio::sync::Barrier;

use crate::conn::{Conn, Proto};

/// GET or SET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Read a preloaded key.
    Get,
    /// Overwrite a preloaded key with the same value.
    Set,
}

/// Keys and the one value every key holds.
pub struct Data {
    /// `key:00000000` … (12 bytes each).
    pub keys: Vec<Vec<u8>>,
    /// The value bytes, identical for kv and redis (a valid kv-codec
    /// encoding, so kv accepts it as is).
    pub value: Bytes,
}

impl Data {
    /// `n` keys and a value of exactly `value_bytes` bytes.
    pub fn new(n: usize, value_bytes: usize) -> Data {
        let keys = (0..n).map(|i| format!("key:{i:08}").into_bytes()).collect();
        // A V1 text value: one version byte, the text, and a small length
        // header; grow the text until the whole encoding is the size asked.
        let mut text_len = value_bytes.saturating_sub(8);
        let value = loop {
            let v = kv_codec::Value::Text("x".repeat(text_len)).encode();
            if v.len() >= value_bytes || text_len > value_bytes {
                break v;
            }
            text_len += 1;
        };
        Data {
            keys,
            value: Bytes::from(value),
        }
    }

    fn key(&self, rng: &mut Rng) -> &[u8] {
        &self.keys[(rng.next() % self.keys.len() as u64) as usize]
    }
}

/// SplitMix64: deterministic, cheap, good enough to pick keys.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Writes every key once, pipelined 256 deep.
pub async fn preload(conn: &mut Conn, data: &Data) -> Result<()> {
    for chunk in data.keys.chunks(256) {
        for k in chunk {
            conn.push_set(k, &data.value);
        }
        conn.flush().await?;
        for _ in chunk {
            conn.read_set().await?;
        }
    }
    Ok(())
}

/// Latency figures of a one-at-a-time run.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// Median round trip, µs.
    pub p50_us: f64,
    /// 99th percentile round trip, µs.
    pub p99_us: f64,
    /// Requests per second over the whole run.
    pub ops_per_sec: f64,
}

fn summarize(mut samples: Vec<Duration>, total: Duration) -> Latency {
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q) as usize).min(samples.len().saturating_sub(1));
        samples.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    Latency {
        p50_us: at(0.50),
        p99_us: at(0.99),
        ops_per_sec: samples.len() as f64 / total.as_secs_f64(),
    }
}

async fn one(conn: &mut Conn, data: &Data, op: Op, key: &[u8]) -> Result<()> {
    match op {
        Op::Get => {
            conn.push_get(key);
            conn.flush().await?;
            conn.read_get(&data.value).await
        }
        Op::Set => {
            conn.push_set(key, &data.value);
            conn.flush().await?;
            conn.read_set().await
        }
    }
}

/// `n` requests, each sent only after the previous reply arrived.
pub async fn single(conn: &mut Conn, data: &Data, op: Op, n: usize, seed: u64) -> Result<Latency> {
    let mut rng = Rng::new(seed);
    let mut samples = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        one(conn, data, op, data.key(&mut rng)).await?;
        samples.push(t.elapsed());
    }
    Ok(summarize(samples, start.elapsed()))
}

/// `batches` rounds of: queue `depth` requests, one write, read `depth`
/// replies. Returns the request count.
async fn batches(
    conn: &mut Conn,
    data: &Data,
    op: Op,
    depth: usize,
    batches: usize,
    seed: u64,
) -> Result<usize> {
    let mut rng = Rng::new(seed);
    for _ in 0..batches {
        for _ in 0..depth {
            let key = data.key(&mut rng);
            match op {
                Op::Get => conn.push_get(key),
                Op::Set => conn.push_set(key, &data.value),
            }
        }
        conn.flush().await?;
        for _ in 0..depth {
            match op {
                Op::Get => conn.read_get(&data.value).await?,
                Op::Set => conn.read_set().await?,
            }
        }
    }
    Ok(depth * batches)
}

/// One connection pipelining `depth` deep; requests per second.
pub async fn pipelined(
    conn: &mut Conn,
    data: &Data,
    op: Op,
    depth: usize,
    rounds: usize,
    seed: u64,
) -> Result<f64> {
    let start = Instant::now();
    let n = batches(conn, data, op, depth, rounds, seed).await?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// `conns` connections (opened before the clock starts), each its own task
/// pipelining `depth` deep for `rounds` batches; requests per second.
#[allow(clippy::too_many_arguments)]
pub async fn fan_out(
    proto: Proto,
    addr: &str,
    data: &Arc<Data>,
    op: Op,
    conns: usize,
    depth: usize,
    rounds: usize,
    seed: u64,
) -> Result<f64> {
    let barrier = Arc::new(Barrier::new(conns + 1));
    let mut tasks = Vec::with_capacity(conns);
    for c in 0..conns {
        let mut conn = Conn::connect(proto, addr).await?;
        let (data, barrier) = (Arc::clone(data), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            batches(&mut conn, &data, op, depth, rounds, seed ^ c as u64).await
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut n = 0;
    for t in tasks {
        n += t.await??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// For reference: one-at-a-time through kv's own `NodeClient` (writer and
/// reader tasks, request ids matched in a map, a timeout per request).
pub async fn node_client_single(
    client: &NodeClient,
    data: &Data,
    op: Op,
    n: usize,
    seed: u64,
) -> Result<Latency> {
    let mut rng = Rng::new(seed);
    let mut samples = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let key = data.key(&mut rng);
        let t = Instant::now();
        match op {
            Op::Get => {
                let v = client.get(key).await?;
                anyhow::ensure!(v.as_ref() == Some(&data.value), "GET answered {v:?}");
            }
            Op::Set => {
                client.put(key, data.value.clone()).await?;
            }
        }
        samples.push(t.elapsed());
    }
    Ok(summarize(samples, start.elapsed()))
}

/// For reference: `depth` concurrent `NodeClient` requests at a time (its
/// writer task batches them onto the one connection).
pub async fn node_client_pipelined(
    client: &NodeClient,
    data: &Data,
    op: Op,
    depth: usize,
    rounds: usize,
    seed: u64,
) -> Result<f64> {
    let mut rng = Rng::new(seed);
    let start = Instant::now();
    for _ in 0..rounds {
        let keys: Vec<&[u8]> = (0..depth).map(|_| data.key(&mut rng)).collect();
        futures::future::try_join_all(keys.into_iter().map(|key| async move {
            match op {
                Op::Get => client.get(key).await.map(|_| ()),
                Op::Set => client.put(key, data.value.clone()).await.map(|_| ()),
            }
        }))
        .await?;
    }
    Ok((depth * rounds) as f64 / start.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_is_exactly_the_size_asked_and_valid_for_kv() {
        let d = Data::new(10, 100);
        assert_eq!(d.value.len(), 100);
        assert!(kv_codec::validate(&d.value).is_ok());
        assert_eq!(d.keys[3], b"key:00000003");
    }
}
