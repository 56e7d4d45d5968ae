//! kv's binary protocol spoken directly over a socket: each request is a
//! 4-byte big-endian length and a body from `kv_node::protocol::Request`,
//! exactly what `NodeClient` puts on the wire, but written and read in the
//! same batches as the RESP client so both servers see the same pattern.

use anyhow::{Result, bail};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kv_node::protocol::{Request, RequestId, Response};

use crate::conn::Reply;

fn frame(out: &mut BytesMut, id: RequestId, request: &Request) {
    let at = out.len();
    out.put_u32(0);
    request.encode(id, out);
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// Appends the client `Hello` that opens every kv connection
/// (docs/protocol.md, "Handshake"): protocol version 1, no password.
pub fn encode_hello(out: &mut BytesMut) {
    out.put_u32(1 + 8 + 2 + 1 + 4 + 32 + 1);
    out.put_u8(0x10);
    out.put_u64(0);
    out.put_u16(1);
    out.put_u8(0);
    out.put_u32(0);
    out.put_slice(&[0; 32]);
    out.put_u8(0);
}

/// Takes one whole length-prefixed frame's body off the front of `buf`,
/// or `None` while more bytes are needed.
fn take_frame(buf: &mut BytesMut) -> Option<Bytes> {
    let head = buf.get(..4)?;
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if buf.len() < 4 + len {
        return None;
    }
    buf.advance(4);
    Some(buf.split_to(len).freeze())
}

/// Takes the node's answer to the hello off `buf`: `Some(Ok)` for a
/// `Welcome`, an error for a refusal, `None` when more bytes are needed.
pub fn parse_welcome(buf: &mut BytesMut) -> Result<Option<()>> {
    let Some(body) = take_frame(buf) else {
        return Ok(None);
    };
    match body.first() {
        Some(0x91) => Ok(Some(())),
        _ => match Response::decode(body) {
            Ok((_, Response::Error { message, .. })) => bail!("handshake refused: {message}"),
            other => bail!("expected a welcome, got {other:?}"),
        },
    }
}

/// Appends a `Get`.
pub fn encode_get(out: &mut BytesMut, id: RequestId, key: &[u8]) {
    let key = Bytes::copy_from_slice(key);
    frame(out, id, &Request::Get { key });
}

/// Appends a `Put` (the value must be a kv-codec encoding).
pub fn encode_set(out: &mut BytesMut, id: RequestId, key: &[u8], value: &Bytes) {
    let key = Bytes::copy_from_slice(key);
    let value = value.clone();
    frame(out, id, &Request::Put { key, value });
}

/// Appends a `Ping`.
pub fn encode_ping(out: &mut BytesMut, id: RequestId) {
    frame(out, id, &Request::Ping);
}

/// Takes one complete reply off the front of `buf`, or `None` when more
/// bytes are needed; the reply must answer request `expect` (the node
/// answers a connection's requests in order).
pub fn parse(buf: &mut BytesMut, expect: RequestId) -> Result<Option<Reply>> {
    let Some(body) = take_frame(buf) else {
        return Ok(None);
    };
    let (id, response) = Response::decode(body)?;
    if id != expect {
        bail!("reply to request {id} where {expect} was expected");
    }
    Ok(Some(match response {
        Response::Value { value, .. } => Reply::Value(value),
        Response::Written { .. } => Reply::Ok,
        Response::Pong { .. } => Reply::Pong,
        Response::Error { message, .. } => Reply::Error(message),
        other => Reply::Error(format!("unexpected reply {other:?}")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_decode_as_requests_and_replies_check_ids() {
        let mut out = BytesMut::new();
        encode_get(&mut out, 7, b"key");
        let len = u32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize;
        assert_eq!(len, out.len() - 4);
        let (id, req) = Request::decode(out.split_off(4).freeze()).unwrap();
        assert_eq!(
            (id, req),
            (
                7,
                Request::Get {
                    key: Bytes::from_static(b"key")
                }
            )
        );

        let mut body = BytesMut::new();
        let reply = Response::Value {
            partition: 1,
            value: Some(Bytes::from_static(b"v")),
        };
        reply.encode(9, &mut body);
        let mut buf = BytesMut::new();
        buf.put_u32(body.len() as u32);
        buf.extend_from_slice(&body);
        assert!(parse(&mut buf.clone(), 8).is_err());
        let got = parse(&mut buf, 9).unwrap();
        assert_eq!(got, Some(Reply::Value(Some(Bytes::from_static(b"v")))));
    }
}
