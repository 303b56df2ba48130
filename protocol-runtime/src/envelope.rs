//! The envelope: keys a client may put beside any message, and what a dispatcher answers.
//!
//! chanx lets a client add `ref` (a string of its choosing) and `version` (an integer) to every
//! frame. They are not part of the message: the direct reply to a frame echoes its `ref` with
//! the current version, and a broadcast carries neither.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::decode::{self, Loc};
use crate::report::{detail_frame_with, error_frame_with, failure_detail, ErrorItem};

/// `ref` and `version`, when present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Envelope version; replies that echo a `ref` carry [`ENVELOPE_VERSION`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Chosen by the client, echoed on the direct reply.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// The envelope version replies carry.
pub const ENVELOPE_VERSION: i64 = 1;

impl Envelope {
    /// Reads `ref` and `version` from a frame object (both optional; `null` means absent).
    pub fn decode(
        object: &Map<String, Value>,
        loc: &Loc<'_>,
        errors: &mut Vec<ErrorItem>,
    ) -> Option<Self> {
        let reference = decode::optional(object, "ref", loc, errors);
        let version = decode::optional(object, "version", loc, errors);
        Some(Self {
            version: version?,
            reference: reference?,
        })
    }

    /// The envelope of a direct reply: the request's `ref` with the current version, or nothing
    /// when the request had no `ref`.
    pub fn reply(&self) -> Self {
        match &self.reference {
            Some(reference) => Self {
                version: Some(ENVELOPE_VERSION),
                reference: Some(reference.clone()),
            },
            None => Self::default(),
        }
    }
}

/// A message with its envelope: what travels as one frame. It serializes straight to the frame
/// (`{"action": ..., "payload": ..., "ref": ...}`) with no intermediate JSON value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Framed<T> {
    /// The message (`action` and `payload`).
    #[serde(flatten)]
    pub message: T,
    /// `ref` / `version`, when present.
    #[serde(flatten)]
    pub envelope: Envelope,
}

impl<T> Framed<T> {
    /// A frame with no envelope keys (e.g. a broadcast).
    pub fn bare(message: T) -> Self {
        Self {
            message,
            envelope: Envelope::default(),
        }
    }
}

/// What a generated `dispatch` did with one text frame.
#[derive(Debug)]
pub enum Dispatched<O, E> {
    /// The handler ran; `reply` is the operation's direct reply, already carrying the request's
    /// `ref`, to be sent to the client.
    Handled {
        /// The action that was handled.
        action: &'static str,
        /// The direct reply, for operations that declare one.
        reply: Option<Framed<O>>,
    },
    /// The frame did not decode; answer with [`rejection_frame`](crate::rejection_frame).
    Rejected {
        /// Every problem found.
        errors: Vec<ErrorItem>,
    },
    /// The handler failed; answer with [`failure_reply`] (or [`rejection_reply`] for an error
    /// the client should read) and log `error`.
    Failed {
        /// The action whose handler failed.
        action: &'static str,
        /// The handler's error.
        error: E,
        /// The envelope of the error frame: the request's `ref`, echoed as on a reply, so a
        /// client waiting for the answer to its request gets this error instead of a timeout.
        reply: Envelope,
    },
}

impl<O, E> Dispatched<O, E> {
    /// The outcome of a handler with no reply, for a frame that came with `request`.
    pub fn handled(action: &'static str, result: Result<(), E>, request: &Envelope) -> Self {
        match result {
            Ok(()) => Self::Handled {
                action,
                reply: None,
            },
            Err(error) => Self::Failed {
                action,
                error,
                reply: request.reply(),
            },
        }
    }

    /// The outcome of a handler whose reply answers a request that came with `request`.
    pub fn replied(action: &'static str, result: Result<O, E>, request: &Envelope) -> Self {
        match result {
            Ok(message) => Self::Handled {
                action,
                reply: Some(Framed {
                    message,
                    envelope: request.reply(),
                }),
            },
            Err(error) => Self::Failed {
                action,
                error,
                reply: request.reply(),
            },
        }
    }
}

/// The `error` frame listing `errors`, echoing the request's `ref` (`reply`, from
/// [`Dispatched::Failed`]) as a direct reply does.
pub fn rejection_reply(errors: &[ErrorItem], reply: &Envelope) -> String {
    error_frame_with(errors, reply)
}

/// The `error` frame for a failed handler (as [`failure_frame`](crate::failure_frame)), echoing
/// the request's `ref` (`reply`, from [`Dispatched::Failed`]).
pub fn failure_reply(action: &str, reply: &Envelope) -> String {
    detail_frame_with(&failure_detail(action), reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_echo_the_ref_with_the_current_version() {
        let request = Envelope {
            version: Some(7),
            reference: Some("r1".into()),
        };
        let reply = request.reply();
        assert_eq!(reply.version, Some(ENVELOPE_VERSION));
        assert_eq!(reply.reference.as_deref(), Some("r1"));
        assert_eq!(Envelope::default().reply(), Envelope::default());
    }

    #[test]
    fn frames_serialize_flat() {
        #[derive(Serialize)]
        #[serde(tag = "action")]
        enum Out {
            #[serde(rename = "pong")]
            Pong { payload: () },
        }
        let bare = Framed::bare(Out::Pong { payload: () });
        let text = serde_json::to_string(&bare).unwrap_or_default();
        assert_eq!(text, r#"{"action":"pong","payload":null}"#);
        let framed: Dispatched<Out, ()> = Dispatched::replied(
            "ping",
            Ok(Out::Pong { payload: () }),
            &Envelope {
                version: None,
                reference: Some("r".into()),
            },
        );
        let Dispatched::Handled {
            reply: Some(reply), ..
        } = framed
        else {
            panic!("not handled");
        };
        let text = serde_json::to_string(&reply).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"action":"pong","payload":null,"version":1,"ref":"r"}"#
        );
    }
}
