//! Linearizability of one key's ops against a register, by the Wing–Gong
//! search with Lowe's improvements (the algorithm behind Porcupine).
//!
//! # The model
//!
//! A register that starts absent: a put sets it, a delete clears it, a read
//! must see its current state; a value put with a time to live may also
//! vanish (below). Values are interned to small integers first (0 is
//! "absent"), so a state is two `u32`s and a flag however large the values
//! are.
//!
//! # The search
//!
//! Every op contributes two events, its call and its return, sorted by time
//! into a doubly linked list (a call sorts before a return at the same
//! time, so ops that touch count as concurrent). Walking the list from its
//! head, the search tries to *linearize* each call it meets: if the model
//! accepts the op in the current state, the op's call and return are lifted
//! out of the list, the op is pushed on a stack with the state before it,
//! and the walk restarts at the head. Meeting a return means the op it
//! belongs to had to be linearized by now and was not: the search pops the
//! last linearized op, puts its events back (dancing links: they return to
//! exactly the places they were taken from) and tries the next call after
//! it. An empty list means every op found its place: linearizable. A return
//! met with an empty stack means no order works: not linearizable.
//!
//! Lowe's improvement is the memo: the pair (set of linearized ops as a
//! bitset, register state) fully determines what can follow, so a pair seen
//! before is never explored again. That turns the factorial search into
//! one bounded by the number of distinct pairs, which for realistic
//! histories (a handful of concurrent clients) is small.
//!
//! # What is dropped before the search
//!
//! Failed ops (they did not happen), stale reads (a follower may answer
//! them; only the invented-values check looks at them), reads with an
//! unknown outcome (they say nothing), and unknown writes whose value no
//! read returned: such a write can always be placed at the very end, where
//! it changes nothing, and any linearization that places it earlier stays
//! valid without it (the next read after it must follow another write).
//! Without that pruning every timed-out put would stay concurrent with the
//! whole rest of the history and multiply the states to explore.
//!
//! Unknown ops that are kept return at +infinity: they may take effect at
//! any time after their invocation, or (for a write placed last) never.
//!
//! # Values that expire
//!
//! A [`Call::PutTtl`] write's value may vanish from `lo = invoked + ttl -
//! 2e` on and is gone from `hi = returned + ttl + 2e` on, `e` being the
//! clock error (see [`Call::PutTtl`]); in between, reads answered by nodes
//! whose clocks disagree may find it or not, in any alternation. The
//! search models this with two virtual ops per such write, placed in real
//! time like any other: *soften* at the instant `lo`, after which a read
//! of absent is allowed while the register still holds the value (the
//! state carries a `soft` flag), and *expire* at the instant `hi`, which
//! clears the register if it still holds the value. Each acts only on its
//! own write (the state names the expiring write that set it, so a later
//! put of an equal value is not mistaken for it). A write linearized after
//! its own soften (an unknown write, or one slower than its time to live)
//! is soft at once; whether the soften was linearized is in the memo's
//! bitset, so the pair (bitset, state) still determines what can follow.
//! An unknown write has no `hi` (it may take effect at any time), so no
//! expire.
//!
//! An unknown expiring write whose value no read returned is not dropped:
//! its expiry may explain a read of absent. Placed before `lo` it only
//! blocks reads (nothing can read its value, absent is not yet allowed),
//! so it stands in as an unknown delete invoked at `lo`.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use crate::history::{Call, Op, Outcome, Time, expiry_window};

/// An interned value: 0 is absent, anything else a value.
type ValueId = u32;

/// The interned value of "absent".
const ABSENT_ID: ValueId = 0;

/// The register state: the value it holds, which expiring write put it
/// there (0 if none: values need not be unique, so expiry acts on the
/// write, not the value), and whether that write's expiry window is open
/// (a read may then find it absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct State {
    value: ValueId,
    expiring: u32,
    soft: bool,
}

/// The register state when the key does not exist.
const ABSENT: State = State {
    value: ABSENT_ID,
    expiring: 0,
    soft: false,
};

/// What the search concluded about one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Some order of the ops, consistent with real time, satisfies the
    /// register.
    Linearizable,
    /// No such order exists.
    NotLinearizable,
    /// The step budget ran out first.
    Undecided,
}

/// A verdict and the steps the search took to reach it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Search {
    pub(crate) verdict: Verdict,
    pub(crate) steps: u64,
}

/// What an op does to the register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    /// Set the value (`ABSENT_ID` for a delete).
    Write(ValueId),
    /// Set a value that expires, as expiring write `write` (numbered from
    /// 1); it is soft at once if the op `soften` (its own soften) was
    /// linearized already.
    WriteExpiring {
        value: ValueId,
        write: u32,
        soften: usize,
    },
    /// Expect the value (absent also passes while the value is soft).
    Read(ValueId),
    /// Expiring write's window opens, if its value is still there.
    Soften(u32),
    /// Expiring write's window closes, if its value is still there: the
    /// register is cleared.
    Expire(u32),
}

