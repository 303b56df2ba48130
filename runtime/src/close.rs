//! How a connection ends: the WebSocket close codes the runtime sends, and the one reason each
//! server-side closure is counted under.

/// WebSocket close codes the runtime uses (RFC 6455 §7.4.1).
pub mod close_code {
    /// Server shutting down, or the connection was idle too long.
    pub const GOING_AWAY: u16 = 1001;
    /// The client broke the WebSocket protocol (RSV bits, an unmasked or reserved frame, an
    /// oversized control frame, ...).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame was not valid UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// The client broke a policy: it fell too far behind reading (slow consumer), or kept
    /// sending faster than the inbound rate limit.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A frame was larger than the configured maximum.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The server could not serve the connection (e.g. the channel layer is unavailable).
    pub const INTERNAL_ERROR: u16 = 1011;
}

/// Why the server ended a connection. Each connection the server closes is counted under
/// exactly one reason, the first that applied: a client that stops reading is a slow consumer
/// whether its queue overflowed first or a write timed out first, never both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client fell too far behind: its outbound queue filled up with deliveries, or one
    /// write to it did not complete within the write timeout (code 1008 when it can still be
    /// sent).
    SlowConsumer,
    /// A frame over the size limit (code 1009).
    FrameTooLarge,
    /// No traffic within the idle timeout (code 1001).
    Idle,
    /// The server is shutting down (code 1001).
    Shutdown,
    /// A write did not complete within the write timeout.
    WriteTimeout,
    /// The channel layer could not serve the connection (code 1011).
    LayerUnavailable,
    /// A text frame that was not UTF-8 (code 1007).
    InvalidUtf8,
    /// A frame that breaks the WebSocket protocol (code 1002).
    ProtocolViolation,
    /// Held at the inbound rate limit for longer than the flood bound (code 1008).
    RateLimited,
}

impl CloseReason {
    /// Every reason, in a stable order (for metrics output).
    pub const ALL: [CloseReason; 9] = [
        CloseReason::SlowConsumer,
        CloseReason::FrameTooLarge,
        CloseReason::Idle,
        CloseReason::Shutdown,
        CloseReason::WriteTimeout,
        CloseReason::LayerUnavailable,
        CloseReason::InvalidUtf8,
        CloseReason::ProtocolViolation,
        CloseReason::RateLimited,
    ];

    /// A snake_case label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::SlowConsumer => "slow_consumer",
            Self::FrameTooLarge => "frame_too_large",
            Self::Idle => "idle",
            Self::Shutdown => "shutdown",
            Self::WriteTimeout => "write_timeout",
            Self::LayerUnavailable => "layer_unavailable",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::ProtocolViolation => "protocol_violation",
            Self::RateLimited => "rate_limited",
        }
    }

    /// The close frame the client is sent, when one can still be sent.
    pub(crate) fn close_frame(self) -> Option<(u16, &'static str)> {
        match self {
            Self::SlowConsumer => Some((close_code::POLICY_VIOLATION, "slow consumer")),
            Self::FrameTooLarge => Some((close_code::MESSAGE_TOO_BIG, "frame too large")),
            Self::Idle => Some((close_code::GOING_AWAY, "idle timeout")),
            Self::Shutdown => Some((close_code::GOING_AWAY, "server shutting down")),
            // The socket is not taking writes; a close frame would wait behind the rest.
            Self::WriteTimeout => None,
            Self::LayerUnavailable => Some((close_code::INTERNAL_ERROR, "channel layer closed")),
            Self::InvalidUtf8 => {
                Some((close_code::INVALID_PAYLOAD, "invalid UTF-8 in a text frame"))
            }
            Self::ProtocolViolation => Some((close_code::PROTOCOL_ERROR, "protocol error")),
            Self::RateLimited => Some((close_code::POLICY_VIOLATION, "rate limit exceeded")),
        }
    }
}
