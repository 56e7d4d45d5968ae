//! Hand-written histories: the anomalies the checker must report, the
//! behaviours it must accept, and the recorder's refusals.

use kv_check::{
    Call, CheckOptions, History, HistoryError, Op, OpId, Outcome, Property, Report, check,
    check_linearizable, check_no_invented_values,
};

type TestOp = Op<&'static str, &'static str>;

fn op(
    process: u32,
    call: Call<&'static str>,
    invoked: u64,
    returned: Option<u64>,
    outcome: Outcome<&'static str>,
) -> TestOp {
    Op {
        process,
        key: "k",
        call,
        invoked,
        returned,
        outcome,
    }
}

fn put(process: u32, value: &'static str, invoked: u64, returned: u64) -> TestOp {
    op(
        process,
        Call::Put(value),
        invoked,
        Some(returned),
        Outcome::Ok,
    )
}

fn put_with(
    process: u32,
    value: &'static str,
    invoked: u64,
    outcome: Outcome<&'static str>,
) -> TestOp {
    op(process, Call::Put(value), invoked, None, outcome)
}

fn delete(process: u32, invoked: u64, returned: u64) -> TestOp {
    op(process, Call::Delete, invoked, Some(returned), Outcome::Ok)
}

fn get(process: u32, seen: Option<&'static str>, invoked: u64, returned: u64) -> TestOp {
    op(
        process,
        Call::Get,
        invoked,
        Some(returned),
        Outcome::Value(seen),
    )
}

fn stale_get(process: u32, seen: Option<&'static str>, invoked: u64, returned: u64) -> TestOp {
    op(
        process,
        Call::StaleGet,
        invoked,
        Some(returned),
        Outcome::Value(seen),
    )
}

fn history(ops: Vec<TestOp>) -> History<&'static str, &'static str> {
    History::from_ops(ops).expect("a well-formed history")
}

fn full_check(ops: Vec<TestOp>) -> Report<&'static str, &'static str> {
    check(&history(ops), &CheckOptions::default())
}

fn assert_passes(ops: Vec<TestOp>) {
    let report = full_check(ops);
    assert!(report.is_ok(), "expected a pass, got:\n{report}");
}

/// The shrunk ops of the report's violation of `property`.
fn violating_ops(report: &Report<&'static str, &'static str>, property: Property) -> Vec<TestOp> {
    let violation = report
        .violation(property)
        .unwrap_or_else(|| panic!("expected a {property} violation, got:\n{report}"));
    assert_eq!(violation.key, "k");
    assert!(violation.minimal);
    violation.ops.clone()
}

// ---- Anomalies that must be reported ----

#[test]
fn read_of_a_value_never_written_is_invented() {
    let report = full_check(vec![put(1, "v1", 0, 10), get(2, Some("v9"), 20, 30)]);
    assert_eq!(
        violating_ops(&report, Property::NoInventedValues),
        vec![get(2, Some("v9"), 20, 30)]
    );
    assert!(report.violation(Property::Linearizability).is_some());
}

#[test]
fn read_before_the_put_was_invoked_is_invented() {
    let report = full_check(vec![get(2, Some("v1"), 0, 10), put(1, "v1", 20, 30)]);
    assert_eq!(
        violating_ops(&report, Property::NoInventedValues),
        vec![get(2, Some("v1"), 0, 10)]
    );
}

#[test]
fn stale_read_after_a_completed_put_is_not_linearizable() {
    let ops = vec![
        put(1, "v1", 0, 10),
        put(1, "v2", 20, 30),
        get(2, Some("v1"), 40, 50),
    ];
    let report = full_check(ops.clone());
    assert_eq!(violating_ops(&report, Property::Linearizability), ops);
    assert!(report.violation(Property::NoInventedValues).is_none());
}

#[test]
fn acknowledged_put_missing_from_the_final_read_is_a_lost_write() {
    let ops = vec![
        put(1, "v1", 0, 10),
        put(2, "v2", 20, 30),
        get(3, Some("v2"), 40, 50),
        // The cluster heals; the final leader read misses v2.
        get(4, Some("v1"), 1000, 1010),
    ];
    let report = full_check(ops);
    let shrunk = violating_ops(&report, Property::Linearizability);
    assert_eq!(
        shrunk,
        vec![
            put(1, "v1", 0, 10),
            put(2, "v2", 20, 30),
            get(4, Some("v1"), 1000, 1010)
        ]
    );
}