impl Action {
    /// The state after the action, or `None` if the model refuses it.
    /// `linearized` tells whether an op was linearized already.
    fn apply(self, state: State, linearized: &Bitset) -> Option<State> {
        match self {
            Action::Write(value) => Some(State {
                value,
                expiring: 0,
                soft: false,
            }),
            Action::WriteExpiring {
                value,
                write,
                soften,
            } => Some(State {
                value,
                expiring: write,
                soft: linearized.contains(soften),
            }),
            Action::Read(seen) => {
                (seen == state.value || (seen == ABSENT_ID && state.soft)).then_some(state)
            }
            Action::Soften(write) if state.expiring == write => Some(State {
                soft: true,
                ..state
            }),
            Action::Expire(write) if state.expiring == write => Some(ABSENT),
            Action::Soften(_) | Action::Expire(_) => Some(state),
        }
    }
}

/// One op as the search sees it.
#[derive(Clone, Copy, Debug)]
struct ModelOp {
    action: Action,
    invoked: Time,
    /// `None` stands for +infinity (an unknown outcome).
    returned: Option<Time>,
    /// For a [`Call::PutTtl`]: its time to live.
    ttl: Option<Time>,
}

/// Gives each distinct value a small number, 0 being absent.
struct Interner<'a, V> {
    ids: HashMap<&'a V, ValueId>,
}

impl<'a, V: Eq + Hash> Interner<'a, V> {
    fn new() -> Self {
        Interner {
            ids: HashMap::new(),
        }
    }

    fn id(&mut self, value: Option<&'a V>) -> ValueId {
        let Some(value) = value else { return ABSENT_ID };
        let next = ValueId::try_from(self.ids.len() + 1).unwrap_or(ValueId::MAX);
        *self.ids.entry(value).or_insert(next)
    }
}

/// The ops of one key the search must place, in the input's order, then
/// the virtual ops of expiring writes (see the module docs); `clock_error`
/// is `e` there.
fn model_ops<K, V: Eq + Hash>(ops: &[&Op<K, V>], clock_error: Time) -> Vec<ModelOp> {
    let mut interner = Interner::new();
    let mut model = Vec::with_capacity(ops.len());
    for op in ops {
        let (action, returned, ttl) = match (&op.call, &op.outcome) {
            (_, Outcome::Failed) | (Call::StaleGet, _) | (Call::Get, Outcome::Unknown) => continue,
            (Call::Get, Outcome::Value(v)) => {
                (Action::Read(interner.id(v.as_ref())), op.returned, None)
            }
            (Call::Put(v), Outcome::Ok) => (Action::Write(interner.id(Some(v))), op.returned, None),
            (Call::Put(v), Outcome::Unknown) => (Action::Write(interner.id(Some(v))), None, None),
            (Call::PutTtl(v, ttl), Outcome::Ok) => {
                (Action::Write(interner.id(Some(v))), op.returned, Some(*ttl))
            }
            (Call::PutTtl(v, ttl), Outcome::Unknown) => {
                (Action::Write(interner.id(Some(v))), None, Some(*ttl))
            }
            (Call::Delete, Outcome::Ok) => (Action::Write(ABSENT_ID), op.returned, None),
            (Call::Delete, Outcome::Unknown) => (Action::Write(ABSENT_ID), None, None),
            // A History refuses these; skip rather than guess.
            (Call::Get, Outcome::Ok)
            | (Call::Put(_) | Call::PutTtl(..) | Call::Delete, Outcome::Value(_)) => continue,
        };
        model.push(ModelOp {
            action,
            invoked: op.invoked,
            returned,
            ttl,
        });
    }
    let model = prune_unread_unknown_writes(model, clock_error);
    with_expiry(model, clock_error)
}

/// Drops unknown writes whose value no read returned (see the module docs
/// for why that changes no verdict); an expiring one becomes an unknown
/// delete at the opening of its window instead.
fn prune_unread_unknown_writes(model: Vec<ModelOp>, clock_error: Time) -> Vec<ModelOp> {
    let read: HashSet<ValueId> = model
        .iter()
        .filter_map(|op| match op.action {
            Action::Read(seen) => Some(seen),
            _ => None,
        })
        .collect();
    model
        .into_iter()
        .map(|op| match (op.action, op.returned, op.ttl) {
            (Action::Write(value), None, Some(ttl)) if !read.contains(&value) => ModelOp {
                action: Action::Write(ABSENT_ID),
                invoked: expiry_window(op.invoked, None, ttl, clock_error)
                    .0
                    .max(op.invoked),
                returned: None,
                ttl: None,
            },
            _ => op,
        })
        .filter(|op| match (op.action, op.returned) {
            (Action::Write(value), None) => read.contains(&value),
            _ => true,
        })
        .collect()
}

