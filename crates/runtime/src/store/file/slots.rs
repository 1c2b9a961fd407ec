//! The layout of a set's file: two checksummed slots, written in turn, in place.
//!
//! A write goes to the slot that does not hold the current record and is made durable by one
//! `fdatasync` of a file whose size and blocks stay the same (so no journal commit of its
//! own); a reader takes the whole slot with the higher sequence number. A crash that tears a
//! write spoils only the slot being written, whose write was never acknowledged: the other
//! slot still holds the last record that was.
//!
//! A slot is a header line, `tokenkit-slot 1 seq=<n> len=<bytes> sum=<hex>`, the record, a
//! newline, and zeros to the slot's end. Slots start on page boundaries, so writing one never
//! touches the other's pages. The file is twice the slot's size, which a reader derives from
//! the file's length.

use sha2::{Digest, Sha256};

/// Slots are whole pages.
pub const PAGE: usize = 4096;
/// How a slot begins; the JSON files of before begin with `{`.
const MAGIC: &str = "tokenkit-slot 1 ";
/// The longest header a slot can have.
const HEADER_MAX: usize = 128;

/// Where a file's current record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Each slot's size in bytes.
    pub size: usize,
    /// The slot (0 or 1) holding the current record.
    pub current: usize,
    /// The current record's sequence number.
    pub seq: u64,
}

impl Layout {
    /// Where the next record goes: the other slot's offset, if `slot` fits there.
    pub fn next(&self, slot: &[u8]) -> Option<(u64, Layout)> {
        let other = 1 - self.current;
        (slot.len() <= self.size).then(|| {
            let at = (other * self.size) as u64;
            (
                at,
                Layout {
                    current: other,
                    seq: self.seq + 1,
                    ..*self
                },
            )
        })
    }
}

/// Whether `bytes` are a file of slots (not a JSON file of before).
pub fn is_slotted(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC.as_bytes())
}

/// The current record of a file of slots: the whole slot with the higher sequence number;
/// `None` when neither slot is whole (a writer is writing one while the other is read, or the
/// file is damaged).
pub fn current(bytes: &[u8]) -> Option<(Layout, &[u8])> {
    let size = bytes.len() / 2;
    if size == 0 || !bytes.len().is_multiple_of(PAGE) {
        return None;
    }
    (0..2)
        .filter_map(|i| {
            let (seq, record) = parse(&bytes[i * size..(i + 1) * size])?;
            Some((
                Layout {
                    size,
                    current: i,
                    seq,
                },
                record,
            ))
        })
        .max_by_key(|(layout, _)| layout.seq)
}

/// A slot's sequence number and record, if the slot is whole.
fn parse(slot: &[u8]) -> Option<(u64, &[u8])> {
    let end = slot.iter().take(HEADER_MAX).position(|b| *b == b'\n')?;
    let header = std::str::from_utf8(&slot[..end])
        .ok()?
        .strip_prefix(MAGIC)?;
    let mut fields = header.split(' ');
    let mut field = |name: &str| fields.next()?.strip_prefix(name);
    let seq = field("seq=")?.parse().ok()?;
    let len: usize = field("len=")?.parse().ok()?;
    let sum = field("sum=")?;
    let record = slot.get(end + 1..(end + 1).checked_add(len)?)?;
    (sum == checksum(seq, record)).then_some((seq, record))
}

/// One slot's bytes: `record` as number `seq`.
pub fn encode(seq: u64, record: &[u8]) -> Vec<u8> {
    let header = format!(
        "{MAGIC}seq={seq} len={} sum={}\n",
        record.len(),
        checksum(seq, record)
    );
    let mut slot = Vec::with_capacity(header.len() + record.len() + 1);
    slot.extend_from_slice(header.as_bytes());
    slot.extend_from_slice(record);
    slot.push(b'\n');
    slot
}

/// A new file holding `slot` in its first slot, with room for records twice as large.
pub fn new_file(slot: &[u8], seq: u64) -> (Vec<u8>, Layout) {
    let size = (slot.len() * 2).next_multiple_of(PAGE);
    let mut file = vec![0; size * 2];
    file[..slot.len()].copy_from_slice(slot);
    let layout = Layout {
        size,
        current: 0,
        seq,
    };
    (file, layout)
}

/// The first 64 bits of the SHA-256 of the sequence number and the record, in hex: enough to
/// tell a whole slot from a torn one.
fn checksum(seq: u64, record: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(seq.to_le_bytes());
    hash.update(record);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = hash.finalize();
    let mut sum = String::with_capacity(16);
    for b in &digest[..8] {
        sum.push(HEX[usize::from(b >> 4)] as char);
        sum.push(HEX[usize::from(b & 15)] as char);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(file: &mut [u8], layout: Layout, record: &[u8]) -> Layout {
        let slot = encode(layout.seq + 1, record);
        let (at, next) = layout.next(&slot).expect("fits");
        file[at as usize..at as usize + slot.len()].copy_from_slice(&slot);
        next
    }

    #[test]
    fn writes_alternate_and_the_newest_whole_slot_wins() {
        let (mut file, layout) = new_file(&encode(1, b"{\"v\":1}"), 1);
        assert!(is_slotted(&file) && file.len() == 2 * PAGE);
        assert_eq!(current(&file), Some((layout, &b"{\"v\":1}"[..])));
        let second = write(&mut file, layout, b"{\"v\":2}");
        assert_eq!(second.current, 1);
        let third = write(&mut file, second, b"{\"v\":3}");
        assert_eq!((third.current, third.seq), (0, 3));
        assert_eq!(current(&file).unwrap().1, b"{\"v\":3}");
    }

    /// What a crash mid-write leaves: any prefix of the new slot over the old one. Every
    /// such file reads as the last whole record, never as a mix or nothing.
    #[test]
    fn a_torn_write_reads_as_the_record_before_it() {
        let (mut file, layout) = new_file(&encode(1, b"{\"v\":\"one\"}"), 1);
        let second = write(&mut file, layout, b"{\"v\":\"two\"}");
        let slot = encode(3, b"{\"v\":\"three, longer than the slot's first record\"}");
        let (at, _) = second.next(&slot).unwrap();
        // The last byte, the newline, is not part of the record.
        for cut in 0..slot.len() - 1 {
            let mut torn = file.clone();
            torn[at as usize..at as usize + cut].copy_from_slice(&slot[..cut]);
            assert_eq!(
                current(&torn).unwrap().1,
                b"{\"v\":\"two\"}",
                "cut at {cut}"
            );
        }
        // A bit flipped in the record, or in its header.
        for flip in [at as usize + slot.len() - 3, at as usize + 20] {
            let mut damaged = file.clone();
            damaged[at as usize..at as usize + slot.len()].copy_from_slice(&slot);
            damaged[flip] ^= 1;
            assert_eq!(current(&damaged).unwrap().1, b"{\"v\":\"two\"}");
        }
        assert_eq!(current(&[0; 2 * PAGE]), None);
        assert_eq!(current(&file[..PAGE + 1]), None);
    }

    #[test]
    fn a_record_too_large_for_the_slot_needs_a_new_file() {
        let (_, layout) = new_file(&encode(1, b"{}"), 1);
        assert!(layout.next(&vec![b'x'; PAGE + 1]).is_none());
        let large = encode(2, &vec![b'x'; PAGE]);
        let (file, grown) = new_file(&large, 2);
        assert!(grown.size >= 2 * large.len() && grown.size.is_multiple_of(PAGE));
        assert_eq!(file.len(), 2 * grown.size);
        assert!(grown.next(&large).is_some());
    }
}
