//! The RESP2 front door: Redis clients talk to any kv node.
//!
//! # Why
//!
//! kv's own protocol ([`crate::protocol`]) needs kv's client, which knows
//! the value encoding, the partition function and placement. Speaking RESP2
//! as well makes every Redis client (redis-cli, redis-benchmark, redis-py,
//! redis-rs, go-redis, ...) a kv client with no kv code at all.
//!
//! # Model
//!
//! - **Any node serves any key.** kv partitions keys with xxh3, not
//!   Redis's CRC16 slots, so redirecting a client (`-MOVED`) would only
//!   confuse cluster-aware clients. Instead a node runs each command on
//!   the key's partition leader: in process when it leads the partition
//!   itself, otherwise over its internal [`crate::ClusterClient`] (one pooled,
//!   pipelining connection per node), relaying the answer (`route`). Reads
//!   follow the `ClusterClient` rules: the leader, or a follower (possibly
//!   stale) when the leader is unreachable or recovering.
//! - **Atomic commands are decided at the leader.** `SET … NX|XX|GET`,
//!   `GETSET` and `INCR`/`DECR`/`INCRBY`/`DECRBY` go to the leader as one
//!   `Conditional` operation that reads, decides and writes under the
//!   replica's per-key lock (`crate::atomic`): the same function whether
//!   the RESP node is the leader or forwards to it.
//! - **Values stay typed.** A `SET` value that is UTF-8 text classifies as
//!   V1/V2/V3 exactly as shell input does; other bytes are schema V4. `GET`
//!   returns V1 and V4 values byte for byte and V2/V3 as their text.
//! - **Errors speak Redis.** Replies use Redis's prefixes and wording
//!   (`ERR`, `NOAUTH`, `WRONGPASS`, `NOPROTO`); a partition with no
//!   writable leader answers `-TRYAGAIN`, which clients treat as
//!   retryable. `-MOVED`/`-READONLY` are never sent.
//!
//! # Layers
//!
//! - `frame`: bounded parsing of multibulk and inline commands. A declared
//!   length never sizes an allocation; argument count and command size are
//!   capped ([`Limits`]).
//! - `reply`: [`Reply`] and its encoding.
//! - `connection`: accept loop (connection cap shared in spirit with the
//!   framed listener: its own semaphore of `max_connections`), one task per
//!   client with one read buffer; every complete command in the buffer is
//!   run in order and the replies go out in one write per batch
//!   (pipelining). A protocol error gets Redis's `-ERR Protocol error: …`
//!   and closes that connection; a client idle for `resp_idle_timeout` is
//!   closed; neither affects other clients.
//! - `scan` (`SCAN`, `KEYS`: the cluster-wide scan, glob `MATCH` filtered
//!   on the node), `expiry` (`EXPIRE`, `TTL`, `PERSIST`, `SET … EX|PX`).
//! - `commands` (dispatch and the key commands), `admin` (connection and
//!   server commands: `HELLO`, `AUTH`, `CLIENT`, `CONFIG GET`, ...),
//!   `info` (`INFO`, `DBSIZE`), `table` (the command table: names and
//!   arities checked before dispatch, `COMMAND` and `COMMAND DOCS`),
//!   `route` (local or forwarded execution, error mapping).
//!
//! # Not here
//!
//! RESP3, transactions (`MULTI`), pub/sub, scripting, `EXPIREAT` and the
//! `EXPIRE` options (`NX`/`XX`/`GT`/`LT`), databases other than 0, and
//! `-MOVED` redirection.

mod admin;
mod commands;
mod connection;
mod expiry;
mod frame;
mod info;
mod reply;
mod route;
mod scan;
mod table;

pub use frame::{FrameError, Limits};
pub use reply::Reply;

pub(crate) use connection::start;
