//! The handshake that opens every framed connection.
//!
//! The dialer speaks first with `Hello`: the protocol version, whether it
//! is a client or a peer node, and for a peer its node id and a nonce. A
//! client may carry the client password. The node answers a client with
//! `Welcome` (or an error reply, and closes). A peer gets a `Challenge`:
//! the node's id, its own nonce and, when it holds the cluster secret, its
//! proof of it; the peer checks that proof (when it holds the secret too)
//! before answering with its own `Proof`, and the node answers `Welcome`.
//! `docs/protocol.md` gives the bytes; the private `auth` module the proofs.
//!
//! The type byte, the request id and the version at the start of `Hello`
//! never change, so a node can refuse a dialer of another protocol version
//! with a clear error instead of failing on the fields after them.
//!
//! | type | message   | fields |
//! |------|-----------|--------|
//! | 0x10 | Hello     | version: u16, kind: u8 (0 client, 1 peer), node: u32, nonce: 32 bytes, password: opt string |
//! | 0x11 | Proof     | proof: bytes |
//! | 0x90 | Challenge | version: u16, node: u32, nonce: 32 bytes, proof: opt bytes |
//! | 0x91 | Welcome   | node: u32 |

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use kv_router::NodeId;

use super::wire::{WireReader, WireWrite};
use super::{Conn, RequestId, Response};
use crate::auth::{self, ClusterSecret, Exchange, NONCE_BYTES, Nonce};
use crate::error::{ErrorCode, ProtocolError};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

mod ty {
    pub const HELLO: u8 = 0x10;
    pub const PROOF: u8 = 0x11;
    pub const CHALLENGE: u8 = 0x90;
    pub const WELCOME: u8 = 0x91;
}

/// Handshake messages carry request id 0.
const HANDSHAKE_ID: RequestId = 0;

/// What the dialer says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    /// A client: data requests only.
    Client,
    /// Another node of the cluster, with its id.
    Node(NodeId),
}

/// The dialer's opening message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hello {
    pub version: u16,
    pub kind: PeerKind,
    pub nonce: Nonce,
    pub password: Option<String>,
}

/// One handshake message (or the error reply that ends a handshake).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Handshake {
    Hello(Hello),
    Proof(Bytes),
    Challenge {
        version: u16,
        node: NodeId,
        nonce: Nonce,
        proof: Option<Bytes>,
    },
    Welcome {
        node: NodeId,
    },
    Refused {
        code: ErrorCode,
        message: String,
    },
}

impl Handshake {
    pub(crate) fn encode(&self, out: &mut BytesMut) {
        match self {
            Handshake::Hello(hello) => {
                header(out, ty::HELLO);
                out.put_u16(hello.version);
                let (kind, node) = match hello.kind {
                    PeerKind::Client => (0, 0),
                    PeerKind::Node(n) => (1, n),
                };
                out.put_u8(kind);
                out.put_u32(node);
                out.put_slice(&hello.nonce);
                out.put_opt_bytes(hello.password.as_deref().map(str::as_bytes));
            }
            Handshake::Proof(proof) => {
                header(out, ty::PROOF);
                out.put_bytes_field(proof);
            }
            Handshake::Challenge {
                version,
                node,
                nonce,
                proof,
            } => {
                header(out, ty::CHALLENGE);
                out.put_u16(*version);
                out.put_u32(*node);
                out.put_slice(nonce);
                out.put_opt_bytes(proof.as_deref());
            }
            Handshake::Welcome { node } => {
                header(out, ty::WELCOME);
                out.put_u32(*node);
            }
            Handshake::Refused { code, message } => Response::Error {
                code: *code,
                leader: None,
                message: message.clone(),
            }
            .encode(HANDSHAKE_ID, out),
        }
    }

