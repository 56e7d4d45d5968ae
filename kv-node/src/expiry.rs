//! Key expiry at the leader (placeholder until kv-storage has expiry).

use crate::error::ErrorCode;
use crate::protocol::{Keyspace, Response};
use crate::server::{Shared, error_reply};

pub(crate) async fn execute(_shared: &Shared, _op: Keyspace) -> Response {
    error_reply(
        ErrorCode::InvalidRequest,
        None,
        "expiry is not available yet".into(),
    )
}
