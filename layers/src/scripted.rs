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
//! **`EVALSHA`, then `EVAL`.** A message is sent as `EVALSHA`, so what travels per message is
//! the script's hash, not its source. Redis forgets scripts when it restarts or is told to
//! (`SCRIPT FLUSH`); a message whose `EVALSHA` comes back `NOSCRIPT` was not run, so it is sent
//! again with its source (`EVAL`, which also caches the script for the next ones) right after its
//! pipeline. That is the one case where it can arrive after a message queued behind it.
//!
//! **Failure.** A script that Redis runs and that fails (an error reply: a key of the wrong type,
//! out of memory) has published nothing. Its [`fallback`](ScriptedSend::fallback), if any, is then
//! published as a plain message right after the pipeline, so the caller's extra write is what is
//! lost, not the broadcast; without one the message counts as
//! [`DropReason::PublishFailed`](crate::DropReason::PublishFailed). Both are logged.

use bytes::Bytes;

/// A Lua script and its SHA-1, computed once (the hash is what `EVALSHA` sends).
#[derive(Debug)]
pub struct LuaScript {
    source: &'static str,
    sha: String,
}

impl LuaScript {
    /// Hashes `source`. Keep the result (in a `static`, or next to what uses it): every send
    /// through the script shares it.
    pub fn new(source: &'static str) -> Self {
        Self {
            source,
            sha: sha1_smol::Sha1::from(source).digest().to_string(),
        }
    }

    /// The script's SHA-1 in hex, as Redis names it.
    pub fn sha(&self) -> &str {
        &self.sha
    }
}

/// A broadcast to publish through a Lua script (see the module docs for the convention).
#[derive(Clone)]
pub struct ScriptedSend {
    pub(crate) script: &'static LuaScript,
    pub(crate) keys: Vec<Bytes>,
    pub(crate) args: Vec<Bytes>,
    pub(crate) fallback: Option<Bytes>,
    /// Send the source (`EVAL`) rather than the hash: Redis answered `NOSCRIPT`.
    pub(crate) with_source: bool,
}

impl ScriptedSend {
    /// A send through `script`, with room for `keys` keys and `args` extra arguments (one
    /// allocation each, however many are added within them).
    pub fn new(script: &'static LuaScript, keys: usize, args: usize) -> Self {
        Self {
            script,
            keys: Vec::with_capacity(keys),
            args: Vec::with_capacity(args),
            fallback: None,
            with_source: false,
        }
    }

    /// Adds a key (`KEYS[n]`, in the order added).
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
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

    /// Appends the `EVALSHA` (or, after `NOSCRIPT`, the `EVAL`) of this script for one message
    /// to `pipeline`.
    pub(crate) fn append_to(&self, pipeline: &mut redis::Pipeline, channel: &str, payload: &[u8]) {
        if self.with_source {
            pipeline.cmd("EVAL").arg(self.script.source);
        } else {
            pipeline.cmd("EVALSHA").arg(&self.script.sha);
        }
        pipeline.arg(self.keys.len());
        for key in &self.keys {
            pipeline.arg(key.as_ref());
        }
        pipeline.arg(channel).arg(payload);
        for arg in &self.args {
            pipeline.arg(arg.as_ref());
        }
    }
}

impl std::fmt::Debug for ScriptedSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedSend")
            .field("script", &self.script.sha)
            .field("keys", &self.keys)
            .field("args", &self.args.len())
            .field("fallback", &self.fallback.is_some())
            .finish_non_exhaustive()
    }
}