    /// Decodes a handshake message. A `Hello` of another version is
    /// [`ProtocolError::UnsupportedVersion`], found before its other fields.
    pub(crate) fn decode(frame: Bytes) -> Result<Handshake, ProtocolError> {
        let mut r = WireReader::new(frame.clone());
        let ty = r.u8()?;
        let _id = r.u64()?;
        let message = match ty {
            ty::HELLO => {
                let version = r.u16()?;
                if version != PROTOCOL_VERSION {
                    return Err(ProtocolError::UnsupportedVersion {
                        got: version,
                        supported: PROTOCOL_VERSION,
                    });
                }
                let kind = match (r.u8()?, r.u32()?) {
                    (0, _) => PeerKind::Client,
                    (1, node) => PeerKind::Node(node),
                    (other, _) => {
                        return Err(ProtocolError::Invalid(format!("bad hello kind {other}")));
                    }
                };
                let nonce = r.array::<NONCE_BYTES>()?;
                let password = match r.opt_bytes()? {
                    Some(raw) => Some(
                        String::from_utf8(raw.to_vec())
                            .map_err(|_| ProtocolError::Invalid("password is not UTF-8".into()))?,
                    ),
                    None => None,
                };
                Handshake::Hello(Hello {
                    version,
                    kind,
                    nonce,
                    password,
                })
            }
            ty::PROOF => Handshake::Proof(r.bytes()?),
            ty::CHALLENGE => Handshake::Challenge {
                version: r.u16()?,
                node: r.u32()?,
                nonce: r.array::<NONCE_BYTES>()?,
                proof: r.opt_bytes()?,
            },
            ty::WELCOME => Handshake::Welcome { node: r.u32()? },
            _ => {
                return match Response::decode(frame)? {
                    (_, Response::Error { code, message, .. }) => {
                        Ok(Handshake::Refused { code, message })
                    }
                    (_, other) => Err(ProtocolError::Invalid(format!(
                        "expected a handshake message, got {other:?}"
                    ))),
                };
            }
        };
        r.finish()?;
        Ok(message)
    }
}

fn header(out: &mut BytesMut, ty: u8) {
    out.put_u8(ty);
    out.put_u64(HANDSHAKE_ID);
}

/// Why the dialer's handshake failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DialError {
    #[error("the node refused the connection ({code:?}): {message}")]
    Refused { code: ErrorCode, message: String },
    #[error("handshake failed: {0}")]
    Failed(String),
    /// The other side closed the connection mid-handshake (it stopped, or
    /// gave up waiting).
    #[error("handshake failed: the other side closed the connection")]
    Closed,
    #[error("no handshake answer within {0:?}")]
    TimedOut(Duration),
}

/// What a dialer presents.
#[derive(Debug, Clone, Default)]
pub(crate) struct Credentials {
    /// The cluster secret (peers).
    pub secret: Option<ClusterSecret>,
    /// The client password.
    pub password: Option<String>,
}

/// Runs the dialer's side of the handshake on a fresh connection. As a
/// peer (`kind` is `Node`), `expect` is the node the dialer meant to reach:
/// the answer must come from it and, when the dialer holds the secret,
/// prove that secret before anything else is sent. Returns the id the
/// node gave.
pub(crate) async fn dial(
    conn: &mut Conn,
    kind: PeerKind,
    expect: Option<NodeId>,
    credentials: &Credentials,
    within: Duration,
) -> Result<NodeId, DialError> {
    match tokio::time::timeout(within, dial_steps(conn, kind, expect, credentials)).await {
        Ok(result) => result,
        Err(_) => Err(DialError::TimedOut(within)),
    }
}

