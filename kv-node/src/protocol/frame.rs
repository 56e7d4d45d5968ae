//! Length-prefixed frames whose buffers grow with the bytes that arrived.
//!
//! A frame is a four-byte big-endian length and that many bytes. tokio-util's
//! `LengthDelimitedCodec` reserves the announced length as soon as it reads
//! a header, so a hostile peer that announces 16 MiB and sends most of it
//! on each of many connections makes the node hold all of it. This codec
//! never reserves ahead: the read buffer grows (geometrically, by tokio's
//! `FramedRead`) only as bytes arrive.
//!
//! On top of that, every byte of a partly received frame beyond a small
//! allowance per connection ([`FREE_BYTES_PER_CONNECTION`]) is charged to a
//! node-wide [`ByteBudget`]. A connection whose next bytes would overdraw
//! it gets [`FrameError::BudgetExhausted`] (the server answers `Busy` and
//! closes it), so the memory held by frames in flight is bounded by the
//! budget plus the allowance per connection, whatever peers announce.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Bytes of a partial frame a connection may buffer without charging the
/// node-wide budget (ordinary requests never touch it).
pub const FREE_BYTES_PER_CONNECTION: usize = 64 * 1024;

/// A read buffer larger than this is given back once it is empty, so one
/// large frame does not pin its memory for the life of the connection.
const SHRINK_ABOVE_BYTES: usize = 1024 * 1024;

const HEADER_BYTES: usize = 4;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The announced (or outgoing) frame is over the limit.
    #[error("frame of {len} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Buffering more of this frame would overdraw the node's budget for
    /// request bytes in flight.
    #[error(
        "the node is holding its limit of {budget} bytes of requests in flight; try again later"
    )]
    BudgetExhausted {
        /// The node-wide budget.
        budget: usize,
    },
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A node-wide count of the bytes of partly received frames, with a cap.
#[derive(Debug, Clone)]
pub struct ByteBudget {
    inner: Arc<BudgetInner>,
}

#[derive(Debug)]
struct BudgetInner {
    limit: usize,
    used: AtomicUsize,
}

impl ByteBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> ByteBudget {
        ByteBudget {
            inner: Arc::new(BudgetInner {
                limit,
                used: AtomicUsize::new(0),
            }),
        }
    }

    /// A budget that never refuses (clients: the memory is their own).
    pub fn unlimited() -> ByteBudget {
        ByteBudget::new(usize::MAX)
    }

    /// Bytes charged now.
    pub fn used(&self) -> usize {
        self.inner.used.load(Ordering::Acquire)
    }

    /// The cap.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    fn try_charge(&self, n: usize) -> bool {
        let limit = self.inner.limit;
        self.inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= limit)
            })
            .is_ok()
    }

    fn release(&self, n: usize) {
        let _ = self
            .inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(n))
            });
    }
}

/// The frame codec of every kv connection.
#[derive(Debug)]
pub struct FrameCodec {
    max_frame_bytes: usize,
    budget: ByteBudget,
    /// Bytes this connection holds charged to the budget.
    charged: usize,
}

impl FrameCodec {
    /// A codec refusing frames over `max_frame_bytes`, charging partial
    /// frames to `budget`.
    pub fn new(max_frame_bytes: usize, budget: ByteBudget) -> FrameCodec {
        FrameCodec {
            max_frame_bytes,
            budget,
            charged: 0,
        }
    }

    /// Holds exactly `buffered - FREE_BYTES_PER_CONNECTION` charged.
    fn charge_for(&mut self, buffered: usize) -> Result<(), FrameError> {
        let want = buffered.saturating_sub(FREE_BYTES_PER_CONNECTION);
        if want == self.charged {
            // The common case (small requests): no shared counter touched.
            return Ok(());
        }
        if want > self.charged {
            if !self.budget.try_charge(want - self.charged) {
                return Err(FrameError::BudgetExhausted {
                    budget: self.budget.limit(),
                });
            }
        } else {
            self.budget.release(self.charged - want);
        }
        self.charged = want;
        Ok(())
    }
}

impl Drop for FrameCodec {
    fn drop(&mut self) {
        self.budget.release(self.charged);
    }
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        let Some(header) = src.get(..HEADER_BYTES) else {
            self.charge_for(src.len())?;
            return Ok(None);
        };
        let mut len_bytes = [0u8; HEADER_BYTES];
        len_bytes.copy_from_slice(header);
        let len = u32::from_be_bytes(len_bytes) as usize;
        if len > self.max_frame_bytes {
            return Err(FrameError::TooLarge {
                len,
                limit: self.max_frame_bytes,
            });
        }
        if src.len() < HEADER_BYTES + len {
            self.charge_for(src.len())?;
            return Ok(None);
        }
        src.advance(HEADER_BYTES);
        let body = src.split_to(len);
        if src.is_empty() && src.capacity() > SHRINK_ABOVE_BYTES {
            // The big allocation is freed once `body` is dropped.
            *src = BytesMut::new();
        }
        self.charge_for(src.len())?;
        Ok(Some(body))
    }
}

