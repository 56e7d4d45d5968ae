//! Generated histories: correct executions must pass, a read mutated to an
//! impossible value must be reported (with a shrunk history that still
//! fails), and on small histories the search agrees with brute force.

mod common;

use std::collections::HashSet;

use common::{FRESH, Key, Rng, Step, TestOp, Value, execute, impossible_values};
use kv_check::{
    Call, CheckOptions, History, Op, Outcome, Property, check, check_linearizable,
    check_no_invented_values,
};
use proptest::prelude::*;

fn step() -> impl Strategy<Value = Step> {
    (
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u16>(),
        any::<u16>(),
        any::<u8>(),
        0u8..4,
    )
        .prop_map(|(key, kind, process, before, after, fate, stale_by)| Step {
            key,
            kind,
            process,
            before,
            after,
            fate,
            stale_by,
        })
}

fn history(ops: Vec<TestOp>) -> History<Key, Value> {
    History::from_ops(ops).expect("generated ops are well formed")
}

/// The positions of leader reads that returned a value.
fn answered_gets(ops: &[TestOp]) -> Vec<usize> {
    ops.iter()
        .enumerate()
        .filter(|(_, op)| op.call == Call::Get && matches!(op.outcome, Outcome::Value(_)))
        .map(|(i, _)| i)
        .collect()
}

/// Replaces the answer of the read at `read` with an impossible value
/// (chosen by `choice`); returns the value.
fn mutate(ops: &mut [TestOp], read: usize, choice: usize) -> Option<Value> {
    let candidates = impossible_values(ops, &ops[read]);
    let x = candidates[choice % candidates.len()];
    ops[read].outcome = Outcome::Value(x);
    x
}

/// The checks `report` must pass on the mutated history: a linearizability
/// violation on `key`, shrunk to no more than the key's ops, which on its
/// own still violates linearizability.
fn assert_caught_and_shrunk(ops: &[TestOp], key: Key) {
    let report = check(&history(ops.to_vec()), &CheckOptions::default());
    let violation = report
        .violations
        .iter()
        .find(|v| v.property == Property::Linearizability && v.key == key)
        .unwrap_or_else(|| panic!("mutation not caught:\n{report}"));
    let key_ops = ops.iter().filter(|op| op.key == key).count();
    assert_eq!(violation.original_len, key_ops);
    assert!(violation.ops.len() <= key_ops);
    assert!(violation.ops.iter().all(|op| op.key == key));
    let again = check_linearizable(&history(violation.ops.clone()), &CheckOptions::default());
    assert!(
        again.violation(Property::Linearizability).is_some(),
        "shrunk history passes:\n{violation}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn correct_executions_pass(
        steps in prop::collection::vec(step(), 0..120),
        keys in 1u8..4,
        processes in 1u8..6,
    ) {
        let ops = execute(&steps, keys, processes);
        let report = check(&history(ops), &CheckOptions::default());
        prop_assert!(report.is_ok(), "{}", report);
    }

    #[test]
    fn a_read_of_an_impossible_value_is_caught(
        steps in prop::collection::vec(step(), 1..120),
        keys in 1u8..4,
        processes in 1u8..6,
        pick in any::<usize>(),
        choice in any::<usize>(),
    ) {
        let mut ops = execute(&steps, keys, processes);
        let gets = answered_gets(&ops);
        prop_assume!(!gets.is_empty());
        let read = gets[pick % gets.len()];
        let x = mutate(&mut ops, read, choice);
        assert_caught_and_shrunk(&ops, ops[read].key);
        if x == Some(FRESH) {
            let report = check_no_invented_values(&history(ops.clone()));
            prop_assert!(report.violation(Property::NoInventedValues).is_some());
        }
    }
}

// ---- Differential test against brute force on small histories ----

/// The clock error the differential test checks with.
const CLOCK_ERROR: u64 = 2;

/// Whether some order of `ops` (one key) consistent with real time
/// satisfies a register, found by trying every order. Failed ops, stale
/// reads and unknown reads are left out; unknown ops return at +infinity.
///
/// Expiring values are modelled by time, not by the search's virtual ops:
/// each placed op gets the earliest linearization point its order allows
/// (no earlier than the previous op's, within its own interval), and a
/// value put with a time to live reads as present at points up to `hi`
/// and as absent from `lo` on (see `Call::PutTtl`).
fn brute_force(ops: &[TestOp]) -> bool {
    let ops: Vec<&TestOp> = ops
        .iter()
        .filter(|op| {
            !matches!(
                (&op.call, &op.outcome),
                (_, Outcome::Failed) | (Call::StaleGet, _) | (Call::Get, Outcome::Unknown)
            )
        })
        .collect();
    let mut placed = vec![false; ops.len()];
    place(&ops, &mut placed, Register::default(), 0)
}

