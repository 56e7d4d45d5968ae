//! `--client`: kv's own `NodeClient` against raw frames on one kv node
//! (`sync = never`), 256 requests in flight on one connection, GET and SET,
//! rounds alternating; each figure is the median of the rounds and the
//! table gives NodeClient/raw (issue 14's target: ≥ 0.8×). No redis here.

use std::sync::Arc;

use anyhow::Result;
use kv_node::{ClientOptions, NodeClient};
use kv_router::SyncMode;

use crate::conn::{Conn, Proto};
use crate::workload::{self, Data, Op};
use crate::{Args, DEPTH, KEYS, VALUE_BYTES, fmt, loadavg, median, runtime, servers};

pub fn run(a: &Args) -> Result<()> {
    let load_before = loadavg();
    let node_rt = runtime("kv-node")?;
    let client_rt = runtime("client")?;
    let data = Arc::new(Data::new(KEYS, VALUE_BYTES));
    let kv = servers::Kv::start(&node_rt, SyncMode::Never, &a.dir)?;
    let rounds = a.pipelined_ops / DEPTH;
    // (op, raw runs, NodeClient runs)
    let mut runs: Vec<(&str, Vec<f64>, Vec<f64>)> = vec![
        ("GET", Vec::new(), Vec::new()),
        ("SET", Vec::new(), Vec::new()),
    ];
    client_rt.block_on(async {
        servers::wait_ready(Proto::Kv, &kv.addr).await?;
        let mut raw = Conn::connect(Proto::Kv, &kv.addr).await?;
        workload::preload(&mut raw, &data).await?;
        let client = NodeClient::new(0, kv.addr.clone(), ClientOptions::default());
        for round in 0..a.rounds {
            eprintln!("round {}/{} ({})", round + 1, a.rounds, loadavg());
            for (op, raw_runs, client_runs) in &mut runs {
                let op = if *op == "GET" { Op::Get } else { Op::Set };
                let seed = 0x5EED + round as u64;
                // Alternate which goes first, so neither always runs warm.
                for first_raw in [round % 2 == 0, round % 2 != 0] {
                    if first_raw {
                        let r =
                            workload::pipelined(&mut raw, &data, op, DEPTH, rounds, seed).await?;
                        raw_runs.push(r);
                    } else {
                        let r = workload::node_client_pipelined(
                            &client, &data, op, DEPTH, rounds, seed,
                        )
                        .await?;
                        client_runs.push(r);
                    }
                }
            }
        }
        anyhow::Ok(())
    })?;
    kv.stop(&node_rt)?;
    println!(
        "NodeClient vs raw frames, one kv node (sync = never), {DEPTH} in flight on one \
         connection, {} requests per run, medians of {} rounds.",
        a.pipelined_ops, a.rounds
    );
    println!(
        "Load average before: {load_before}; after: {}.\n",
        loadavg()
    );
    println!("| op | raw ops/s | NodeClient ops/s | NodeClient/raw | raw runs | NodeClient runs |");
    println!("|---|---:|---:|---:|---|---|");
    for (op, raw_runs, client_runs) in &runs {
        let (r, c) = (median(raw_runs), median(client_runs));
        let list = |v: &Vec<f64>| v.iter().map(|x| fmt(*x)).collect::<Vec<_>>().join(", ");
        println!(
            "| {op} | {} | {} | {:.2} | {} | {} |",
            fmt(r),
            fmt(c),
            c / r,
            list(raw_runs),
            list(client_runs)
        );
    }
    Ok(())
}
