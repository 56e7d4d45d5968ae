//! Classification of user input into V1, V2 or V3 (lossless by construction).
//!
//! 1. Parse the input with `serde_json`. If it is not a JSON object or array
//!    (invalid JSON, a scalar such as `"x"` or `42`, a number out of f64
//!    range, nesting deeper than serde_json's limit of 127), it is V1 text,
//!    kept byte for byte.
//! 2. An object with exactly the members `"data"` then `"timestamp"`, both
//!    strings, the timestamp canonical ([`Timestamp::parse_canonical`]), is a
//!    V2 event *if* rendering that event gives back the input exactly. The
//!    last check rejects anything the event form cannot reproduce: other
//!    spacing, `\u` escapes, duplicate keys, surrounding whitespace.
//! 3. Any other object or array is V3.

use serde_json::Value as Json;

use crate::render::{self, MatchesText};
use crate::timestamp::Timestamp;
use crate::value::Value;

/// See the module docs.
pub(crate) fn classify(input: &str) -> Value {
    match serde_json::from_str::<Json>(input) {
        Ok(json @ (Json::Object(_) | Json::Array(_))) => {
            event(&json, input).unwrap_or(Value::Json(json))
        }
        _ => Value::Text(input.to_owned()),
    }
}

/// The V2 event `json` holds, if it is one and renders back to `input`.
fn event(json: &Json, input: &str) -> Option<Value> {
    let members = json.as_object()?;
    let mut iter = members.iter();
    let (data, timestamp) = match (iter.next()?, iter.next()?, iter.next()) {
        ((data_key, Json::String(data)), (ts_key, Json::String(ts)), None)
            if data_key == "data" && ts_key == "timestamp" =>
        {
            (data, Timestamp::parse_canonical(ts)?)
        }
        _ => return None,
    };
    let renders_back = MatchesText::check(input, |out| render::event(data, timestamp, out));
    renders_back.then(|| Value::Event {
        data: data.clone(),
        timestamp,
    })
}
