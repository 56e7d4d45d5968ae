//! The simulated disk of feature `sim` (`kv_storage::sim`): a power loss
//! keeps what was synced plus the prefix the caller chooses, torn records
//! are cut on reopen, and armed sync and append failures behave as the
//! real ones do. Run by `.ci/run` (`cargo test -p kv-storage --features sim`).
#![cfg(feature = "sim")]

use kv_storage::sim::{self, Faults};
use kv_storage::{Error, Options, Store, SyncPolicy};

fn options(sync: SyncPolicy) -> Options {
    Options {
        sync,
        ..Options::default()
    }
}

/// `store.put(key, value)` with `faults` armed for the store's `dir`.
fn put_with_faults(
    store: &Store,
    dir: &std::path::Path,
    faults: Faults,
    key: &[u8],
    value: &[u8],
) -> Result<kv_storage::Position, Error> {
    sim::set_faults(dir, faults);
    let put = store.put(key, value);
    sim::set_faults(dir, Faults::default());
    put
}

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:04}").into_bytes()
}

/// Ten synced puts, then ten more; the power goes with `keep` of the
/// unsynced bytes. Returns how many of the second ten survive (they must
/// be a prefix) and what `lose_unsynced` reported.
fn power_loss_keeping(keep: impl FnMut(u64) -> u64) -> (usize, sim::Lost) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options(SyncPolicy::Never)).unwrap();
    for i in 0..10 {
        store.put(&key(i), b"synced value").unwrap();
    }
    store.sync().unwrap();
    for i in 10..20 {
        store.put(&key(i), b"unsynced value").unwrap();
    }
    let durable = sim::durable_under(dir.path());
    assert_eq!(durable.len(), 1, "one active segment: {durable:?}");
    drop(store);
    let lost = sim::lose_unsynced(&durable, keep).unwrap();
    let store = Store::open(dir.path(), options(SyncPolicy::Never)).unwrap();
    for i in 0..10 {
        assert_eq!(
            store.get(&key(i)).unwrap().as_deref(),
            Some(&b"synced value"[..]),
            "synced key {i} lost"
        );
    }
    let survivors: Vec<bool> = (10..20)
        .map(|i| store.get(&key(i)).unwrap().is_some())
        .collect();
    let n = survivors.iter().take_while(|&&s| s).count();
    assert!(
        survivors[n..].iter().all(|&s| !s),
        "survivors are not a prefix: {survivors:?}"
    );
    (n, lost)
}

#[test]
fn a_power_loss_keeps_the_synced_records_and_a_chosen_prefix() {
    let (none, lost) = power_loss_keeping(|_| 0);
    assert_eq!(none, 0);
    assert_eq!(lost.segments, 1);
    assert!(lost.unsynced > 0);
    assert_eq!(lost.lost, lost.unsynced);

    let (all, lost) = power_loss_keeping(|n| n);
    assert_eq!(all, 10);
    assert_eq!(lost.lost, 0);

    // Half the unsynced bytes: some whole records, then a torn one that
    // reopening cuts.
    let (half, lost) = power_loss_keeping(|n| n / 2);
    assert!((1..10).contains(&half), "kept {half} of 10");
    assert_eq!(lost.lost, lost.unsynced - lost.unsynced / 2);
}

#[test]
fn bytes_that_survived_a_crash_are_still_unsynced_until_a_sync() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options(SyncPolicy::Never)).unwrap();
    store.put(b"a", b"1").unwrap();
    store.sync().unwrap();
    store.put(b"b", b"2").unwrap();
    let before_crash = sim::durable_under(dir.path());
    drop(store);
    sim::crashed(&before_crash);
    // A process crash (no power loss): the store reopens with "b", but
    // "b" is only in the page cache, so a later power loss takes it.
    let store = Store::open(dir.path(), options(SyncPolicy::Never)).unwrap();
    assert!(store.get(b"b").unwrap().is_some());
    assert_eq!(sim::durable_under(dir.path()), before_crash);
    drop(store);
    sim::lose_unsynced(&before_crash, |_| 0).unwrap();
    let store = Store::open(dir.path(), options(SyncPolicy::Never)).unwrap();
    assert!(store.get(b"a").unwrap().is_some());
    assert_eq!(store.get(b"b").unwrap(), None);
}

#[test]
fn an_armed_sync_failure_poisons_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options(SyncPolicy::Always)).unwrap();
    store.put(b"before", b"1").unwrap();
    assert!(!store.is_poisoned());
    let faults = Faults {
        fail_syncs: true,
        ..Faults::default()
    };
    let failed = put_with_faults(&store, dir.path(), faults, b"during", b"2");
    // Said so, for a leader that must not answer reads with it.
    assert!(store.is_poisoned());
    // Applied (readers see it) but not durable: its outcome is unknown.
    assert!(
        matches!(failed, Err(Error::NotDurable { .. })),
        "{failed:?}"
    );
    assert_eq!(store.get(b"during").unwrap().as_deref(), Some(&b"2"[..]));
    // Retrying could report success for pages the kernel dropped.
    assert!(matches!(store.put(b"after", b"3"), Err(Error::Poisoned)));
}

#[test]
fn a_full_disk_fails_appends_and_leaves_no_partial_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options(SyncPolicy::Never)).unwrap();
    store.put(b"before", b"1").unwrap();
    let faults = Faults {
        disk_full: true,
        ..Faults::default()
    };
    let failed = put_with_faults(&store, dir.path(), faults, b"during", &[7; 300]);
    let Err(Error::Io { source, .. }) = failed else {
        panic!("expected ENOSPC, got {failed:?}");
    };
    assert_eq!(source.raw_os_error(), Some(28));
    assert_eq!(store.get(b"during").unwrap(), None);
    store.put(b"after", b"3").unwrap();
    drop(store);
    let store = Store::open(dir.path(), options(SyncPolicy::Never)).unwrap();
    assert_eq!(store.get(b"before").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(store.get(b"during").unwrap(), None);
    assert_eq!(store.get(b"after").unwrap().as_deref(), Some(&b"3"[..]));
}
