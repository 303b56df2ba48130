//! The measured chat message: `b|<room>|<sender>|<seq>|<sent µs>`.
//!
//! Everything the receiver needs to judge a delivery travels inside the chat text, so the load
//! generator needs no side channel and works the same against the service (which wraps the text
//! as `💬 b|...` inside a `room_notification` frame) and the reference server (which forwards the
//! client's frame unchanged). The receiver only searches for the marker, it does not parse JSON:
//! the load generator shares the machine with the server and must stay cheap per frame.

use std::fmt::Write as _;

/// Marks the start of a probe inside a frame.
const MARKER: &str = "b|";

/// One measured message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Index of the room the sender is in (leak detection).
    pub room: u32,
    /// Index of the sender among its room's senders.
    pub sender: u32,
    /// The sender's sequence number, from 0 (loss, duplicates, order).
    pub seq: u64,
    /// Send time, in microseconds since the run's start (latency; one clock, one process).
    pub sent_us: u64,
}

impl Probe {
    /// The client frame carrying this probe as a chat message.
    pub fn chat_frame(&self) -> String {
        let mut frame = String::with_capacity(80);
        let _ = write!(
            frame,
            r#"{{"action":"room_chat","payload":{{"message":"{MARKER}{}|{}|{}|{}"}}}}"#,
            self.room, self.sender, self.seq, self.sent_us
        );
        frame
    }

    /// Finds the probe in a received frame, or `None` when the frame carries none (join and
    /// leave notices, pongs).
    pub fn find(frame: &str) -> Option<Self> {
        let start = frame.find(MARKER)? + MARKER.len();
        let mut fields = frame[start..].split('|');
        let room = fields.next()?.parse().ok()?;
        let sender = fields.next()?.parse().ok()?;
        let seq = fields.next()?.parse().ok()?;
        let last = fields.next()?;
        let digits = last.bytes().take_while(u8::is_ascii_digit).count();
        let sent_us = last[..digits].parse().ok()?;
        Some(Self {
            room,
            sender,
            seq,
            sent_us,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Probe;

    #[test]
    fn round_trips_through_both_servers_framings() {
        let probe = Probe {
            room: 3,
            sender: 1,
            seq: 42,
            sent_us: 123_456,
        };
        // The reference server forwards the client's frame as it is.
        assert_eq!(Probe::find(&probe.chat_frame()), Some(probe));
        // The service wraps the text in a notification.
        let served = r#"{"action":"room_notification","payload":{"message":"💬 b|3|1|42|123456","room_name":"r-3"}}"#;
        assert_eq!(Probe::find(served), Some(probe));
        assert_eq!(
            Probe::find(
                r#"{"action":"room_notification","payload":{"message":"🚪 Someone joined room 'r-3'","room_name":"r-3"}}"#
            ),
            None
        );
    }
}