#[test]
fn final_read_of_absent_after_an_acknowledged_put_is_a_lost_write() {
    let ops = vec![put(1, "v1", 0, 10), get(2, None, 100, 110)];
    let report = full_check(ops.clone());
    assert_eq!(violating_ops(&report, Property::Linearizability), ops);
}

#[test]
fn later_read_older_than_an_earlier_read_is_not_monotonic() {
    let ops = vec![
        put(1, "v1", 0, 10),
        // Concurrent with both reads: either may see it, but once one has,
        // a later one must too.
        put(2, "v2", 20, 100),
        get(3, Some("v2"), 30, 40),
        get(3, Some("v1"), 50, 60),
    ];
    let report = full_check(ops.clone());
    assert_eq!(violating_ops(&report, Property::Linearizability), ops);
}

#[test]
fn read_of_a_failed_put_is_reported() {
    let ops = vec![
        put_with(1, "v1", 0, Outcome::Failed),
        get(2, Some("v1"), 20, 30),
    ];
    let mut ops = ops;
    ops[0].returned = Some(10);
    let report = full_check(ops);
    assert_eq!(
        violating_ops(&report, Property::NoInventedValues),
        vec![get(2, Some("v1"), 20, 30)]
    );
    assert!(report.violation(Property::Linearizability).is_some());
}

#[test]
fn unknown_put_seen_then_unseen_is_not_linearizable() {
    let report = full_check(vec![
        put_with(1, "v1", 0, Outcome::Unknown),
        get(2, Some("v1"), 20, 30),
        get(2, None, 40, 50),
    ]);
    assert!(report.violation(Property::Linearizability).is_some());
}

#[test]
fn read_of_a_deleted_value_after_the_delete_is_reported() {
    let report = full_check(vec![
        put(1, "v1", 0, 10),
        delete(1, 20, 30),
        get(2, Some("v1"), 40, 50),
    ]);
    assert!(report.violation(Property::Linearizability).is_some());
}

#[test]
fn stale_get_of_an_invented_value_is_reported() {
    let report = full_check(vec![put(1, "v1", 0, 10), stale_get(2, Some("v0"), 20, 30)]);
    assert_eq!(
        violating_ops(&report, Property::NoInventedValues),
        vec![stale_get(2, Some("v0"), 20, 30)]
    );
    assert!(report.violation(Property::Linearizability).is_none());
}

#[test]
fn violations_are_found_per_key_and_reported_in_key_order() {
    let mut ops = vec![put(1, "v1", 0, 10), get(2, None, 20, 30)];
    ops.extend(ops.clone().into_iter().map(|mut op| {
        op.key = "a";
        op
    }));
    ops.push(Op {
        key: "b",
        ..get(1, None, 0, 5)
    });
    let report = full_check(ops);
    let keys: Vec<_> = report.violations.iter().map(|v| v.key).collect();
    assert_eq!(keys, vec!["a", "k"]);
}

// ---- Behaviours that must pass ----

#[test]
fn concurrent_put_and_get_may_see_the_old_value() {
    assert_passes(vec![
        put(1, "v1", 0, 10),
        put(1, "v2", 20, 50),
        get(2, Some("v1"), 30, 40),
    ]);
}

#[test]
fn concurrent_put_and_get_may_see_the_new_value() {
    assert_passes(vec![
        put(1, "v1", 0, 10),
        put(1, "v2", 20, 50),
        get(2, Some("v2"), 30, 40),
    ]);
}

#[test]
fn ops_that_touch_count_as_concurrent() {
    assert_passes(vec![put(1, "v1", 0, 10), get(2, None, 10, 20)]);
}

#[test]
fn unknown_put_may_be_visible_later() {
    assert_passes(vec![
        put_with(1, "v1", 0, Outcome::Unknown),
        get(2, Some("v1"), 1000, 1010),
    ]);
}

#[test]
fn unknown_put_may_never_be_visible() {
    assert_passes(vec![
        put_with(1, "v1", 0, Outcome::Unknown),
        get(2, None, 1000, 1010),
    ]);
}

#[test]
fn unknown_put_may_take_effect_after_the_client_gave_up() {
    let mut timed_out = put_with(1, "v2", 20, Outcome::Unknown);
    timed_out.returned = Some(30);
    assert_passes(vec![
        put(1, "v1", 0, 10),
        timed_out,
        get(2, Some("v1"), 40, 50),
        get(2, Some("v2"), 60, 70),
    ]);
}

