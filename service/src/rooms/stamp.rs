//! Stamping a broadcast inside Redis: how a chat message gets its `offset` and `epoch` in the
//! same command that appends it to the room's history and publishes it.
//!
//! Every receiver must see the offset, and only Redis knows it (it is the room's next number,
//! shared by every process). Asking for it first and publishing after costs a second round trip
//! per chat message, paid before the broadcast can even be queued. Instead the message is encoded
//! once with **placeholders** where the offset and epoch go ([`OFFSET_PLACEHOLDER`], which
//! msgpack writes as a `uint64`, `0xcf` and 8 bytes; [`EPOCH_PLACEHOLDER`], a 16-byte string,
//! `0xb0` and 16 bytes), cut into the three [`Parts`] around them, and the script that appends it
//! (see the Redis store) publishes `before ‖ offset ‖ between ‖ epoch ‖ after`, the two values
//! msgpack-encoded by Redis's own `cmsgpack`. Joining parts is one concatenation in Lua, where
//! cutting the message there would cost Redis several string copies per chat message.
//!
//! The result is ordinary msgpack (a value's width may differ from its placeholder's: nothing
//! counts bytes, and the map still has the same keys): Rust and Python receivers decode it as if
//! the sender had known the numbers. The offset placeholder cannot occur in user text, because its first two
//! bytes (`0xcf 0x7f`) are not valid UTF-8 and every string in the message is; the epoch
//! placeholder is looked for only after it, where nothing but the epoch and the envelope's own
//! fields (`exclude_current`, the sender's channel name) follow. If the encoding ever stops
//! having that shape, [`locate`] finds nothing and the message is appended and sent the slow way.

use bytes::Bytes;

/// The offset written into a broadcast before Redis gives it its real one (no room reaches it:
/// it is beyond what a Lua number holds exactly).
pub const OFFSET_PLACEHOLDER: i64 = 0x7f5a_5a5a_5a5a_5a5a;

/// The epoch written into a broadcast before Redis gives it the room's (16 bytes, the length of
/// a real epoch, so the placeholder encodes as the same `fixstr` header).
pub const EPOCH_PLACEHOLDER: &str = "~epoch~pending~~";

/// msgpack's `uint64` marker: the placeholder's encoding, and the script's.
const UINT64: u8 = 0xcf;

/// The offset placeholder's encoding: the `uint64` marker and 8 bytes.
pub const OFFSET_LEN: usize = 9;

/// The epoch placeholder's encoding: a `fixstr` header and 16 bytes.
pub const EPOCH_LEN: usize = 17;

/// Where the placeholders sit in an encoded broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slots {
    /// Index of the offset's `uint64` marker ([`OFFSET_LEN`] bytes from there).
    pub offset: usize,
    /// Index of the epoch's string header ([`EPOCH_LEN`] bytes from there).
    pub epoch: usize,
}

fn offset_bytes() -> [u8; OFFSET_LEN] {
    let mut bytes = [UINT64; OFFSET_LEN];
    bytes[1..].copy_from_slice(&OFFSET_PLACEHOLDER.to_be_bytes());
    bytes
}

fn epoch_bytes() -> [u8; EPOCH_LEN] {
    let mut bytes = [0xa0 | 16; EPOCH_LEN];
    bytes[1..].copy_from_slice(EPOCH_PLACEHOLDER.as_bytes());
    bytes
}

/// Finds both placeholders in `encoded`: the offset's is the last 9 bytes equal to it (no string
/// can hold them, and the frame has no other integer of that value; it sits near the end, so the
/// search runs from there), the epoch's the first after it.
pub fn locate(encoded: &[u8]) -> Option<Slots> {
    let offset_bytes = offset_bytes();
    let offset = encoded
        .windows(offset_bytes.len())
        .rposition(|w| w == offset_bytes)?;
    let after = offset + OFFSET_LEN;
    let epoch_bytes = epoch_bytes();
    let epoch = encoded
        .get(after..)?
        .windows(epoch_bytes.len())
        .position(|w| w == epoch_bytes)?;
    Some(Slots {
        offset,
        epoch: after + epoch,
    })
}

/// An encoded broadcast cut around its placeholders (slices of it, not copies).
#[derive(Debug, Clone)]
pub struct Parts {
    /// Up to the offset's value.
    pub before: Bytes,
    /// From after the offset's value up to the epoch's.
    pub between: Bytes,
    /// After the epoch's value.
    pub after: Bytes,
}

/// Cuts `encoded` around the placeholders at `slots`.
pub fn parts(encoded: &Bytes, slots: Slots) -> Parts {
    Parts {
        before: encoded.slice(..slots.offset),
        between: encoded.slice(slots.offset + OFFSET_LEN..slots.epoch),
        after: encoded.slice(slots.epoch + EPOCH_LEN..),
    }
}

/// The broadcast with msgpack's nil for the offset and the epoch: what goes out when the script
/// fails (delivered, without a place in history).
pub fn unstamped(parts: &Parts) -> Vec<u8> {
    const NIL: u8 = 0xc0;
    let mut out =
        Vec::with_capacity(parts.before.len() + parts.between.len() + parts.after.len() + 2);
    out.extend_from_slice(&parts.before);
    out.push(NIL);
    out.extend_from_slice(&parts.between);
    out.push(NIL);
    out.extend_from_slice(&parts.after);
    out
}
