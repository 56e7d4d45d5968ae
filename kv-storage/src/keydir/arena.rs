//! Key bytes of one shard, packed into chunks (see the `keydir` module docs).

use crate::record::{get_varint, put_varint};

/// Bytes per arena chunk.
pub(super) const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks an arena may address (`chunk << 16 | offset` in a `u32`).
const MAX_CHUNKS: usize = 1 << 16;

/// Append-only key storage addressed by `chunk << 16 | offset`.
#[derive(Default)]
pub(super) struct Arena {
    pub(super) chunks: Vec<Vec<u8>>,
    pub(super) live: usize,
    pub(super) garbage: usize,
}

impl Arena {
    pub(super) fn key(&self, at: u32) -> &[u8] {
        let chunk = self
            .chunks
            .get((at >> 16) as usize)
            .map_or(&[][..], |c| &c[..]);
        let mut pos = (at & 0xffff) as usize;
        let len = match get_varint(chunk, &mut pos, 5) {
            Some(Ok(len)) => len as usize,
            _ => 0,
        };
        chunk.get(pos..pos + len).unwrap_or_default()
    }

    fn entry_len(key_len: usize) -> usize {
        crate::record::varint_len(key_len as u32) + key_len
    }

    /// Whether an entry of `key_len` can be added without exceeding the chunk
    /// address space.
    pub(super) fn has_room(&self, key_len: usize) -> bool {
        let need = Self::entry_len(key_len);
        let fits_last = self
            .chunks
            .last()
            .is_some_and(|c| c.capacity() - c.len() >= need);
        fits_last || self.chunks.len() < MAX_CHUNKS
    }

    pub(super) fn push(&mut self, key: &[u8]) -> Option<u32> {
        let need = Self::entry_len(key.len());
        let fits_last = self
            .chunks
            .last()
            .is_some_and(|c| c.capacity() - c.len() >= need && c.len() < CHUNK_BYTES);
        if !fits_last {
            if self.chunks.len() >= MAX_CHUNKS {
                return None;
            }
            self.chunks.push(Vec::with_capacity(need.max(CHUNK_BYTES)));
        }
        let idx = self.chunks.len() - 1;
        let chunk = self.chunks.last_mut()?;
        let at = ((idx as u32) << 16) | chunk.len() as u32;
        put_varint(chunk, key.len() as u64);
        chunk.extend_from_slice(key);
        self.live += need;
        Some(at)
    }

    pub(super) fn release(&mut self, key_len: usize) {
        let n = Self::entry_len(key_len);
        self.live -= n;
        self.garbage += n;
    }

    pub(super) fn bytes(&self) -> usize {
        self.chunks.iter().map(Vec::capacity).sum()
    }
}
