//! What the checks return: violations with their shrunk histories, and
//! keys the step budget left undecided.

use std::fmt;

use crate::history::Op;

/// A property a history must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Property {
    /// The key's puts, deletes and leader reads can be ordered, consistently
    /// with real time, so that every read sees the latest write
    /// ([`crate::check_linearizable`]).
    Linearizability,
    /// Every value read was written by a put that was invoked before the
    /// read returned and did not fail ([`crate::check_no_invented_values`]).
    NoInventedValues,
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Property::Linearizability => "linearizability",
            Property::NoInventedValues => "no invented values",
        })
    }
}

impl Property {
    /// What a violation of the property means, in a sentence.
    fn explain(self) -> &'static str {
        match self {
            Property::Linearizability => {
                "no order of these ops, consistent with real time, satisfies a register"
            }
            Property::NoInventedValues => {
                "a read returned a value that no put to the key wrote \
                 (none invoked before the read returned and not failed)"
            }
        }
    }
}

/// A property one key's history breaks, with the smallest sub-history
/// that still breaks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation<K, V> {
    /// The property broken.
    pub property: Property,
    /// The key whose history breaks it (properties are checked per key).
    pub key: K,
    /// The shrunk sub-history, in invocation order: removing any one op
    /// makes it satisfy the property (if `minimal`). For linearizability,
    /// removals that would make a read invented are not taken, so the
    /// puts a read's value came from stay in the story.
    pub ops: Vec<Op<K, V>>,
    /// How many ops the key had in the checked history.
    pub original_len: usize,
    /// Whether shrinking finished; `false` if its budget ran out first (the
    /// ops still break the property, but some may be removable).
    pub minimal: bool,
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Display for Violation<K, V> {
    /// A header naming the property and key, then one timeline line per op
    /// (see [`Op`]'s `Display`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shrunk = if self.minimal {
            "shrunk"
        } else {
            "partly shrunk, budget ran out"
        };
        writeln!(
            f,
            "{} violated on key {:?}: {} ({} of {} ops, {shrunk})",
            self.property,
            self.key,
            self.property.explain(),
            self.ops.len(),
            self.original_len,
        )?;
        for op in &self.ops {
            writeln!(f, "  {op}")?;
        }
        Ok(())
    }
}

/// A key whose linearizability the search could not decide within its step
/// budget: neither a pass nor a violation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undecided<K> {
    /// The key.
    pub key: K,
    /// The steps spent before giving up.
    pub steps: u64,
}

impl<K: fmt::Debug> fmt::Display for Undecided<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "linearizability undecided on key {:?}: step budget ran out after {} steps",
            self.key, self.steps
        )
    }
}

/// The result of checking a history: every violation found and every key
/// left undecided, ordered by key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report<K, V> {
    /// The properties broken, at most one per key and property.
    pub violations: Vec<Violation<K, V>>,
    /// The keys whose linearizability was not decided.
    pub undecided: Vec<Undecided<K>>,
}

impl<K, V> Default for Report<K, V> {
    fn default() -> Self {
        Report {
            violations: Vec::new(),
            undecided: Vec::new(),
        }
    }
}

impl<K, V> Report<K, V> {
    /// Whether the history passed: no violation and nothing undecided.
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty() && self.undecided.is_empty()
    }

    /// Whether some property was definitely broken.
    pub fn has_violations(&self) -> bool {
        !self.violations.is_empty()
    }

    /// The violation of `property`, if the report has one (the first by
    /// key).
    pub fn violation(&self, property: Property) -> Option<&Violation<K, V>> {
        self.violations.iter().find(|v| v.property == property)
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Display for Report<K, V> {
    /// `ok`, or each violation and undecided key, separated by blank lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_ok() {
            return writeln!(f, "ok");
        }
        let violations = self.violations.iter().map(|v| v as &dyn fmt::Display);
        let undecided = self.undecided.iter().map(|u| u as &dyn fmt::Display);
        for (i, part) in violations.chain(undecided).enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{part}")?;
        }
        Ok(())
    }
}
