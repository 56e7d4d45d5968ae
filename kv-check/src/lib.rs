//! kv-check: decides whether a recorded history of client operations
//! against a kv cluster is acceptable, and if not, shows the smallest
//! history that proves it.
//!
//! kv's fault tests (and later its deterministic cluster simulation)
//! record every client operation: when it was invoked, when it returned
//! and what it returned. This crate checks that record. It is a library
//! only: it never panics on its input and never prints; it returns a
//! [`Report`] whose `Display` is the readable version.
//!
//! # Modules, in data-flow order
//!
//! - `history`: the recorder. [`History::invoke`] and
//!   [`History::complete`] (or [`History::from_ops`]) build a history of
//!   [`Op`]s, refusing ops that cannot have happened.
//! - `check`: splits the history by key (a kv store is a set of
//!   independent registers, so by P-compositionality it is linearizable iff
//!   each key is) and runs the properties on each key.
//! - `linearizable`: the Wing–Gong search with Lowe's memoization, against
//!   a register that starts absent. Its module docs explain the search.
//! - `invented`: the no-invented-values property.
//! - `shrink`: greedy (delta-debugging) shrinking of a failing key's ops
//!   to a sub-history from which no single op can be removed.
//! - `report`: [`Violation`], [`Undecided`], [`Report`] and their timelines.
//!
//! # The properties
//!
//! 1. **Linearizability** ([`check_linearizable`]) of each key's
//!    [`Call::Put`], [`Call::PutTtl`], [`Call::Delete`] and [`Call::Get`]
//!    ops. A value put with a time to live may vanish within a window
//!    around its expiry that [`CheckOptions::clock_error`] widens. A
//!    [`Outcome::Failed`] op did not happen and is left out; an
//!    [`Outcome::Unknown`] write may take effect at any time after its
//!    invocation, or never; an unknown read is left out. A search that runs
//!    out of its step budget ([`CheckOptions::max_steps`]) reports the key
//!    as [`Undecided`]: neither a pass nor a violation.
//! 2. **No invented values** ([`check_no_invented_values`]): every value
//!    returned by a [`Call::Get`] or [`Call::StaleGet`] was the argument of
//!    a put to the same key, invoked before the read returned, whose
//!    outcome is not [`Outcome::Failed`]. Stale reads (a follower may answer
//!    them) are held to this property only.
//!
//! [`check`] runs both. Neither assumes values are unique per put.
//!
//! # Catching lost acknowledged writes
//!
//! No separate check is needed: after the faults stop and the cluster has
//! healed, read every key once more at the leader ([`Call::Get`]) and add
//! those reads to the history. A put that was acknowledged and then lost
//! leaves that final read returning an older value, which no linearization
//! allows (the acknowledged put returned before the read was invoked), so
//! [`check_linearizable`] reports it, with the lost put and the final read
//! in the shrunk history.
//!
//! # Example
//!
//! ```
//! use kv_check::{Call, CheckOptions, History, Outcome, Property, check};
//!
//! let mut history = History::new();
//! let put = history.invoke(1, "k", Call::Put("v1"), 100);
//! history.complete(put, Outcome::Ok, 200)?;
//! // The final read after healing misses the acknowledged put.
//! let read = history.invoke(2, "k", Call::Get, 300);
//! history.complete(read, Outcome::Value(None), 400)?;
//!
//! let report = check(&history, &CheckOptions::default());
//! assert!(!report.is_ok());
//! let violation = report.violation(Property::Linearizability).expect("a lost write");
//! assert_eq!(violation.ops.len(), 2);
//! assert_eq!(
//!     violation.ops[0].to_string(),
//!     r#"p1  [100 .. 200]  put "k" = "v1" -> ok"#
//! );
//! assert_eq!(violation.ops[1].to_string(), r#"p2  [300 .. 400]  get "k" -> absent"#);
//! # Ok::<(), kv_check::HistoryError>(())
//! ```
//!
//! # What it does not do
//!
//! It checks single-key operations only (kv has no multi-key
//! transactions), does not model time-bounded staleness for stale reads,
//! and does not measure anything: budgets are counted in search steps, not
//! wall time, so results are deterministic.

mod check;
mod history;
mod invented;
mod linearizable;
mod report;
mod shrink;

pub use check::{CheckOptions, check, check_linearizable, check_no_invented_values};
pub use history::{Call, History, HistoryError, Op, OpId, Outcome, ProcessId, Time};
pub use report::{Property, Report, Undecided, Violation};
