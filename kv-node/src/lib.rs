//! kv-node: node server, protocol, replication and clients (work in progress).
