//! Primitive encodings shared by every message.
//!
//! All integers are big-endian (network order). Variable-length fields are a
//! `u32` length followed by that many bytes. An optional field is one byte,
//! `0` (absent) or `1` (present), followed by the field when present.
//!
//! [`WireReader`] is a bounded cursor over one received frame: every read
//! checks the remaining length first and returns [`ProtocolError::Truncated`]
//! instead of panicking, and a length is never trusted for an allocation
//! larger than what the frame still holds.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ProtocolError;

/// Appends big-endian primitives to an output buffer.
pub(crate) trait WireWrite {
    fn put_bytes_field(&mut self, bytes: &[u8]);
    fn put_str_field(&mut self, s: &str) {
        self.put_bytes_field(s.as_bytes());
    }
    fn put_opt_bytes(&mut self, bytes: Option<&[u8]>);
}

impl WireWrite for BytesMut {
    fn put_bytes_field(&mut self, bytes: &[u8]) {
        // Frames are capped far below 4 GiB, so the length always fits.
        self.put_u32(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
        self.put_slice(bytes);
    }

    fn put_opt_bytes(&mut self, bytes: Option<&[u8]>) {
        match bytes {
            Some(b) => {
                self.put_u8(1);
                self.put_bytes_field(b);
            }
            None => self.put_u8(0),
        }
    }
}

/// A bounds-checked cursor over one frame.
pub(crate) struct WireReader {
    buf: Bytes,
    pos: usize,
}

impl WireReader {
    pub(crate) fn new(buf: Bytes) -> Self {
        WireReader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], ProtocolError> {
        let start = self.pos;
        let bytes = start
            .checked_add(n)
            .and_then(|end| self.buf.get(start..end))
            .ok_or(ProtocolError::Truncated {
                needed: n,
                available: self.buf.len().saturating_sub(start),
            })?;
        self.pos += n;
        Ok(bytes)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtocolError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, ProtocolError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, ProtocolError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, ProtocolError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub(crate) fn bool(&mut self) -> Result<bool, ProtocolError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(ProtocolError::Invalid(format!("bad bool byte {other}"))),
        }
    }

    /// A length-prefixed byte string, shared with the frame (no copy).
    pub(crate) fn bytes(&mut self) -> Result<Bytes, ProtocolError> {
        let len = self.u32()? as usize;
        let available = self.buf.len() - self.pos;
        if len > available {
            return Err(ProtocolError::Truncated {
                needed: len,
                available,
            });
        }
        let out = self.buf.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(out)
    }

    pub(crate) fn string(&mut self) -> Result<String, ProtocolError> {
        let raw = self.bytes()?;
        String::from_utf8(raw.to_vec())
            .map_err(|_| ProtocolError::Invalid("string field is not UTF-8".into()))
    }

    pub(crate) fn opt_bytes(&mut self) -> Result<Option<Bytes>, ProtocolError> {
        if self.bool()? {
            Ok(Some(self.bytes()?))
        } else {
            Ok(None)
        }
    }

    /// A count of items, each at least `min_item_bytes` long: rejected when
    /// the frame cannot possibly hold that many, so a hostile count never
    /// drives an allocation.
    pub(crate) fn count(&mut self, min_item_bytes: usize) -> Result<usize, ProtocolError> {
        let n = self.u32()? as usize;
        let available = self.buf.len() - self.pos;
        if n.saturating_mul(min_item_bytes.max(1)) > available {
            return Err(ProtocolError::Truncated {
                needed: n.saturating_mul(min_item_bytes.max(1)),
                available,
            });
        }
        Ok(n)
    }

    /// Fails unless every byte of the frame was consumed.
    pub(crate) fn finish(self) -> Result<(), ProtocolError> {
        let extra = self.buf.len() - self.pos;
        if extra == 0 {
            Ok(())
        } else {
            Err(ProtocolError::TrailingBytes(extra))
        }
    }
}

/// Bytes as spaced lowercase hex, for byte-exact encoder tables in tests.
#[cfg(test)]
pub(crate) fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