#[test]
fn failed_put_never_seen_passes() {
    let mut failed = put_with(1, "v2", 20, Outcome::Failed);
    failed.returned = Some(30);
    assert_passes(vec![
        put(1, "v1", 0, 10),
        failed,
        get(2, Some("v1"), 40, 50),
    ]);
}

#[test]
fn deletes_clear_the_key() {
    assert_passes(vec![
        get(2, None, 0, 5),
        put(1, "v1", 10, 20),
        get(2, Some("v1"), 30, 40),
        delete(1, 50, 60),
        get(2, None, 70, 80),
        put(1, "v2", 90, 100),
        get(2, Some("v2"), 110, 120),
    ]);
}

#[test]
fn unknown_delete_may_or_may_not_take_effect() {
    let unknown_delete = op(1, Call::Delete, 20, None, Outcome::Unknown);
    assert_passes(vec![
        put(1, "v1", 0, 10),
        unknown_delete.clone(),
        get(2, Some("v1"), 30, 40),
        get(2, None, 50, 60),
    ]);
    assert_passes(vec![
        put(1, "v1", 0, 10),
        unknown_delete,
        get(2, Some("v1"), 30, 40),
    ]);
}

#[test]
fn stale_get_of_an_older_value_passes() {
    assert_passes(vec![
        put(1, "v1", 0, 10),
        put(1, "v2", 20, 30),
        stale_get(2, Some("v1"), 40, 50),
        stale_get(2, None, 60, 70),
    ]);
}

#[test]
fn reads_with_unknown_or_failed_outcomes_are_dropped() {
    assert_passes(vec![
        put(1, "v1", 0, 10),
        op(2, Call::Get, 20, None, Outcome::Unknown),
        op(2, Call::Get, 30, Some(40), Outcome::Failed),
    ]);
}

#[test]
fn repeated_values_are_not_assumed_unique() {
    assert_passes(vec![
        put(1, "a", 0, 10),
        put(1, "b", 20, 30),
        put(1, "a", 40, 50),
        get(2, Some("a"), 60, 70),
    ]);
}

#[test]
fn value_of_a_failed_put_also_written_by_a_successful_one_is_not_invented() {
    let mut failed = put_with(1, "v1", 0, Outcome::Failed);
    failed.returned = Some(10);
    assert_passes(vec![
        failed,
        put(1, "v1", 20, 30),
        get(2, Some("v1"), 40, 50),
    ]);
}

#[test]
fn empty_history_passes() {
    assert_passes(vec![]);
}

// ---- Budgets, shrinking and display ----

#[test]
fn exhausted_step_budget_is_undecided_not_a_verdict() {
    let ops = vec![put(1, "v1", 0, 10), get(2, None, 100, 110)];
    let options = CheckOptions {
        max_steps: 1,
        ..CheckOptions::default()
    };
    let report = check_linearizable(&history(ops), &options);
    assert!(!report.is_ok());
    assert!(!report.has_violations());
    assert_eq!(report.undecided.len(), 1);
    assert_eq!(report.undecided[0].key, "k");
    assert_eq!(
        report.to_string(),
        "linearizability undecided on key \"k\": step budget ran out after 1 steps\n"
    );
}

#[test]
fn shrinking_can_be_turned_off() {
    let ops = vec![
        put(1, "v1", 0, 10),
        get(3, None, 20, 30),
        put(1, "v2", 40, 50),
    ];
    let options = CheckOptions {
        max_shrink_steps: 0,
        ..CheckOptions::default()
    };
    let report = check_linearizable(&history(ops.clone()), &options);
    let violation = report
        .violation(Property::Linearizability)
        .expect("a lost write");
    assert!(!violation.minimal);
    assert_eq!(violation.ops, ops);
}

