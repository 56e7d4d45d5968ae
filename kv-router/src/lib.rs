//! kv-router: pure cluster logic (work in progress).
