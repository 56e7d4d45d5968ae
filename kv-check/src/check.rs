//! The checks: split the history by key (P-compositionality: a history of
//! independent registers is linearizable iff each register's is), run each
//! property on each key, and shrink what fails.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::hash::Hash;

use crate::history::{Call, History, Op, Outcome, Time, expiry_window};
use crate::invented::invented_reads;
use crate::linearizable::{Verdict, search};
use crate::report::{Property, Report, Undecided, Violation};
use crate::shrink::{Shrunk, Trial, shrink};

/// Budgets that bound the checks' work on hard or huge histories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckOptions {
    /// Search steps allowed per key before its linearizability is reported
    /// [`Undecided`]. A step visits one event of the history. The search's
    /// memo gains at most one entry per step, of about `n / 8` bytes for a
    /// key with `n` ops, so this bounds memory as well as time.
    pub max_steps: u64,
    /// Total search steps allowed for shrinking one linearizability
    /// violation; when it runs out the violation is reported with the ops
    /// shrunk so far and [`Violation::minimal`] false. 0 turns shrinking
    /// off. (An invented-values violation needs no search: it shows the
    /// invented read.)
    pub max_shrink_steps: u64,
    /// How far any node's clock may be from the history's clock, in the
    /// history's time unit, for values put with a time to live
    /// ([`Call::PutTtl`]): the window in which such a value may expire
    /// widens by twice this on each side (the writing node's clock and
    /// the reading node's may err in opposite directions). 0 (the
    /// default) when nodes read the history's own clock; include the
    /// clocks' granularity (a millisecond clock is up to 1 ms behind).
    pub clock_error: Time,
}

impl Default for CheckOptions {
    /// 2 million steps per key (realistic histories need a few steps per
    /// op), 50 million for shrinking each violation, no clock error.
    fn default() -> Self {
        CheckOptions {
            max_steps: 2_000_000,
            max_shrink_steps: 50_000_000,
            clock_error: 0,
        }
    }
}

/// Runs every check: [`check_linearizable`] and
/// [`check_no_invented_values`], with their results merged in key order.
pub fn check<K, V>(history: &History<K, V>, options: &CheckOptions) -> Report<K, V>
where
    K: Ord + Clone + Debug,
    V: Eq + Hash + Clone + Debug,
{
    per_key(history, |key, ops, report| {
        linearizable_key(key, ops, options, report);
        no_invented_key(key, ops, report);
    })
}

/// Checks that each key's puts, deletes and [`Get`](crate::Call::Get)s are
/// linearizable against a register that starts absent. Failed ops, stale
/// reads and reads with an unknown outcome are left out; unknown writes
/// may take effect at any time after their invocation, or never; values
/// put with a time to live may vanish within the window
/// [`Call::PutTtl`] describes.
pub fn check_linearizable<K, V>(history: &History<K, V>, options: &CheckOptions) -> Report<K, V>
where
    K: Ord + Clone + Debug,
    V: Eq + Hash + Clone + Debug,
{
    per_key(history, |key, ops, report| {
        linearizable_key(key, ops, options, report)
    })
}

/// Checks that every value a read ([`Get`](crate::Call::Get) or
/// [`StaleGet`](crate::Call::StaleGet)) returned was the argument of a put
/// to the same key that was invoked before the read returned and whose
/// outcome is not [`Failed`](crate::Outcome::Failed). Never undecided.
pub fn check_no_invented_values<K, V>(history: &History<K, V>) -> Report<K, V>
where
    K: Ord + Clone + Debug,
    V: Eq + Hash + Clone + Debug,
{
    per_key(history, no_invented_key)
}

/// Runs `each` on every key's ops (in recorded order), keys in order,
/// into one report.
fn per_key<K: Ord, V>(
    history: &History<K, V>,
    mut each: impl FnMut(&K, &[&Op<K, V>], &mut Report<K, V>),
) -> Report<K, V> {
    let mut keys: BTreeMap<&K, Vec<&Op<K, V>>> = BTreeMap::new();
    for op in history.ops() {
        keys.entry(&op.key).or_default().push(op);
    }
    let mut report = Report::default();
    for (key, ops) in keys {
        each(key, &ops, &mut report);
    }
    report
}

/// The ops at `positions` of `ops`.
fn select<'a, K, V>(ops: &[&'a Op<K, V>], positions: &[usize]) -> Vec<&'a Op<K, V>> {
    positions
        .iter()
        .filter_map(|&i| ops.get(i).copied())
        .collect()
}

fn linearizable_key<K, V>(
    key: &K,
    ops: &[&Op<K, V>],
    options: &CheckOptions,
    report: &mut Report<K, V>,
) where
    K: Clone,
    V: Eq + Hash + Clone,
{
    let first = search(ops, options.max_steps, options.clock_error);
    match first.verdict {
        Verdict::Linearizable => {}
        Verdict::Undecided => report.undecided.push(Undecided {
            key: key.clone(),
            steps: first.steps,
        }),
        Verdict::NotLinearizable => {
            let all = (0..ops.len()).collect();
            let shrunk = shrink(all, options.max_shrink_steps, |candidate| {
                if !keeps_observed_writes(ops, candidate, options.clock_error) {
                    return Trial {
                        fails: false,
                        steps: candidate.len() as u64,
                    };
                }
                let trial = search(
                    &select(ops, candidate),
                    options.max_steps,
                    options.clock_error,
                );
                Trial {
                    fails: trial.verdict == Verdict::NotLinearizable,
                    steps: trial.steps,
                }
            });
            report
                .violations
                .push(violation(Property::Linearizability, key, ops, shrunk));
        }
    }
}

