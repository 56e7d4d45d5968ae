//! kv-codec: versioned binary value schemas (work in progress).
