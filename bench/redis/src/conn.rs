//! One client connection speaking either protocol. Requests are appended
//! to an output buffer, `flush` writes the whole buffer with one
//! `write_all`, and replies are parsed out of one read buffer: the same
//! code path, byte for byte except the encoding, for kv and for redis.

use anyhow::{Context, Result, bail};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{kvwire, resp};

/// Which server a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// kv's framed binary protocol.
    Kv,
    /// RESP2.
    Redis,
}

/// A reply, reduced to what the benchmark checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// SET / Put succeeded.
    Ok,
    /// PING answered.
    Pong,
    /// GET answer.
    Value(Option<Bytes>),
    /// Anything the server refused.
    Error(String),
}

/// One connection with its buffers.
pub struct Conn {
    proto: Proto,
    stream: TcpStream,
    out: BytesMut,
    input: BytesMut,
    next_id: u64,
    expect_id: u64,
}

impl Conn {
    /// Connects with TCP_NODELAY (both kv's client and redis-benchmark set it).
    pub async fn connect(proto: Proto, addr: &str) -> Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            proto,
            stream,
            out: BytesMut::with_capacity(64 * 1024),
            input: BytesMut::with_capacity(64 * 1024),
            next_id: 1,
            expect_id: 1,
        };
        if proto == Proto::Kv {
            conn.handshake().await?;
        }
        Ok(conn)
    }

    /// kv connections open with a handshake before any request.
    async fn handshake(&mut self) -> Result<()> {
        kvwire::encode_hello(&mut self.out);
        self.flush().await?;
        loop {
            if kvwire::parse_welcome(&mut self.input)?.is_some() {
                return Ok(());
            }
            if self.stream.read_buf(&mut self.input).await? == 0 {
                bail!("server closed the connection during the handshake");
            }
        }
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Queues a GET.
    pub fn push_get(&mut self, key: &[u8]) {
        match self.proto {
            Proto::Kv => {
                let id = self.id();
                kvwire::encode_get(&mut self.out, id, key);
            }
            Proto::Redis => resp::encode_get(&mut self.out, key),
        }
    }

    /// Queues a SET.
    pub fn push_set(&mut self, key: &[u8], value: &Bytes) {
        match self.proto {
            Proto::Kv => {
                let id = self.id();
                kvwire::encode_set(&mut self.out, id, key, value);
            }
            Proto::Redis => resp::encode_set(&mut self.out, key, value),
        }
    }

    /// Queues a PING.
    pub fn push_ping(&mut self) {
        match self.proto {
            Proto::Kv => {
                let id = self.id();
                kvwire::encode_ping(&mut self.out, id);
            }
            Proto::Redis => resp::encode_ping(&mut self.out),
        }
    }

    /// Writes everything queued in one `write_all`.
    pub async fn flush(&mut self) -> Result<()> {
        self.stream.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    fn parse(&mut self) -> Result<Option<Reply>> {
        match self.proto {
            Proto::Kv => {
                let reply = kvwire::parse(&mut self.input, self.expect_id)?;
                if reply.is_some() {
                    self.expect_id += 1;
                }
                Ok(reply)
            }
            Proto::Redis => resp::parse(&mut self.input),
        }
    }

    /// Reads the next reply.
    pub async fn read(&mut self) -> Result<Reply> {
        loop {
            if let Some(reply) = self.parse()? {
                return Ok(reply);
            }
            if self.stream.read_buf(&mut self.input).await? == 0 {
                bail!("server closed the connection");
            }
        }
    }

    /// Reads a SET reply; anything but OK is an error.
    pub async fn read_set(&mut self) -> Result<()> {
        match self.read().await? {
            Reply::Ok => Ok(()),
            other => bail!("SET answered {other:?}"),
        }
    }

    /// Reads a GET reply and checks it is `expected`.
    pub async fn read_get(&mut self, expected: &[u8]) -> Result<()> {
        match self.read().await? {
            Reply::Value(Some(v)) if v == expected => Ok(()),
            other => bail!("GET answered {other:?}"),
        }
    }
}