/// Whether `candidate` (positions in `ops`) keeps every write a kept read
/// may have observed. Only such sub-histories are witnesses: removing
/// reads, or writes no kept read can have observed, never turns a
/// linearizable history into one that is not (drop the removed ops from a
/// linearization: no kept read sat between a removed write and the next
/// write), so a sub-history that fails shows a failure of the whole,
/// while removing an observed write could make a failure up (a delete
/// that explained an absent read, a put whose value was read).
///
/// A put whose value a kept `Get` returned stays. A kept `Get` that
/// returned absent may have observed a delete unless it returned before
/// the delete was invoked, or a kept acknowledged write lies wholly
/// between them in real time (invoked after the delete returned, returned
/// before the read was invoked), which every linearization orders in
/// between. A put with a time to live is a put for the reads of its
/// value, and for reads of absent (its expiry may explain them) a delete
/// that takes effect no earlier than its expiry window opens.
fn keeps_observed_writes<K, V: Eq + Hash>(
    ops: &[&Op<K, V>],
    candidate: &[usize],
    clock_error: Time,
) -> bool {
    let mut kept = vec![false; ops.len()];
    let mut shields = Vec::new();
    for &i in candidate {
        let Some(op) = ops.get(i) else { continue };
        if let Some(slot) = kept.get_mut(i) {
            *slot = true;
        }
        if let (Call::Put(_) | Call::PutTtl(..) | Call::Delete, Outcome::Ok, Some(returned)) =
            (&op.call, &op.outcome, op.returned)
        {
            shields.push((returned, op.invoked));
        }
    }
    // Acknowledged kept writes by return time, with the latest invocation
    // among those returned so far.
    shields.sort_unstable();
    let mut latest = 0;
    for shield in &mut shields {
        latest = latest.max(shield.1);
        shield.1 = latest;
    }
    // The latest invocation of a kept acknowledged write that returned
    // before `t`.
    let shield_before = |t: Time| -> Option<Time> {
        let n = shields.partition_point(|&(returned, _)| returned < t);
        n.checked_sub(1).and_then(|i| shields.get(i)).map(|s| s.1)
    };
    // Kept reads by result: (returned, shield), by return time, with the
    // weakest shield from each read on.
    let mut reads: HashMap<Option<&V>, Vec<(Time, Option<Time>)>> = HashMap::new();
    for op in candidate.iter().filter_map(|&i| ops.get(i)) {
        if let (Call::Get, Outcome::Value(value)) = (&op.call, &op.outcome) {
            let returned = op.returned.unwrap_or(Time::MAX);
            reads
                .entry(value.as_ref())
                .or_default()
                .push((returned, shield_before(op.invoked)));
        }
    }
    for list in reads.values_mut() {
        list.sort_unstable();
        let mut weakest = None::<Option<Time>>;
        for read in list.iter_mut().rev() {
            let w = weakest.map_or(read.1, |w| w.min(read.1));
            weakest = Some(w);
            read.1 = w;
        }
    }
    ops.iter().enumerate().all(|(i, op)| {
        match (&op.call, &op.outcome) {
            _ if kept.get(i).copied().unwrap_or(true) => return true,
            (_, Outcome::Failed) => return true,
            // A put whose value a kept read returned stays, shielded or
            // not: the witness should show where the value came from.
            (Call::Put(value), _) => return !reads.contains_key(&Some(value)),
            (Call::PutTtl(value, _), _) if reads.contains_key(&Some(value)) => return false,
            (Call::PutTtl(..) | Call::Delete, _) => {}
            (Call::Get | Call::StaleGet, _) => return true,
        }
        let Some(list) = reads.get(&None) else {
            return true;
        };
        // When the write may first make the key absent: a put with a time
        // to live no earlier than its expiry window opens. Its expiry acts
        // only while its value is there, so a write that follows it in real
        // time shields a read from it as from a delete (an unacknowledged
        // write may take effect at any time).
        let starts = match &op.call {
            Call::PutTtl(_, ttl) => expiry_window(op.invoked, None, *ttl, clock_error).0,
            _ => op.invoked,
        };
        let ended = match op.outcome {
            Outcome::Ok => op.returned.unwrap_or(Time::MAX),
            _ => Time::MAX,
        };
        let first = list.partition_point(|&(returned, _)| returned < starts);
        let Some(&(_, weakest)) = list.get(first) else {
            return true;
        };
        weakest.is_some_and(|shield| shield > ended)
    })
}

fn no_invented_key<K, V>(key: &K, ops: &[&Op<K, V>], report: &mut Report<K, V>)
where
    K: Clone,
    V: Eq + Hash + Clone,
{
    // The witness is the first invented read itself: shrinking by removing
    // puts could only make up new invented reads.
    let Some(&first) = invented_reads(ops).first() else {
        return;
    };
    let shrunk = Shrunk {
        kept: vec![first],
        minimal: true,
    };
    report
        .violations
        .push(violation(Property::NoInventedValues, key, ops, shrunk));
}

/// A violation of `property` on `key`, showing the kept ops in invocation
/// order.
fn violation<K: Clone, V: Clone>(
    property: Property,
    key: &K,
    ops: &[&Op<K, V>],
    shrunk: Shrunk,
) -> Violation<K, V> {
    let mut kept = select(ops, &shrunk.kept);
    kept.sort_by_key(|op| op.invoked);
    Violation {
        property,
        key: key.clone(),
        ops: kept.into_iter().cloned().collect(),
        original_len: ops.len(),
        minimal: shrunk.minimal,
    }
}