async fn dial_steps(
    conn: &mut Conn,
    kind: PeerKind,
    expect: Option<NodeId>,
    credentials: &Credentials,
) -> Result<NodeId, DialError> {
    let hello = Hello {
        version: PROTOCOL_VERSION,
        kind,
        nonce: auth::nonce(),
        password: credentials.password.clone(),
    };
    let dialer_nonce = hello.nonce;
    send(conn, &Handshake::Hello(hello)).await?;
    let dialer = match kind {
        PeerKind::Client => return welcome(receive(conn).await?, expect),
        PeerKind::Node(id) => id,
    };
    let Handshake::Challenge {
        version,
        node,
        nonce,
        proof,
    } = receive(conn).await?
    else {
        return Err(DialError::Failed("expected a challenge".into()));
    };
    if expect.is_some_and(|e| e != node) {
        return Err(DialError::Failed(format!(
            "expected node {expect:?}, node {node} answered"
        )));
    }
    let exchange = Exchange {
        version,
        dialer,
        server: node,
        dialer_nonce,
        server_nonce: nonce,
    };
    let answer = match &credentials.secret {
        Some(secret) => {
            let proven = proof.is_some_and(|p| secret.verify_server(&exchange, &p));
            if !proven {
                return Err(DialError::Failed(format!(
                    "node {node} did not prove the cluster secret; not trusting it"
                )));
            }
            Bytes::from(secret.dialer_proof(&exchange))
        }
        None => Bytes::new(),
    };
    send(conn, &Handshake::Proof(answer)).await?;
    welcome(receive(conn).await?, Some(node))
}

fn welcome(message: Handshake, expect: Option<NodeId>) -> Result<NodeId, DialError> {
    match message {
        Handshake::Welcome { node } if expect.is_none_or(|e| e == node) => Ok(node),
        other => Err(DialError::Failed(format!(
            "expected a welcome, got {other:?}"
        ))),
    }
}

/// Sends one handshake message.
pub(crate) async fn send(conn: &mut Conn, message: &Handshake) -> Result<(), DialError> {
    let mut out = BytesMut::new();
    message.encode(&mut out);
    conn.send(out.freeze())
        .await
        .map_err(|e| DialError::Failed(format!("sending: {e}")))
}

/// Receives one handshake message; an error reply is [`DialError::Refused`].
pub(crate) async fn receive(conn: &mut Conn) -> Result<Handshake, DialError> {
    let frame = match conn.next().await {
        Some(Ok(frame)) => frame.freeze(),
        Some(Err(e)) => return Err(DialError::Failed(format!("reading: {e}"))),
        None => return Err(DialError::Closed),
    };
    match Handshake::decode(frame) {
        Ok(Handshake::Refused { code, message }) => Err(DialError::Refused { code, message }),
        Ok(message) => Ok(message),
        Err(e) => Err(DialError::Failed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(m: Handshake) {
        let mut out = BytesMut::new();
        m.encode(&mut out);
        assert_eq!(Handshake::decode(out.freeze()).unwrap(), m);
    }

    #[test]
    fn every_message_round_trips() {
        round_trip(Handshake::Hello(Hello {
            version: PROTOCOL_VERSION,
            kind: PeerKind::Node(7),
            nonce: [3; NONCE_BYTES],
            password: Some("pw".into()),
        }));
        round_trip(Handshake::Hello(Hello {
            version: PROTOCOL_VERSION,
            kind: PeerKind::Client,
            nonce: [0; NONCE_BYTES],
            password: None,
        }));
        round_trip(Handshake::Proof(Bytes::from_static(&[1; 32])));
        round_trip(Handshake::Challenge {
            version: PROTOCOL_VERSION,
            node: 2,
            nonce: [9; NONCE_BYTES],
            proof: Some(Bytes::from_static(&[5; 32])),
        });
        round_trip(Handshake::Welcome { node: 4 });
        round_trip(Handshake::Refused {
            code: ErrorCode::Unauthorized,
            message: "no".into(),
        });
    }

    #[test]
    fn another_version_is_refused_before_its_fields() {
        // Version 2 with fields this build does not know.
        let mut out = BytesMut::new();
        out.put_u8(ty::HELLO);
        out.put_u64(0);
        out.put_u16(2);
        out.put_slice(b"whatever a later version sends");
        assert_eq!(
            Handshake::decode(out.freeze()),
            Err(ProtocolError::UnsupportedVersion {
                got: 2,
                supported: PROTOCOL_VERSION
            })
        );
    }
}
