//! Histories of a correct register store, generated from a sequential
//! execution, and the values a read of them could not have returned.

use kv_check::{Call, Op, Outcome, Time};

pub type Key = u8;
pub type Value = u32;
pub type TestOp = Op<Key, Value>;

/// The raw random choices behind one op of an execution.
#[derive(Clone, Debug)]
pub struct Step {
    pub key: u8,
    pub kind: u8,
    pub process: u8,
    pub before: u16,
    pub after: u16,
    pub fate: u8,
    pub stale_by: u8,
}

/// How far an op's invocation and return may lie from its linearization
/// point. Points are `SPACING` apart, so about `2 * MAX_SKEW / SPACING`
/// ops overlap.
const MAX_SKEW: u64 = 250;
const SPACING: u64 = 100;

/// What happened to an op.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Ok,
    Failed,
    /// Took effect, but the client never learned (no return recorded).
    UnknownApplied,
    /// Took effect; the client gave up at its return time.
    TimedOutApplied,
    /// Did not take effect, and the client never learned.
    UnknownLost,
}

fn fate(raw: u8) -> Fate {
    match raw % 20 {
        0 => Fate::Failed,
        1 => Fate::UnknownApplied,
        2 => Fate::TimedOutApplied,
        3 => Fate::UnknownLost,
        _ => Fate::Ok,
    }
}

/// Runs `steps` in order against a map of registers (op `i` takes effect
/// at its point `1000 + 100 i`) and records each op with an invocation and
/// return around its point. Every value put is unique.
pub fn execute(steps: &[Step], keys: u8, processes: u8) -> Vec<TestOp> {
    let keys = keys.max(1);
    // Per key: every state it has had, oldest first.
    let mut states: Vec<Vec<Option<Value>>> = vec![vec![None]; usize::from(keys)];
    let mut ops = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        let key = step.key % keys;
        let key_states = &mut states[usize::from(key)];
        let point = 1000 + SPACING * i as u64;
        let invoked = point - u64::from(step.before) % MAX_SKEW;
        let returned = point + u64::from(step.after) % MAX_SKEW;
        let fate = fate(step.fate);
        let current = *key_states.last().expect("starts with absent");
        let (call, answer) = match step.kind % 10 {
            0..=3 => (Call::Put(i as Value + 1), Outcome::Ok),
            4 => (Call::Delete, Outcome::Ok),
            5..=7 => (Call::Get, Outcome::Value(current)),
            _ => {
                let back = usize::from(step.stale_by) % key_states.len();
                let stale = key_states[key_states.len() - 1 - back];
                (Call::StaleGet, Outcome::Value(stale))
            }
        };
        let applied = matches!(
            fate,
            Fate::Ok | Fate::UnknownApplied | Fate::TimedOutApplied
        );
        match &call {
            Call::Put(v) if applied => key_states.push(Some(*v)),
            Call::Delete if applied => key_states.push(None),
            _ => {}
        }
        let (returned, outcome) = match fate {
            Fate::Ok => (Some(returned), answer),
            Fate::Failed => (Some(returned), Outcome::Failed),
            Fate::TimedOutApplied => (Some(returned), Outcome::Unknown),
            Fate::UnknownApplied | Fate::UnknownLost => (None, Outcome::Unknown),
        };
        ops.push(Op {
            process: u32::from(step.process % processes.max(1)),
            key,
            call,
            invoked,
            returned,
            outcome,
        });
    }
    ops
}

/// The value a write leaves, if `op` is a write that may have happened.
fn written(op: &TestOp) -> Option<Option<Value>> {
    match (&op.call, &op.outcome) {
        (_, Outcome::Failed) => None,
        (Call::Put(v), _) => Some(Some(*v)),
        (Call::Delete, _) => Some(None),
        _ => None,
    }
}

/// Whether an acknowledged write of something other than `x` to the read's
/// key was invoked after `after` (`None`: any time) and returned before
/// the read was invoked, so that no linearization lets `x` survive it.
fn overwritten(ops: &[TestOp], read: &TestOp, x: Option<Value>, after: Option<Time>) -> bool {
    ops.iter().any(|w| {
        w.key == read.key
            && w.outcome == Outcome::Ok
            && written(w).is_some_and(|v| v != x)
            && after.is_none_or(|a| a < w.invoked)
            && w.returned.is_some_and(|r| r < read.invoked)
    })
}

/// Whether no linearization of `ops` consistent with real time lets `read`
/// return `x`: every write that could leave `x` (and, for absent, the
/// initial state) is either invoked after the read returned or overwritten
/// by an acknowledged write that follows it in real time and precedes the
/// read.
///
/// This is computed from the history, not from the execution's points:
/// "never current during the read's window in the execution" is not
/// enough, because two concurrent writes may be linearized in the other
/// order.
pub fn impossible(ops: &[TestOp], read: &TestOp, x: Option<Value>) -> bool {
    let read_returned = read.returned.unwrap_or(Time::MAX);
    if x.is_none() && !overwritten(ops, read, x, None) {
        return false;
    }
    ops.iter()
        .filter(|w| w.key == read.key && written(w) == Some(x))
        .all(|w| {
            w.invoked > read_returned
                || (w.outcome == Outcome::Ok && overwritten(ops, read, x, w.returned))
        })
}

/// A value never put anywhere.
pub const FRESH: Value = Value::MAX;

/// The values `read` (an op of `ops`) could not have returned: absent or a
/// value put to its key, if impossible, and always `FRESH`.
pub fn impossible_values(ops: &[TestOp], read: &TestOp) -> Vec<Option<Value>> {
    let mut candidates: Vec<Option<Value>> = vec![None];
    candidates.extend(
        ops.iter()
            .filter(|w| w.key == read.key)
            .filter_map(|w| match w.call {
                Call::Put(v) => Some(Some(v)),
                _ => None,
            }),
    );
    let mut found: Vec<Option<Value>> = candidates
        .into_iter()
        .filter(|&x| impossible(ops, read, x))
        .collect();
    found.push(Some(FRESH));
    found
}

/// A small deterministic generator (xorshift64*) for tests that want a
/// fixed large history without proptest.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn step(&mut self) -> Step {
        let r = self.next().to_le_bytes();
        Step {
            key: r[0],
            kind: r[1],
            process: r[2],
            before: u16::from_le_bytes([r[3], r[4]]),
            after: u16::from_le_bytes([r[5], r[6]]),
            fate: r[7],
            stale_by: (self.next() % 4) as u8,
        }
    }
}