#[test]
fn shrinking_drops_unrelated_ops_and_keeps_the_story() {
    let mut ops = vec![];
    for i in 0..40u64 {
        ops.push(op(
            5,
            Call::StaleGet,
            i * 10,
            Some(i * 10 + 5),
            Outcome::Value(None),
        ));
    }
    ops.extend([
        put(1, "v1", 1000, 1010),
        put(1, "v2", 1020, 1030),
        get(2, Some("v2"), 1040, 1050),
        get(2, Some("v1"), 1060, 1070),
        get(2, Some("v1"), 1080, 1090),
    ]);
    let report = check_linearizable(&history(ops), &CheckOptions::default());
    let shrunk = violating_ops(&report, Property::Linearizability);
    assert_eq!(
        shrunk,
        vec![
            put(1, "v1", 1000, 1010),
            put(1, "v2", 1020, 1030),
            get(2, Some("v1"), 1060, 1070)
        ]
    );
}

#[test]
fn violation_displays_a_timeline_in_invocation_order() {
    let ops = vec![
        get(3, Some("v1"), 40, 50),
        put(12, "v2", 20, 30),
        put(1, "v1", 0, 10),
        put_with(2, "v3", 60, Outcome::Unknown),
    ];
    let options = CheckOptions {
        max_shrink_steps: 0,
        ..CheckOptions::default()
    };
    let report = check_linearizable(&history(ops), &options);
    assert_eq!(
        report.to_string(),
        "linearizability violated on key \"k\": no order of these ops, consistent with real \
         time, satisfies a register (4 of 4 ops, partly shrunk, budget ran out)\n\
         \x20 p1  [0 .. 10]  put \"k\" = \"v1\" -> ok\n\
         \x20 p12 [20 .. 30]  put \"k\" = \"v2\" -> ok\n\
         \x20 p3  [40 .. 50]  get \"k\" -> \"v1\"\n\
         \x20 p2  [60 .. ?]  put \"k\" = \"v3\" -> unknown\n"
    );
}

#[test]
fn passing_report_displays_ok() {
    assert_eq!(full_check(vec![put(1, "v1", 0, 10)]).to_string(), "ok\n");
}

// ---- The recorder ----

#[test]
fn recorder_builds_ops_and_leaves_uncompleted_ones_unknown() {
    let mut history = History::new();
    let a = history.invoke(1, "k", Call::Put("v1"), 100);
    let b = history.invoke(2, "k", Call::Get, 150);
    history.complete(a, Outcome::Ok, 200).expect("completes");
    assert_eq!(history.len(), 2);
    assert_eq!(history.op(a), Some(&put(1, "v1", 100, 200)));
    assert_eq!(
        history.op(b),
        Some(&op(2, Call::Get, 150, None, Outcome::Unknown))
    );
    assert!(check(&history, &CheckOptions::default()).is_ok());
}

#[test]
fn recorder_refuses_what_cannot_have_happened() {
    let mut history: History<&str, &str> = History::new();
    let a = history.invoke(1, "k", Call::Put("v1"), 100);
    let b = history.invoke(1, "k", Call::Get, 100);
    assert_eq!(
        history.complete(OpId(7), Outcome::Ok, 200),
        Err(HistoryError::NoSuchOp(OpId(7)))
    );
    assert_eq!(
        history.complete(a, Outcome::Ok, 99),
        Err(HistoryError::ReturnedBeforeInvoked {
            op: a,
            invoked: 100,
            returned: 99
        })
    );
    assert_eq!(
        history.complete(a, Outcome::Value(None), 200),
        Err(HistoryError::OutcomeDoesNotFit { op: a })
    );
    assert_eq!(
        history.complete(b, Outcome::Ok, 200),
        Err(HistoryError::OutcomeDoesNotFit { op: b })
    );
    history.complete(a, Outcome::Ok, 200).expect("completes");
    assert_eq!(
        history.complete(a, Outcome::Ok, 300),
        Err(HistoryError::AlreadyCompleted(a))
    );
}

#[test]
fn from_ops_refuses_malformed_ops() {
    assert_eq!(
        History::from_ops(vec![
            put(1, "v", 0, 10),
            op(1, Call::Get, 5, None, Outcome::Value(None))
        ]),
        Err(HistoryError::MissingReturnTime { op: OpId(1) })
    );
    assert_eq!(
        History::from_ops(vec![put(1, "v", 10, 5)]),
        Err(HistoryError::ReturnedBeforeInvoked {
            op: OpId(0),
            invoked: 10,
            returned: 5
        })
    );
    assert_eq!(
        History::from_ops(vec![op(1, Call::Delete, 0, Some(1), Outcome::Value(None))]),
        Err(HistoryError::OutcomeDoesNotFit { op: OpId(0) })
    );
}

