//! The recorded history: one [`Op`] per client operation, with the time
//! it was invoked, the time it returned (if it did) and what it returned.
//!
//! A [`History`] is only ever built through [`History::invoke`] /
//! [`History::complete`] or [`History::from_ops`], and both refuse an op
//! that cannot have happened (a return before its invocation, a put
//! answered with a value, a known outcome without a return time). So the
//! checks never see a malformed op and need no error path of their own.

use std::fmt;

/// A point in time, in any monotonic unit the recorder chooses
/// (nanoseconds since the test started, or simulated time). Only the order
/// of times matters.
pub type Time = u64;

/// The client process (or thread, or connection) that issued an op. Only
/// shown in reports: the checks do not assume a process runs one op at a
/// time.
pub type ProcessId = u32;

/// Names an op of a [`History`]: its position in invocation-record order,
/// as returned by [`History::invoke`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub usize);

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Call<V> {
    /// Set the key to this value.
    Put(V),
    /// Set the key to this value for a time to live, in the history's
    /// time unit: the value expires that long after the write took effect,
    /// by the clock of whichever node answers a later read. With
    /// [`CheckOptions::clock_error`](crate::CheckOptions::clock_error) `e`
    /// (how far any node's clock may be from the history's), a read may
    /// find the value gone from `invoked + ttl - 2e` on, and finds it gone
    /// from `returned + ttl + 2e` on (if nothing overwrote it). In between
    /// it may come and go: reads answered by nodes whose clocks disagree.
    PutTtl(V, Time),
    /// Remove the key.
    Delete,
    /// A linearizable read, answered by the partition's leader.
    Get,
    /// A read a follower may answer, so it may be stale. Excluded from the
    /// linearizability check; only checked for invented values.
    StaleGet,
}

impl<V> Call<V> {
    /// Whether this call reads (a [`Call::Get`] or a [`Call::StaleGet`]).
    pub fn is_read(&self) -> bool {
        matches!(self, Call::Get | Call::StaleGet)
    }

    /// The value this call writes, if it is a put ([`Call::Put`] or
    /// [`Call::PutTtl`]).
    pub fn put_value(&self) -> Option<&V> {
        match self {
            Call::Put(v) | Call::PutTtl(v, _) => Some(v),
            Call::Delete | Call::Get | Call::StaleGet => None,
        }
    }
}

/// When a value put with time to live `ttl` over `[invoked, returned]`
/// may first read as absent, and (if the put returned; `None` for an
/// unknown outcome) from when it must: see [`Call::PutTtl`].
pub(crate) fn expiry_window(
    invoked: Time,
    returned: Option<Time>,
    ttl: Time,
    clock_error: Time,
) -> (Time, Option<Time>) {
    let spread = clock_error.saturating_mul(2);
    let opens = invoked.saturating_add(ttl).saturating_sub(spread);
    let closes = returned.map(|r| r.saturating_add(ttl).saturating_add(spread));
    (opens, closes)
}

/// What the client learned about an op.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome<V> {
    /// A write (put or delete) was acknowledged.
    Ok,
    /// A read's answer: the value, or `None` if the key was absent.
    Value(Option<V>),
    /// The op definitely did not take effect (the cluster refused it before
    /// applying it). Failed ops are dropped from the linearizability check,
    /// and a value written only by failed puts must never be read.
    Failed,
    /// The op may or may not have taken effect, at any time after its
    /// invocation (a timeout, a dropped connection, or no completion
    /// recorded at all). Treated as returning at +infinity, as Knossos and
    /// Porcupine do; a read with an unknown outcome tells nothing and is
    /// dropped.
    Unknown,
}

/// One client operation as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Op<K, V> {
    /// Who issued it.
    pub process: ProcessId,
    /// The key it acted on.
    pub key: K,
    /// What was asked.
    pub call: Call<V>,
    /// When the client sent it.
    pub invoked: Time,
    /// When the client got its answer (or gave up); `None` if it never did.
    pub returned: Option<Time>,
    /// What the answer was.
    pub outcome: Outcome<V>,
}

impl<K, V> Op<K, V> {
    /// The first thing wrong with this op (at position `id`), if any.
    fn validate(&self, id: OpId) -> Result<(), HistoryError> {
        if !outcome_fits_call(&self.call, &self.outcome) {
            return Err(HistoryError::OutcomeDoesNotFit { op: id });
        }
        match self.returned {
            Some(returned) if returned < self.invoked => Err(HistoryError::ReturnedBeforeInvoked {
                op: id,
                invoked: self.invoked,
                returned,
            }),
            None if !matches!(self.outcome, Outcome::Unknown) => {
                Err(HistoryError::MissingReturnTime { op: id })
            }
            _ => Ok(()),
        }
    }
}

/// Whether an outcome fits a call: writes are acknowledged with
/// [`Outcome::Ok`], reads answer with [`Outcome::Value`]; either may be
/// [`Outcome::Failed`] or [`Outcome::Unknown`].
fn outcome_fits_call<V>(call: &Call<V>, outcome: &Outcome<V>) -> bool {
    matches!(
        (call, outcome),
        (_, Outcome::Failed | Outcome::Unknown)
            | (Call::Put(_) | Call::PutTtl(..) | Call::Delete, Outcome::Ok)
            | (Call::Get | Call::StaleGet, Outcome::Value(_))
    )
}

