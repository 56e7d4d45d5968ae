//! The handshake written by hand from docs/protocol.md, for tests that
//! speak raw bytes (and so check the documented format).

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const VERSION: u16 = 1;

/// `body` with its four-byte length prefix.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// A Hello body: kind 0 client / 1 peer.
pub fn hello(
    version: u16,
    kind: u8,
    node: u32,
    nonce: [u8; 32],
    password: Option<&str>,
) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_u8(0x10);
    b.put_u64(0);
    b.put_u16(version);
    b.put_u8(kind);
    b.put_u32(node);
    b.put_slice(&nonce);
    match password {
        Some(p) => {
            b.put_u8(1);
            b.put_u32(p.len() as u32);
            b.put_slice(p.as_bytes());
        }
        None => b.put_u8(0),
    }
    b.to_vec()
}

/// Reads one frame body, or `None` at end of stream.
pub async fn read_frame(s: &mut TcpStream) -> Option<Bytes> {
    let mut len = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut len))
        .await
        .expect("a frame in time")
        .ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.ok()?;
    Some(Bytes::from(body))
}

/// Opens a client connection: Hello, then expects Welcome (0x91).
pub async fn client(addr: &str, password: Option<&str>) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&frame(&hello(VERSION, 0, 0, [7; 32], password)))
        .await
        .unwrap();
    let welcome = read_frame(&mut s).await.expect("a welcome");
    assert_eq!(welcome[0], 0x91, "expected a welcome, got {welcome:?}");
    s
}

fn mac(secret: &[u8], label: &[u8], dialer: u32, server: u32, dn: &[u8], sn: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    m.update(label);
    m.update(&VERSION.to_be_bytes());
    m.update(dn);
    m.update(sn);
    m.update(&dialer.to_be_bytes());
    m.update(&server.to_be_bytes());
    m.finalize().into_bytes().to_vec()
}

pub fn server_proof(secret: &[u8], dialer: u32, server: u32, dn: &[u8], sn: &[u8]) -> Vec<u8> {
    mac(
        secret,
        b"kv-handshake server proof\0",
        dialer,
        server,
        dn,
        sn,
    )
}

pub fn peer_proof(secret: &[u8], dialer: u32, server: u32, dn: &[u8], sn: &[u8]) -> Vec<u8> {
    mac(secret, b"kv-handshake peer proof\0", dialer, server, dn, sn)
}

/// Opens a peer connection as node `me`, proving `secret` (which must be
/// the node's: its proof is checked); returns the socket and the node's
/// final answer (Welcome 0x91 or an error 0xFF).
pub async fn peer(addr: &str, me: u32, secret: &[u8]) -> (TcpStream, Bytes) {
    peer_with(addr, me, secret, true).await
}

/// As [`peer`]; `check` false skips checking the node's proof (for a
/// dialer holding a wrong secret).
pub async fn peer_with(addr: &str, me: u32, secret: &[u8], check: bool) -> (TcpStream, Bytes) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let dn = [42u8; 32];
    s.write_all(&frame(&hello(VERSION, 1, me, dn, None)))
        .await
        .unwrap();
    let challenge = read_frame(&mut s).await.expect("a challenge");
    assert_eq!(
        challenge[0], 0x90,
        "expected a challenge, got {challenge:?}"
    );
    let server = u32::from_be_bytes(challenge[11..15].try_into().unwrap());
    let sn = challenge[15..47].to_vec();
    assert_eq!(challenge[47], 1, "the node proves the secret");
    let proof = &challenge[52..84];
    if check {
        assert_eq!(
            proof,
            server_proof(secret, me, server, &dn, &sn),
            "server proof"
        );
    }
    let mine = peer_proof(secret, me, server, &dn, &sn);
    let mut b = BytesMut::new();
    b.put_u8(0x11);
    b.put_u64(0);
    b.put_u32(mine.len() as u32);
    b.put_slice(&mine);
    s.write_all(&frame(&b)).await.unwrap();
    let answer = read_frame(&mut s).await.expect("an answer");
    (s, answer)
}