/// Shrinking keeps a write that a kept read observed: removing the delete
/// that explains the absent read would make up a "lost write" of v3 and
/// could hide the real failure, the stale read of v1.
#[test]
fn shrinking_never_removes_a_write_a_kept_read_observed() {
    let ops = vec![
        put(1, "v3", 0, 10),
        delete(2, 20, 30),
        put(1, "v1", 40, 50),
        put(2, "v2", 60, 70),
        get(3, Some("v1"), 80, 90),
        get(3, None, 35, 38),
    ];
    let report = check_linearizable(&history(ops.clone()), &CheckOptions::default());
    let violation = report
        .violation(Property::Linearizability)
        .expect("the stale read");
    assert_eq!(
        violation.ops,
        vec![ops[2].clone(), ops[3].clone(), ops[4].clone()],
        "{violation}"
    );
}

/// The invented-values witness is the invented read alone, even when the
/// key's other reads are fine.
#[test]
fn an_invented_read_is_shown_alone() {
    let ops = vec![
        put(1, "v1", 0, 10),
        get(2, Some("v1"), 20, 30),
        get(3, Some("nobody"), 40, 50),
    ];
    let report = check_no_invented_values(&history(ops.clone()));
    let violation = report
        .violation(Property::NoInventedValues)
        .expect("an invented read");
    assert_eq!(violation.ops, vec![ops[2].clone()]);
    assert!(check_no_invented_values(&history(ops[..2].to_vec())).is_ok());
}

/// A delete that an acknowledged put separates from an absent read cannot
/// explain it, so shrinking drops it: the witness is the put and the read.
#[test]
fn shrinking_drops_deletes_a_later_put_shields_from_the_read() {
    let ops = vec![
        delete(1, 0, 10),
        put(2, "v1", 20, 30),
        delete(1, 5, 15),
        get(3, None, 40, 50),
    ];
    let report = check_linearizable(&history(ops.clone()), &CheckOptions::default());
    let violation = report
        .violation(Property::Linearizability)
        .expect("a lost put");
    assert_eq!(violation.ops, vec![ops[1].clone(), ops[3].clone()]);
}

// ---- Values put with a time to live ----

fn put_ttl(value: &'static str, ttl: u64, invoked: u64, returned: Option<u64>) -> TestOp {
    let outcome = match returned {
        Some(_) => Outcome::Ok,
        None => Outcome::Unknown,
    };
    op(1, Call::PutTtl(value, ttl), invoked, returned, outcome)
}

/// The linearizability check with clock error `e`.
fn check_ttl(ops: Vec<TestOp>, e: u64) -> Report<&'static str, &'static str> {
    let options = CheckOptions {
        clock_error: e,
        ..CheckOptions::default()
    };
    check(&history(ops), &options)
}

fn caught(report: &Report<&'static str, &'static str>) -> bool {
    report.violation(Property::Linearizability).is_some()
}

// A put of "v" with ttl 1000 over [100, 200] and clock error 10: the value
// may vanish from 100 + 1000 - 20 = 1080 and is gone from 200 + 1000 + 20
// = 1220.

#[test]
fn an_expiring_value_reads_until_its_window_opens_and_is_gone_after_it_closes() {
    let v = || put_ttl("v", 1000, 100, Some(200));
    assert!(check_ttl(vec![v(), get(2, Some("v"), 300, 1079)], 10).is_ok());
    assert!(check_ttl(vec![v(), get(2, None, 1221, 1230)], 10).is_ok());
    // Gone before the window opened: caught.
    assert!(caught(&check_ttl(vec![v(), get(2, None, 300, 1079)], 10)));
    // Still there after the window closed: caught.
    let late = check_ttl(vec![v(), get(2, Some("v"), 1221, 1230)], 10);
    assert!(caught(&late));
    // The witness keeps the put and the late read.
    let witness = late.violation(Property::Linearizability).unwrap();
    assert_eq!(witness.ops.len(), 2);
    assert_eq!(
        witness.ops[0].to_string(),
        r#"p1  [100 .. 200]  put "k" = "v" ttl 1000 -> ok"#
    );
}