/// Why an op could not be recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HistoryError {
    /// [`History::complete`] named an op that was never invoked.
    NoSuchOp(OpId),
    /// [`History::complete`] was called twice for the same op.
    AlreadyCompleted(OpId),
    /// An op returned before it was invoked.
    ReturnedBeforeInvoked {
        /// The op.
        op: OpId,
        /// Its invocation time.
        invoked: Time,
        /// Its (earlier) return time.
        returned: Time,
    },
    /// A write answered with a value, or a read acknowledged with
    /// [`Outcome::Ok`].
    OutcomeDoesNotFit {
        /// The op.
        op: OpId,
    },
    /// An op with a known outcome but no return time (only
    /// [`Outcome::Unknown`] may lack one).
    MissingReturnTime {
        /// The op.
        op: OpId,
    },
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistoryError::NoSuchOp(op) => write!(f, "op {} was never invoked", op.0),
            HistoryError::AlreadyCompleted(op) => write!(f, "op {} was already completed", op.0),
            HistoryError::ReturnedBeforeInvoked {
                op,
                invoked,
                returned,
            } => write!(
                f,
                "op {} returned at {returned}, before it was invoked at {invoked}",
                op.0
            ),
            HistoryError::OutcomeDoesNotFit { op } => write!(
                f,
                "op {}: a write must be answered with ok and a read with a value",
                op.0
            ),
            HistoryError::MissingReturnTime { op } => {
                write!(f, "op {} has a known outcome but no return time", op.0)
            }
        }
    }
}

impl std::error::Error for HistoryError {}

/// Every client operation of a test run, in the order they were invoked
/// (recorded).
///
/// Ops that are invoked but never completed count as
/// [`Outcome::Unknown`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History<K, V> {
    ops: Vec<Op<K, V>>,
}

impl<K, V> Default for History<K, V> {
    fn default() -> Self {
        History { ops: Vec::new() }
    }
}

impl<K, V> History<K, V> {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// A history of already recorded ops, refused if any op cannot have
    /// happened (see [`HistoryError`]).
    pub fn from_ops(ops: Vec<Op<K, V>>) -> Result<Self, HistoryError> {
        for (i, op) in ops.iter().enumerate() {
            op.validate(OpId(i))?;
        }
        Ok(History { ops })
    }

    /// Records that `process` sent `call` on `key` at time `at`. Until
    /// [`History::complete`] names the returned id, the op's outcome is
    /// unknown.
    pub fn invoke(&mut self, process: ProcessId, key: K, call: Call<V>, at: Time) -> OpId {
        self.ops.push(Op {
            process,
            key,
            call,
            invoked: at,
            returned: None,
            outcome: Outcome::Unknown,
        });
        OpId(self.ops.len() - 1)
    }

    /// Records that op `id` returned `outcome` at time `at`. Completing
    /// with [`Outcome::Unknown`] records when the client gave up; the op
    /// may still take effect later.
    pub fn complete(
        &mut self,
        id: OpId,
        outcome: Outcome<V>,
        at: Time,
    ) -> Result<(), HistoryError> {
        let op = self.ops.get_mut(id.0).ok_or(HistoryError::NoSuchOp(id))?;
        if op.returned.is_some() {
            return Err(HistoryError::AlreadyCompleted(id));
        }
        if at < op.invoked {
            return Err(HistoryError::ReturnedBeforeInvoked {
                op: id,
                invoked: op.invoked,
                returned: at,
            });
        }
        if !outcome_fits_call(&op.call, &outcome) {
            return Err(HistoryError::OutcomeDoesNotFit { op: id });
        }
        op.returned = Some(at);
        op.outcome = outcome;
        Ok(())
    }

    /// The ops, in the order they were recorded.
    pub fn ops(&self) -> &[Op<K, V>] {
        &self.ops
    }

    /// The op `id` names, if it exists.
    pub fn op(&self, id: OpId) -> Option<&Op<K, V>> {
        self.ops.get(id.0)
    }

    /// The number of ops recorded.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether no op was recorded.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The recorded ops, by value.
    pub fn into_ops(self) -> Vec<Op<K, V>> {
        self.ops
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Display for Op<K, V> {
    /// One timeline line: `p3  [1200 .. 1530]  put "k" = "v7" -> ok`, with
    /// `?` for a return that was never recorded.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let process = format!("p{}", self.process);
        write!(f, "{process:<3} [{} .. ", self.invoked)?;
        match self.returned {
            Some(t) => write!(f, "{t}]  ")?,
            None => write!(f, "?]  ")?,
        }
        let key = &self.key;
        match &self.call {
            Call::Put(v) => write!(f, "put {key:?} = {v:?}")?,
            Call::PutTtl(v, ttl) => write!(f, "put {key:?} = {v:?} ttl {ttl}")?,
            Call::Delete => write!(f, "delete {key:?}")?,
            Call::Get => write!(f, "get {key:?}")?,
            Call::StaleGet => write!(f, "stale-get {key:?}")?,
        }
        match &self.outcome {
            Outcome::Ok => write!(f, " -> ok"),
            Outcome::Value(Some(v)) => write!(f, " -> {v:?}"),
            Outcome::Value(None) => write!(f, " -> absent"),
            Outcome::Failed => write!(f, " -> failed"),
            Outcome::Unknown => write!(f, " -> unknown"),
        }
    }
}
