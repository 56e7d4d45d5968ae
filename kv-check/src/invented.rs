//! No invented values: every value a read returned was written by a put to
//! the same key that was invoked before the read returned and did not
//! fail.
//!
//! This is the one property stale reads ([`StaleGet`](crate::Call::StaleGet)) are held to:
//! a follower may be behind, but it may not make values up. For leader
//! reads it is implied by linearizability; checking it separately still
//! names the cause plainly (and points at a replica serving garbage, a
//! value from a failed put that leaked into the log, or a reordering of
//! a put after a read that saw it).

use std::collections::HashMap;
use std::hash::Hash;

use crate::history::{Op, Outcome, Time};

/// The positions (in `ops`, all on one key) of reads that returned an
/// invented value.
pub(crate) fn invented_reads<K, V: Eq + Hash>(ops: &[&Op<K, V>]) -> Vec<usize> {
    let first_put = first_put_times(ops);
    ops.iter()
        .enumerate()
        .filter(|(_, op)| is_invented(op, &first_put))
        .map(|(i, _)| i)
        .collect()
}

/// For each value: the earliest invocation of a put of it that did not
/// fail.
fn first_put_times<'a, K, V: Eq + Hash>(ops: &[&'a Op<K, V>]) -> HashMap<&'a V, Time> {
    let mut first = HashMap::new();
    for op in ops {
        if let (Some(value), Outcome::Ok | Outcome::Unknown) = (op.call.put_value(), &op.outcome) {
            let time = first.entry(value).or_insert(op.invoked);
            *time = (*time).min(op.invoked);
        }
    }
    first
}

/// Whether `op` is a read of a value no eligible put wrote.
fn is_invented<K, V: Eq + Hash>(op: &Op<K, V>, first_put: &HashMap<&V, Time>) -> bool {
    let Outcome::Value(Some(value)) = &op.outcome else {
        return false;
    };
    if !op.call.is_read() {
        return false;
    }
    let returned = op.returned.unwrap_or(Time::MAX);
    first_put
        .get(value)
        .is_none_or(|&invoked| invoked > returned)
}