#[test]
fn an_expiring_value_may_come_and_go_inside_its_window() {
    // Nodes whose clocks disagree: absent, then the value again, then
    // absent, all between 1080 and 1220.
    let ops = vec![
        put_ttl("v", 1000, 100, Some(200)),
        get(2, None, 1085, 1090),
        get(3, Some("v"), 1100, 1110),
        get(2, None, 1150, 1160),
        get(3, Some("v"), 1200, 1219),
        get(2, None, 1225, 1230),
    ];
    assert!(check_ttl(ops, 10).is_ok());
}

#[test]
fn the_clock_error_widens_the_window_on_both_sides() {
    let v = || put_ttl("v", 1000, 100, Some(200));
    // At 1050 the value may only be gone if clocks may err by 25 or more
    // (1100 - 50 = 1050).
    assert!(caught(&check_ttl(vec![v(), get(2, None, 1050, 1050)], 24)));
    assert!(check_ttl(vec![v(), get(2, None, 1050, 1050)], 25).is_ok());
    // At 1240 it may only still be there if they may err by 20 or more.
    assert!(caught(&check_ttl(
        vec![v(), get(2, Some("v"), 1240, 1240)],
        19
    )));
    assert!(check_ttl(vec![v(), get(2, Some("v"), 1240, 1240)], 20).is_ok());
}

#[test]
fn an_overwrite_ends_the_expiry_of_the_value_it_replaced() {
    // A plain put over the expiring value does not expire...
    let ops = vec![
        put_ttl("v", 1000, 100, Some(200)),
        put(2, "w", 300, 400),
        get(3, Some("w"), 2000, 2010),
    ];
    assert!(check_ttl(ops, 10).is_ok());
    let ops = vec![
        put_ttl("v", 1000, 100, Some(200)),
        put(2, "w", 300, 400),
        get(3, None, 2000, 2010),
    ];
    assert!(caught(&check_ttl(ops, 10)));
    // ...even when it puts an equal value: expiry belongs to the write.
    let ops = vec![
        put_ttl("v", 1000, 100, Some(200)),
        put(2, "v", 300, 400),
        get(3, Some("v"), 2000, 2010),
    ];
    assert!(check_ttl(ops, 10).is_ok());
    // A new expiring put restarts the clock.
    let ops = vec![
        put_ttl("v", 1000, 100, Some(200)),
        put_ttl("w", 1000, 900, Some(950)),
        get(3, Some("w"), 1500, 1510),
        get(3, None, 2000, 2010),
    ];
    assert!(check_ttl(ops, 10).is_ok());
}

#[test]
fn an_unknown_expiring_put_may_take_effect_late_and_expire_late() {
    // Applied long after its invocation, so its value may be read late...
    let ops = vec![put_ttl("v", 1000, 100, None), get(2, Some("v"), 5000, 5010)];
    assert!(check_ttl(ops, 10).is_ok());
    // ...and, unread, its expiry may still explain an absent read after an
    // earlier acknowledged put...
    let ops = vec![
        put(2, "w", 0, 50),
        put_ttl("v", 1000, 100, None),
        get(2, None, 5000, 5010),
    ];
    assert!(check_ttl(ops, 10).is_ok());
    // ...but not before its window could open.
    let ops = vec![
        put(2, "w", 0, 50),
        put_ttl("v", 1000, 100, None),
        get(2, None, 500, 510),
    ];
    assert!(caught(&check_ttl(ops, 10)));
}

#[test]
fn an_expiring_value_is_a_put_to_the_invented_values_check() {
    let ops = vec![
        put_ttl("v", 1000, 100, Some(200)),
        stale_get(2, Some("v"), 150, 160),
    ];
    assert!(check_no_invented_values(&history(ops)).is_ok());
}

#[test]
fn shrinking_drops_an_expiring_put_a_later_write_shields_from_the_read() {
    // "w" follows "a" in real time, so a's expiry cannot explain the read
    // of absent after "w": the witness is "w" and the read alone.
    let ops = vec![
        put_ttl("a", 100, 0, Some(10)),
        put(2, "w", 200, 210),
        get(3, None, 300, 310),
    ];
    let report = check_ttl(ops, 10);
    let witness = report.violation(Property::Linearizability).unwrap();
    assert!(witness.minimal);
    let shown: Vec<String> = witness.ops.iter().map(|op| op.to_string()).collect();
    assert_eq!(
        shown,
        [
            r#"p2  [200 .. 210]  put "k" = "w" -> ok"#,
            r#"p3  [300 .. 310]  get "k" -> absent"#
        ]
    );
}
