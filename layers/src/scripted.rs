//! Broadcasts published from inside a Lua script.
//!
//! A caller that keeps something beside a broadcast in Redis (the service keeps each room's
//! chat history, and stamps every chat message with its place in it) would otherwise pay one
//! round trip for its own write and then a second for the `PUBLISH`, and would have to wait for
//! the first before sending the second (every receiver must see the stamp). A [`ScriptedSend`]
//! folds both into one command: the layer's publisher writes `EVAL` in place of `PUBLISH`, in
//! the same pipeline and queue order as every other message, and the script does the caller's
//! writes and the publish atomically. The sender waits for nothing, as for a plain broadcast.
//!
//! **Calling convention.** The script runs with `KEYS` = the keys given with
//! [`ScriptedSend::key`], `ARGV[1]` = the Redis channel, `ARGV[2]` = the message as the layer
//! would publish it (msgpack), `ARGV[3]...` = the arguments given with [`ScriptedSend::arg`]. It
//! must `PUBLISH` to `ARGV[1]` (the message, or bytes derived from it that every receiver can
//! decode, Python nodes included) and return `PUBLISH`'s reply, which the layer accounts for as
//! it does for its own publishes.
//!
//! **Where.** The keys must live on the server that carries the group's channel: only a layer
//! whose [`script_server`](crate::ChannelLayer::script_server) names that server runs scripts,
//! and the caller compares it with where its keys are. Layers without it (the in-memory one, the
//! queue layer, Cluster, whose shard channels and a caller's keys sit on different slots) refuse
//! with [`LayerError::Unsupported`](crate::LayerError::Unsupported).
//!
//! **`EVAL`, not `EVALSHA`.** Redis caches the compiled script by its hash either way; sending
//! the source costs a few hundred bytes per message and saves the `NOSCRIPT` recovery after a
//! restart or `SCRIPT FLUSH`, which could only retry a message after the ones queued behind it
//! had gone out, out of order.
//!
//! **Failure.** A script that Redis runs and that fails (an error reply: a key of the wrong type,
//! out of memory) has published nothing. Its [`fallback`](ScriptedSend::fallback), if any, is then
//! published as a plain message right after the pipeline, so the caller's extra write is what is
//! lost, not the broadcast; without one the message counts as
//! [`DropReason::PublishFailed`](crate::DropReason::PublishFailed). Both are logged.

use bytes::Bytes;

/// A broadcast to publish through a Lua script (see the module docs for the convention).
#[derive(Clone)]
pub struct ScriptedSend {
    pub(crate) script: &'static str,
    pub(crate) keys: Vec<String>,
    pub(crate) args: Vec<Bytes>,
    pub(crate) fallback: Option<Bytes>,
}

impl ScriptedSend {
    /// A send through `script` (Lua source), with no keys or extra arguments yet.
    pub fn new(script: &'static str) -> Self {
        Self {
            script,
            keys: Vec::new(),
            args: Vec::new(),
            fallback: None,
        }
    }

    /// Adds a key (`KEYS[n]`, in the order added).
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.keys.push(key.into());
        self
    }

    /// Adds an argument (`ARGV[3]`, `ARGV[4]`, ... in the order added).
    pub fn arg(mut self, arg: impl Into<Bytes>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// What to publish instead if the script fails (already encoded, as the layer would send it).
    pub fn fallback(mut self, payload: impl Into<Bytes>) -> Self {
        self.fallback = Some(payload.into());
        self
    }

    /// Appends the `EVAL` of this script for one message to `pipeline`.
    pub(crate) fn append_to(&self, pipeline: &mut redis::Pipeline, channel: &str, payload: &[u8]) {
        pipeline
            .cmd("EVAL")
            .arg(self.script)
            .arg(self.keys.len())
            .arg(&self.keys)
            .arg(channel)
            .arg(payload);
        for arg in &self.args {
            pipeline.arg(arg.as_ref());
        }
    }
}

impl std::fmt::Debug for ScriptedSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedSend")
            .field("keys", &self.keys)
            .field("args", &self.args.len())
            .field("fallback", &self.fallback.is_some())
            .finish_non_exhaustive()
    }
}