/// Appends one frame to `dst`, its body written in place by `body` (no
/// intermediate buffer). A body over `max_frame_bytes` is taken back out of
/// `dst` and refused with [`FrameError::TooLarge`].
pub(crate) fn put_frame(
    dst: &mut BytesMut,
    max_frame_bytes: usize,
    body: impl FnOnce(&mut BytesMut),
) -> Result<(), FrameError> {
    let start = dst.len();
    dst.put_u32(0);
    body(dst);
    let len = dst.len() - start - HEADER_BYTES;
    match length_prefix(len, max_frame_bytes) {
        Ok(prefix) => {
            // The four bytes put at `start` above.
            if let Some(header) = dst.get_mut(start..start + HEADER_BYTES) {
                header.copy_from_slice(&prefix);
            }
            Ok(())
        }
        Err(e) => {
            dst.truncate(start);
            Err(e)
        }
    }
}

/// The four-byte length prefix of a `len`-byte body, or why no frame may
/// carry it.
fn length_prefix(len: usize, max_frame_bytes: usize) -> Result<[u8; HEADER_BYTES], FrameError> {
    u32::try_from(len)
        .ok()
        .filter(|_| len <= max_frame_bytes)
        .map(u32::to_be_bytes)
        .ok_or(FrameError::TooLarge {
            len,
            limit: max_frame_bytes,
        })
}

impl Encoder<Bytes> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, data: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        let prefix = length_prefix(data.len(), self.max_frame_bytes)?;
        dst.reserve(HEADER_BYTES + data.len());
        dst.extend_from_slice(&prefix);
        dst.extend_from_slice(&data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_written_in_place_decode_and_oversized_ones_leave_nothing() {
        let mut out = BytesMut::new();
        put_frame(&mut out, 16, |b| b.extend_from_slice(b"hello")).unwrap();
        let before = out.len();
        let err = put_frame(&mut out, 16, |b| b.extend_from_slice(&[7; 17])).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { len: 17, limit: 16 }),
            "{err:?}"
        );
        assert_eq!(out.len(), before, "a refused frame leaves no bytes behind");
        put_frame(&mut out, 16, |b| b.extend_from_slice(b"again")).unwrap();
        let mut codec = FrameCodec::new(16, ByteBudget::unlimited());
        assert_eq!(&codec.decode(&mut out).unwrap().unwrap()[..], b"hello");
        assert_eq!(&codec.decode(&mut out).unwrap().unwrap()[..], b"again");
        assert!(out.is_empty());
    }

    fn framed(body: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_u32(body.len() as u32);
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn decodes_whole_frames_and_waits_for_partial_ones() {
        let mut codec = FrameCodec::new(1024, ByteBudget::unlimited());
        let mut src = framed(b"hello");
        src.extend_from_slice(&framed(b"world")[..6]);
        assert_eq!(codec.decode(&mut src).unwrap().unwrap(), &b"hello"[..]);
        assert!(codec.decode(&mut src).unwrap().is_none());
        src.extend_from_slice(b"rld");
        assert_eq!(codec.decode(&mut src).unwrap().unwrap(), &b"world"[..]);
        assert!(src.is_empty());
    }

    #[test]
    fn an_announced_length_reserves_nothing() {
        let mut codec = FrameCodec::new(16 << 20, ByteBudget::unlimited());
        let mut src = BytesMut::with_capacity(16);
        src.put_u32((16 << 20) - 1);
        src.extend_from_slice(b"abc");
        assert!(codec.decode(&mut src).unwrap().is_none());
        assert!(src.capacity() < 1024, "capacity {}", src.capacity());
    }

    #[test]
    fn over_the_limit_is_an_error_before_any_body() {
        let mut codec = FrameCodec::new(10, ByteBudget::unlimited());
        let mut src = BytesMut::new();
        src.put_u32(11);
        assert!(matches!(
            codec.decode(&mut src),
            Err(FrameError::TooLarge { len: 11, limit: 10 })
        ));
        let mut out = BytesMut::new();
        assert!(
            codec
                .encode(Bytes::from_static(b"01234567890"), &mut out)
                .is_err()
        );
    }

    #[test]
    fn partial_frames_past_the_allowance_are_charged_and_released() {
        let budget = ByteBudget::new(100_000);
        let mut a = FrameCodec::new(1 << 20, budget.clone());
        let mut b = FrameCodec::new(1 << 20, budget.clone());
        let body = vec![7u8; 200_000];
        let whole = framed(&body);
        let mut src_a = BytesMut::from(&whole[..FREE_BYTES_PER_CONNECTION + 90_000]);
        assert!(a.decode(&mut src_a).unwrap().is_none());
        assert_eq!(budget.used(), 90_000);
        let mut src_b = BytesMut::from(&whole[..FREE_BYTES_PER_CONNECTION + 20_000]);
        assert!(matches!(
            b.decode(&mut src_b),
            Err(FrameError::BudgetExhausted { budget: 100_000 })
        ));
        src_a.extend_from_slice(&whole[FREE_BYTES_PER_CONNECTION + 90_000..]);
        // Complete now: released once whole.
        assert_eq!(a.decode(&mut src_a).unwrap().unwrap().len(), 200_000);
        assert_eq!(budget.used(), 0);
        // A connection dropped mid-frame gives its charge back.
        let mut src_a = BytesMut::from(&whole[..FREE_BYTES_PER_CONNECTION + 50_000]);
        assert!(a.decode(&mut src_a).unwrap().is_none());
        assert_eq!(budget.used(), 50_000);
        drop(a);
        assert_eq!(budget.used(), 0);
    }
}
