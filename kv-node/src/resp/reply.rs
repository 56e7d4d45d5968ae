//! RESP2 replies and their encoding.

use bytes::{BufMut, Bytes, BytesMut};

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+<text>`: a status such as `OK` or `PONG`.
    Status(&'static str),
    /// `-<text>`: an error; the text starts with its prefix (`ERR`,
    /// `WRONGPASS`, `TRYAGAIN`, ...).
    Error(String),
    /// `:<n>`.
    Integer(i64),
    /// `$<len>` and the bytes, or `$-1` for `None`.
    Bulk(Option<Bytes>),
    /// `*<n>` and the elements.
    Array(Vec<Reply>),
}

/// `+OK`.
pub const OK: Reply = Reply::Status("OK");

impl Reply {
    /// A bulk reply holding `bytes`.
    pub fn bulk(bytes: impl Into<Bytes>) -> Reply {
        Reply::Bulk(Some(bytes.into()))
    }

    /// The null bulk reply (`$-1`).
    pub fn nil() -> Reply {
        Reply::Bulk(None)
    }

    /// An `ERR` error.
    pub fn err(message: impl std::fmt::Display) -> Reply {
        Reply::Error(format!("ERR {message}"))
    }

    /// An array of bulk strings.
    pub fn strings<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Reply {
        Reply::Array(
            items
                .into_iter()
                .map(|s| Reply::bulk(Bytes::copy_from_slice(s.as_ref().as_bytes())))
                .collect(),
        )
    }

    /// Appends the wire form to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Reply::Status(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(e) => line(out, b'-', &one_line(e)),
            Reply::Integer(n) => line(out, b':', n.to_string().as_bytes()),
            Reply::Bulk(None) => out.put_slice(b"$-1\r\n"),
            Reply::Bulk(Some(b)) => {
                line(out, b'$', b.len().to_string().as_bytes());
                out.put_slice(b);
                out.put_slice(b"\r\n");
            }
            Reply::Array(items) => {
                line(out, b'*', items.len().to_string().as_bytes());
                for item in items {
                    item.encode(out);
                }
            }
        }
    }
}

fn line(out: &mut BytesMut, prefix: u8, body: &[u8]) {
    out.put_u8(prefix);
    out.put_slice(body);
    out.put_slice(b"\r\n");
}

/// An error line may not contain CR or LF: they become spaces.
fn one_line(s: &str) -> Vec<u8> {
    s.bytes()
        .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_encode_as_redis_does() {
        let cases = [
            (OK, "+OK\r\n"),
            (Reply::err("x\r\ny"), "-ERR x  y\r\n"),
            (Reply::Integer(-3), ":-3\r\n"),
            (Reply::nil(), "$-1\r\n"),
            (Reply::bulk(&b"a\r\nb"[..]), "$4\r\na\r\nb\r\n"),
            (
                Reply::Array(vec![Reply::Integer(1), Reply::strings(["x"])]),
                "*2\r\n:1\r\n*1\r\n$1\r\nx\r\n",
            ),
        ];
        for (reply, wire) in cases {
            let mut out = BytesMut::new();
            reply.encode(&mut out);
            assert_eq!(out, wire.as_bytes());
        }
    }
}
