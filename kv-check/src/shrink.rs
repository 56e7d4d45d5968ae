//! Greedy shrinking of a failing sub-history.
//!
//! Removal is tried in chunks first (halves, then quarters, and so on, as
//! in delta debugging) because a failing key of a long test can hold
//! thousands of ops and removing them one at a time would re-run the check
//! thousands of times per round. The last rounds remove single ops and
//! repeat until none can be removed, so the result is 1-minimal: removing
//! any one of its ops makes the failure go away.

/// What one trial of the failure predicate found.
pub(crate) struct Trial {
    /// Whether the candidate still fails the same way.
    pub(crate) fails: bool,
    /// The work the trial took, charged to the budget.
    pub(crate) steps: u64,
}

/// A shrunk sub-history.
pub(crate) struct Shrunk {
    /// The positions kept, in their original order.
    pub(crate) kept: Vec<usize>,
    /// Whether shrinking finished (no single op can be removed) rather than
    /// running out of budget.
    pub(crate) minimal: bool,
}

/// Shrinks `kept` (which must fail) while `fails` says the candidate still
/// fails, spending at most about `budget` steps.
pub(crate) fn shrink(
    mut kept: Vec<usize>,
    budget: u64,
    mut fails: impl FnMut(&[usize]) -> Trial,
) -> Shrunk {
    let mut spent = 0u64;
    let mut chunk = (kept.len() / 2).max(1);
    loop {
        let mut removed_any = false;
        let mut start = 0;
        while start < kept.len() {
            if spent >= budget {
                return Shrunk {
                    kept,
                    minimal: false,
                };
            }
            let end = (start + chunk).min(kept.len());
            let candidate: Vec<usize> = kept[..start].iter().chain(&kept[end..]).copied().collect();
            let trial = fails(&candidate);
            spent = spent.saturating_add(trial.steps.max(1));
            if trial.fails {
                kept = candidate;
                removed_any = true;
            } else {
                start = end;
            }
        }
        if chunk == 1 && !removed_any {
            return Shrunk {
                kept,
                minimal: true,
            };
        }
        chunk = (chunk / 2).max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails while both 3 and 7 are present: shrinks to exactly those.
    #[test]
    fn shrinks_to_the_ops_the_failure_needs() {
        let shrunk = shrink((0..20).collect(), u64::MAX, |c| Trial {
            fails: c.contains(&3) && c.contains(&7),
            steps: 1,
        });
        assert_eq!(shrunk.kept, vec![3, 7]);
        assert!(shrunk.minimal);
    }

    #[test]
    fn stops_when_the_budget_runs_out() {
        let shrunk = shrink((0..20).collect(), 2, |c| Trial {
            fails: c.contains(&3),
            steps: 1,
        });
        assert!(!shrunk.minimal);
        assert!(shrunk.kept.contains(&3));
        assert!(shrunk.kept.len() < 20);
    }
}
