//! One walk over an encoded value, shared by [`decode`](crate::decode) and
//! [`validate`](crate::validate).
//!
//! [`walk`] reads the version byte, the schema's payload (through `v1`..`v4`)
//! and checks that nothing follows; every rule about the bytes (lengths,
//! varints, UTF-8, timestamp range, V3 tags, number forms, nesting depth) is
//! applied there, once. What the walk *produces* is left to a [`Sink`]:
//!
//! - [`Build`] builds the [`Value`] (owned strings, a `serde_json` tree);
//! - [`Check`] builds nothing and only answers the [`Schema`].
//!
//! The one rule a sink applies is the V3 duplicate-key rule, because finding a
//! repeated key needs the keys seen so far: [`Build`] has them in its
//! `serde_json::Map`, [`Check`] keeps borrowed key slices (see [`Check`]).
//! Both report the first repeated key in input order, after its value has
//! been walked, exactly as decoding always did.

use serde_json::{Map, Number, Value as Json};

use crate::error::DecodeError;
use crate::reader::Reader;
use crate::timestamp::Timestamp;
use crate::value::{Schema, Value};
use crate::{v1, v2, v3, v4};

/// A V3 leaf node: everything but arrays and objects.
pub(crate) enum Leaf<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer or a finite float (checked by the walk).
    Number(Number),
    /// A string, already checked to be UTF-8.
    String(&'a str),
}

/// What a walk over an encoding produces. The walk calls these in input
/// order; a sink never sees bytes, only checked pieces borrowed from them.
pub(crate) trait Sink<'a> {
    /// The result of a whole walk.
    type Value;
    /// The result of one V3 node.
    type Node;
    /// A V3 array being filled.
    type Array;
    /// A V3 object being filled.
    type Object;

    /// A V1 text.
    fn text(&mut self, text: &'a str) -> Self::Value;
    /// A V2 event.
    fn event(&mut self, data: &'a str, timestamp: Timestamp) -> Self::Value;
    /// A V3 value, given its root node.
    fn json(&mut self, root: Self::Node) -> Self::Value;
    /// V4 bytes.
    fn bytes(&mut self, bytes: &'a [u8]) -> Self::Value;

    /// A V3 leaf.
    fn leaf(&mut self, leaf: Leaf<'a>) -> Self::Node;
    /// Starts a V3 array; `capacity` is a safe number of elements to reserve.
    fn start_array(&mut self, capacity: usize) -> Self::Array;
    /// Appends an element.
    fn push(&mut self, array: &mut Self::Array, item: Self::Node);
    /// Finishes an array.
    fn end_array(&mut self, array: Self::Array) -> Self::Node;
    /// Starts a V3 object of `count` members; `capacity` as for arrays.
    fn start_object(&mut self, count: usize, capacity: usize) -> Self::Object;
    /// Adds a member whose key starts at `offset`, after its value was
    /// walked. May report [`DecodeError::DuplicateKey`] now, or leave it to
    /// [`Sink::end_object`] / [`Sink::abandon_object`].
    fn insert(
        &mut self,
        object: &mut Self::Object,
        offset: usize,
        key: &'a str,
        item: Self::Node,
    ) -> Result<(), DecodeError>;
    /// Finishes an object whose every member was inserted.
    fn end_object(&mut self, object: Self::Object) -> Result<Self::Node, DecodeError>;
    /// Gives up an object because reading a member failed with `error`;
    /// returns the error the walk reports: a repeated key among the members
    /// inserted so far if there is one (it came first in input order), else
    /// `error`.
    fn abandon_object(&mut self, object: Self::Object, error: DecodeError) -> DecodeError;
}

/// Walks one value that fills `bytes` exactly.
pub(crate) fn walk<'a, S: Sink<'a>>(
    bytes: &'a [u8],
    sink: &mut S,
) -> Result<S::Value, DecodeError> {
    let (&version, _) = bytes.split_first().ok_or(DecodeError::Empty)?;
    let schema = Schema::from_version(version).ok_or(DecodeError::UnknownVersion(version))?;
    let mut reader = Reader::new(bytes, 1);
    let value = match schema {
        Schema::V1 => {
            let text = v1::read(&mut reader)?;
            sink.text(text)
        }
        Schema::V2 => {
            let (data, timestamp) = v2::read(&mut reader)?;
            sink.event(data, timestamp)
        }
        Schema::V3 => {
            let root = v3::walk(&mut reader, sink)?;
            sink.json(root)
        }
        Schema::V4 => {
            let bytes = v4::read(&mut reader)?;
            sink.bytes(bytes)
        }
    };
    reader.finish()?;
    Ok(value)
}

/// The sink of [`decode`](crate::decode): builds the [`Value`].
pub(crate) struct Build;

impl<'a> Sink<'a> for Build {
    type Value = Value;
    type Node = Json;
    type Array = Vec<Json>;
    type Object = Map<String, Json>;

    fn text(&mut self, text: &'a str) -> Value {
        Value::Text(text.to_owned())
    }

    fn event(&mut self, data: &'a str, timestamp: Timestamp) -> Value {
        Value::Event {
            data: data.to_owned(),
            timestamp,
        }
    }

    fn json(&mut self, root: Json) -> Value {
        Value::Json(root)
    }

    fn bytes(&mut self, bytes: &'a [u8]) -> Value {
        Value::Bytes(bytes.to_vec())
    }

    fn leaf(&mut self, leaf: Leaf<'a>) -> Json {
        match leaf {
            Leaf::Null => Json::Null,
            Leaf::Bool(value) => Json::Bool(value),
            Leaf::Number(number) => Json::Number(number),
            Leaf::String(text) => Json::String(text.to_owned()),
        }
    }

    fn start_array(&mut self, capacity: usize) -> Vec<Json> {
        Vec::with_capacity(capacity)
    }

    fn push(&mut self, array: &mut Vec<Json>, item: Json) {
        array.push(item);
    }

    fn end_array(&mut self, array: Vec<Json>) -> Json {
        Json::Array(array)
    }

    fn start_object(&mut self, _count: usize, capacity: usize) -> Map<String, Json> {
        Map::with_capacity(capacity)
    }

    fn insert(
        &mut self,
        object: &mut Map<String, Json>,
        offset: usize,
        key: &'a str,
        item: Json,
    ) -> Result<(), DecodeError> {
        match object.insert(key.to_owned(), item) {
            Some(_) => Err(DecodeError::DuplicateKey { offset }),
            None => Ok(()),
        }
    }

    fn end_object(&mut self, object: Map<String, Json>) -> Result<Json, DecodeError> {
        Ok(Json::Object(object))
    }

    fn abandon_object(&mut self, _object: Map<String, Json>, error: DecodeError) -> DecodeError {
        // Duplicates were reported by `insert` as they came.
        error
    }
}

/// Objects with at most this many members keep their keys on the stack and
/// are checked for duplicates member by member; larger ones use
/// [`Check::keys`].
const FEW_KEYS: usize = 16;

/// The sink of [`validate`](crate::validate): builds nothing, answers the
/// [`Schema`].
///
/// It allocates nothing except for V3 objects of more than [`FEW_KEYS`]
/// members: their keys (borrowed slices with their offsets) go on one scratch
/// stack shared by the whole walk and reused by later objects (room for up to
/// 256 more keys is reserved when a large object starts, so a value whose
/// large objects have at most 256 members, none inside another, allocates
/// once). Each object's part of it
/// is sorted to find a repeated key when the object ends (or is abandoned),
/// so a hostile object costs `n log n`, not `n²`.
#[derive(Default)]
pub(crate) struct Check<'a> {
    /// Offsets and keys of the open large objects, innermost last.
    keys: Vec<(usize, &'a str)>,
}

/// The keys of one V3 object being checked.
#[expect(
    clippy::large_enum_variant,
    reason = "the keys of small objects live in the walk's stack frame so that checking allocates nothing"
)]
pub(crate) enum Keys<'a> {
    /// An object of at most [`FEW_KEYS`] members: the keys inserted so far.
    Few {
        /// The keys; the first `len` are set.
        keys: [&'a str; FEW_KEYS],
        /// How many keys were inserted.
        len: usize,
    },
    /// A larger object: its keys are `Check::keys[start..]`.
    Many {
        /// Where the object's keys start in `Check::keys`.
        start: usize,
    },
}

impl<'a> Check<'a> {
    /// The offset of the first repeated key (in input order) among the keys
    /// from `start` on, then drops those keys.
    fn first_repeat(&mut self, start: usize) -> Option<usize> {
        let keys = self.keys.get_mut(start..).unwrap_or_default();
        keys.sort_unstable_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(&b.0)));
        let first = keys
            .windows(2)
            .filter_map(|pair| match pair {
                [(_, earlier), (offset, later)] if earlier == later => Some(*offset),
                _ => None,
            })
            .min();
        self.keys.truncate(start);
        first
    }
}

