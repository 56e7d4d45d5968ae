//! A minimal RESP2 client codec: GET, SET and PING requests as arrays of
//! bulk strings, and the reply types those commands get back.

use anyhow::{Result, bail};
use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::conn::Reply;

fn bulk(out: &mut BytesMut, arg: &[u8]) {
    out.put_u8(b'$');
    out.put_slice(arg.len().to_string().as_bytes());
    out.put_slice(b"\r\n");
    out.put_slice(arg);
    out.put_slice(b"\r\n");
}

fn command(out: &mut BytesMut, args: &[&[u8]]) {
    out.put_u8(b'*');
    out.put_slice(args.len().to_string().as_bytes());
    out.put_slice(b"\r\n");
    for arg in args {
        bulk(out, arg);
    }
}

/// Appends `GET key`.
pub fn encode_get(out: &mut BytesMut, key: &[u8]) {
    command(out, &[b"GET", key]);
}

/// Appends `SET key value`.
pub fn encode_set(out: &mut BytesMut, key: &[u8], value: &[u8]) {
    command(out, &[b"SET", key, value]);
}

/// Appends `PING`.
pub fn encode_ping(out: &mut BytesMut) {
    command(out, &[b"PING"]);
}

/// The index of the first `\r\n` at or after `from`.
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

fn parse_int(digits: &[u8]) -> Result<i64> {
    Ok(std::str::from_utf8(digits)?.parse()?)
}

/// Takes one complete reply off the front of `buf`, or `None` when more
/// bytes are needed.
pub fn parse(buf: &mut BytesMut) -> Result<Option<Reply>> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    let Some(end) = line_end(buf, 1) else {
        return Ok(None);
    };
    let reply = match kind {
        b'+' => {
            let ok = &buf[1..end] == b"OK";
            let pong = &buf[1..end] == b"PONG";
            let reply = match (ok, pong) {
                (true, _) => Reply::Ok,
                (_, true) => Reply::Pong,
                _ => Reply::Error(String::from_utf8_lossy(&buf[1..end]).into_owned()),
            };
            buf.advance(end + 2);
            reply
        }
        b'-' | b':' => {
            let text = String::from_utf8_lossy(&buf[1..end]).into_owned();
            buf.advance(end + 2);
            Reply::Error(text)
        }
        b'$' => {
            let len = parse_int(&buf[1..end])?;
            if len < 0 {
                buf.advance(end + 2);
                Reply::Value(None)
            } else {
                let start = end + 2;
                let stop = start + len as usize;
                if buf.len() < stop + 2 {
                    return Ok(None);
                }
                let mut frame = buf.split_to(stop + 2);
                frame.advance(start);
                frame.truncate(len as usize);
                Reply::Value(Some(Bytes::from(frame)))
            }
        }
        other => bail!("unexpected RESP reply type byte {other:#04x}"),
    };
    Ok(Some(reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_set_as_bulk_array() {
        let mut out = BytesMut::new();
        encode_set(&mut out, b"k", b"vv");
        assert_eq!(&out[..], b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nvv\r\n");
    }

    #[test]
    fn parses_replies_and_waits_for_partial_ones() {
        let mut buf = BytesMut::from(&b"+OK\r\n$3\r\nabc\r\n$-1\r\n-ERR no\r\n$5\r\nab"[..]);
        assert_eq!(parse(&mut buf).unwrap(), Some(Reply::Ok));
        let abc = Some(Bytes::from_static(b"abc"));
        assert_eq!(parse(&mut buf).unwrap(), Some(Reply::Value(abc)));
        assert_eq!(parse(&mut buf).unwrap(), Some(Reply::Value(None)));
        assert_eq!(
            parse(&mut buf).unwrap(),
            Some(Reply::Error("ERR no".into()))
        );
        assert_eq!(parse(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"cde\r\n");
        let v = Some(Bytes::from_static(b"abcde"));
        assert_eq!(parse(&mut buf).unwrap(), Some(Reply::Value(v)));
        assert!(buf.is_empty());
    }
}