/// Turns each expiring write into a [`Action::WriteExpiring`] and adds its
/// soften (and, if it returned, its expire) at the end.
fn with_expiry(mut model: Vec<ModelOp>, clock_error: Time) -> Vec<ModelOp> {
    let mut write = 0;
    for i in 0..model.len() {
        let op = model[i];
        let (Action::Write(value), Some(ttl)) = (op.action, op.ttl) else {
            continue;
        };
        write += 1;
        let soften = model.len();
        model[i].action = Action::WriteExpiring {
            value,
            write,
            soften,
        };
        let (lo, hi) = expiry_window(op.invoked, op.returned, ttl, clock_error);
        model.push(ModelOp {
            action: Action::Soften(write),
            invoked: lo,
            returned: Some(lo),
            ttl: None,
        });
        if let Some(hi) = hi {
            model.push(ModelOp {
                action: Action::Expire(write),
                invoked: hi,
                returned: Some(hi),
                ttl: None,
            });
        }
    }
    model
}

/// The event list: node 0 is the head, the last node the tail, and the
/// nodes between are the ops' calls and returns in time order.
struct Events {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// For each node between head and tail: its op, and whether it is the
    /// op's call.
    event: Vec<(usize, bool)>,
    /// For each op: its call's node and its return's node.
    nodes: Vec<(usize, usize)>,
}

const HEAD: usize = 0;

impl Events {
    fn new(ops: &[ModelOp]) -> Self {
        // Sort key: time (with +infinity after every real time), then calls
        // before returns, then op order for determinism.
        let mut sorted: Vec<(u128, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            let returned = op.returned.map_or(u128::MAX, u128::from);
            sorted.push((u128::from(op.invoked), false, i));
            sorted.push((returned, true, i));
        }
        sorted.sort_unstable();
        let len = sorted.len() + 2;
        let mut event = vec![(0, false); len];
        let mut nodes = vec![(0, 0); ops.len()];
        for (position, &(_, is_return, op)) in sorted.iter().enumerate() {
            let node = position + 1;
            event[node] = (op, !is_return);
            if let Some(pair) = nodes.get_mut(op) {
                if is_return {
                    pair.1 = node;
                } else {
                    pair.0 = node;
                }
            }
        }
        Events {
            next: (1..=len).collect(),
            prev: (0..len).map(|i| i.saturating_sub(1)).collect(),
            event,
            nodes,
        }
    }

    fn tail(&self) -> usize {
        self.next.len() - 1
    }

    fn is_empty(&self) -> bool {
        self.next[HEAD] == self.tail()
    }

    fn unlink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        self.prev[next] = prev;
    }

    fn relink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        self.prev[next] = node;
    }

    /// Takes op's call and return out of the list.
    fn lift(&mut self, op: usize) {
        let (call, ret) = self.nodes[op];
        self.unlink(call);
        self.unlink(ret);
    }

    /// Puts op's call and return back, undoing the matching `lift` (which
    /// must be the last one not yet undone).
    fn unlift(&mut self, op: usize) {
        let (call, ret) = self.nodes[op];
        self.relink(ret);
        self.relink(call);
    }
}

/// A set of op indices.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Bitset(Vec<u64>);

impl Bitset {
    fn new(len: usize) -> Self {
        Bitset(vec![0; len.div_ceil(64)])
    }

    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }

    fn contains(&self, i: usize) -> bool {
        self.0
            .get(i / 64)
            .is_some_and(|word| word & (1 << (i % 64)) != 0)
    }
}

/// Decides whether `ops` (all on one key) are linearizable, giving up after
/// `max_steps` steps of the search; `clock_error` bounds how far node
/// clocks may be from the history's (for expiring writes).
pub(crate) fn search<K, V: Eq + Hash>(
    ops: &[&Op<K, V>],
    max_steps: u64,
    clock_error: Time,
) -> Search {
    let model = model_ops(ops, clock_error);
    let mut events = Events::new(&model);
    let mut linearized = Bitset::new(model.len());
    let mut seen: HashSet<(Bitset, State)> = HashSet::new();
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state = ABSENT;
    let mut node = events.next[HEAD];
    let mut steps = 0;
    let tail = events.tail();
    while !events.is_empty() {
        if steps >= max_steps {
            return Search {
                verdict: Verdict::Undecided,
                steps,
            };
        }
        steps += 1;
        let (op, is_call) = events.event[node];
        if is_call && node != tail {
            let next_state = model[op].action.apply(state, &linearized);
            if let Some(next_state) = next_state {
                linearized.set(op);
                if seen.insert((linearized.clone(), next_state)) {
                    stack.push((op, state));
                    state = next_state;
                    events.lift(op);
                    node = events.next[HEAD];
                    continue;
                }
                linearized.clear(op);
            }
            node = events.next[node];
        } else {
            let Some((undone, before)) = stack.pop() else {
                return Search {
                    verdict: Verdict::NotLinearizable,
                    steps,
                };
            };
            linearized.clear(undone);
            state = before;
            events.unlift(undone);
            node = events.next[events.nodes[undone].0];
        }
    }
    Search {
        verdict: Verdict::Linearizable,
        steps,
    }
}