fn effective_return(op: &TestOp) -> u64 {
    match op.outcome {
        Outcome::Unknown => u64::MAX,
        _ => op.returned.unwrap_or(u64::MAX),
    }
}

/// The register at a point: its value, and for an expiring one when it
/// may read as absent (`lo`) and until when it may read as present (`hi`,
/// none for a put whose outcome is unknown).
#[derive(Clone, Copy, Default)]
struct Register {
    value: Option<Value>,
    expiry: Option<(u64, Option<u64>)>,
}

fn place(ops: &[&TestOp], placed: &mut [bool], state: Register, point: u64) -> bool {
    if placed.iter().all(|&p| p) {
        return true;
    }
    for i in 0..ops.len() {
        if placed[i] {
            continue;
        }
        let blocked = (0..ops.len())
            .any(|j| !placed[j] && j != i && effective_return(ops[j]) < ops[i].invoked);
        if blocked {
            continue;
        }
        let op = ops[i];
        let mut at = point.max(op.invoked);
        let next = match (&op.call, &op.outcome) {
            (Call::Put(v), _) => Register {
                value: Some(*v),
                expiry: None,
            },
            (Call::PutTtl(v, ttl), outcome) => {
                let lo = (op.invoked + ttl).saturating_sub(2 * CLOCK_ERROR);
                let hi = match outcome {
                    Outcome::Ok => op.returned.map(|r| r + ttl + 2 * CLOCK_ERROR),
                    _ => None,
                };
                Register {
                    value: Some(*v),
                    expiry: Some((lo, hi)),
                }
            }
            (Call::Delete, _) => Register::default(),
            (_, Outcome::Value(seen)) if *seen == state.value => {
                if let Some((_, Some(hi))) = state.expiry
                    && at > hi
                {
                    continue;
                }
                state
            }
            (_, Outcome::Value(None)) => match state.expiry {
                Some((lo, _)) => {
                    at = at.max(lo);
                    state
                }
                None => continue,
            },
            _ => continue,
        };
        if at > effective_return(op) {
            continue;
        }
        placed[i] = true;
        let found = place(ops, placed, next, at);
        placed[i] = false;
        if found {
            return true;
        }
    }
    false
}

fn small_op() -> impl Strategy<Value = TestOp> {
    (
        0u8..9,
        0u64..30,
        0u64..12,
        0u8..10,
        0u8..4,
        0u32..3,
        0u64..16,
    )
        .prop_map(|(kind, invoked, length, fate, seen, value, ttl)| {
            let call = match kind {
                0..=1 => Call::Put(value + 1),
                2..=3 => Call::PutTtl(value + 1, ttl),
                4 => Call::Delete,
                5..=7 => Call::Get,
                _ => Call::StaleGet,
            };
            let answer = if call.is_read() {
                Outcome::Value((seen > 0).then_some(u32::from(seen)))
            } else {
                Outcome::Ok
            };
            let (returned, outcome) = match fate {
                0 => (Some(invoked + length), Outcome::Failed),
                1 => (None, Outcome::Unknown),
                _ => (Some(invoked + length), answer),
            };
            Op {
                process: u32::from(kind),
                key: 0,
                call,
                invoked,
                returned,
                outcome,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn search_agrees_with_brute_force(ops in prop::collection::vec(small_op(), 0..8)) {
        let expected = brute_force(&ops);
        let options = CheckOptions {
            clock_error: CLOCK_ERROR,
            ..CheckOptions::default()
        };
        let report = check_linearizable(&history(ops), &options);
        prop_assert!(report.undecided.is_empty());
        prop_assert_eq!(report.is_ok(), expected, "{}", report);
    }
}

// ---- One realistic size ----

/// 20 keys of about 500 ops each from 5 processes (the size the fault tests
/// produce), correct and then with one read made impossible per key.
#[test]
fn twenty_keys_of_five_hundred_ops() {
    let mut rng = Rng::new(0x6b76_2d63_6865_636b);
    let steps: Vec<Step> = (0..10_000).map(|_| rng.step()).collect();
    let mut ops = execute(&steps, 20, 5);
    let report = check(&history(ops.clone()), &CheckOptions::default());
    assert!(report.is_ok(), "{report}");

    let gets = answered_gets(&ops);
    let mut mutated_keys = HashSet::new();
    for &read in &gets {
        if mutated_keys.insert(ops[read].key) {
            mutate(&mut ops, read, rng.next() as usize);
        }
    }
    assert_eq!(mutated_keys.len(), 20);
    let report = check_linearizable(&history(ops), &CheckOptions::default());
    let keys: HashSet<Key> = report.violations.iter().map(|v| v.key).collect();
    assert_eq!(keys, mutated_keys, "{report}");
    assert!(
        report
            .violations
            .iter()
            .all(|v| v.minimal && v.ops.len() < 500)
    );
}