impl<'a> Sink<'a> for Check<'a> {
    type Value = Schema;
    type Node = ();
    type Array = ();
    type Object = Keys<'a>;

    fn text(&mut self, _text: &'a str) -> Schema {
        Schema::V1
    }

    fn event(&mut self, _data: &'a str, _timestamp: Timestamp) -> Schema {
        Schema::V2
    }

    fn json(&mut self, _root: ()) -> Schema {
        Schema::V3
    }

    fn bytes(&mut self, _bytes: &'a [u8]) -> Schema {
        Schema::V4
    }

    fn leaf(&mut self, _leaf: Leaf<'a>) {}

    fn start_array(&mut self, _capacity: usize) {}

    fn push(&mut self, _array: &mut (), _item: ()) {}

    fn end_array(&mut self, _array: ()) {}

    fn start_object(&mut self, count: usize, capacity: usize) -> Keys<'a> {
        if count <= FEW_KEYS {
            Keys::Few {
                keys: [""; FEW_KEYS],
                len: 0,
            }
        } else {
            // One allocation for the first open large object of up to
            // `capacity` (at most 256) members, instead of growing by doubling.
            self.keys.reserve(capacity);
            Keys::Many {
                start: self.keys.len(),
            }
        }
    }

    fn insert(
        &mut self,
        object: &mut Keys<'a>,
        offset: usize,
        key: &'a str,
        _item: (),
    ) -> Result<(), DecodeError> {
        match object {
            Keys::Few { keys, len } => {
                let seen = keys.get(..*len).unwrap_or_default();
                if seen.contains(&key) {
                    return Err(DecodeError::DuplicateKey { offset });
                }
                // The walk inserts at most `count <= FEW_KEYS` members.
                if let Some(slot) = keys.get_mut(*len) {
                    *slot = key;
                    *len += 1;
                }
            }
            Keys::Many { .. } => self.keys.push((offset, key)),
        }
        Ok(())
    }

    fn end_object(&mut self, object: Keys<'a>) -> Result<(), DecodeError> {
        match object {
            Keys::Few { .. } => Ok(()),
            Keys::Many { start } => match self.first_repeat(start) {
                Some(offset) => Err(DecodeError::DuplicateKey { offset }),
                None => Ok(()),
            },
        }
    }

    fn abandon_object(&mut self, object: Keys<'a>, error: DecodeError) -> DecodeError {
        match object {
            Keys::Few { .. } => error,
            Keys::Many { start } => match self.first_repeat(start) {
                Some(offset) => DecodeError::DuplicateKey { offset },
                None => error,
            },
        }
    }
}
