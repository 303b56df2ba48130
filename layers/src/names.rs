//! Channel and group names: the rules every layer enforces, and the mapping that turns any
//! user-chosen text (a room name such as `"café au lait"`) into a valid group name.
//!
//! The rules are those of the Python layers (`BaseChannelLayer`), so that a name accepted here is
//! accepted by a Python process sharing the same Redis: fewer than 100 characters, ASCII
//! alphanumerics, `-`, `_` and `.`, and for channels an optional process-local `!` section.

use std::borrow::Cow;
use std::sync::Arc;

use crate::LayerError;

/// Names must be shorter than this many characters (Python's `MAX_NAME_LENGTH`).
pub const MAX_NAME_LENGTH: usize = 100;

/// Prefix of every mapped (escaped) group name. Valid names that happen to start with it are
/// mapped too, which is what keeps the mapping collision-free.
const ESCAPED_PREFIX: &str = "_u.";
/// Prefix of mapped names too long to escape in full; they end with a SHA-1 of the original.
const HASHED_PREFIX: &str = "_h.";

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Checks a group name against the naming rules.
pub fn validate_group_name(name: &str) -> Result<(), LayerError> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.chars().count() >= MAX_NAME_LENGTH {
        Some("100 characters or longer")
    } else if !name.chars().all(is_name_char) {
        Some("only ASCII alphanumerics, hyphens, underscores and periods are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(LayerError::InvalidGroupName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Checks a channel name against the naming rules: `^[a-zA-Z\d\-_.]+(![\w\-_.]*)?$`, fewer than
/// 100 characters. (Python's `\w` after the `!` is Unicode-aware; so is ours.)
pub fn validate_channel_name(name: &str) -> Result<(), LayerError> {
    let (head, tail) = match name.split_once('!') {
        Some((head, tail)) => (head, Some(tail)),
        None => (name, None),
    };
    let reason = if name.chars().count() >= MAX_NAME_LENGTH {
        Some("100 characters or longer")
    } else if head.is_empty() {
        Some("empty before the '!'")
    } else if !head.chars().all(is_name_char) {
        Some("only ASCII alphanumerics, hyphens, underscores and periods are allowed")
    } else if tail.is_some_and(|t| {
        !t.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
    }) {
        Some("invalid character after '!'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(LayerError::InvalidChannelName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// The process-wide part of a channel name: up to and including the `!`, or the whole name.
pub(crate) fn non_local_name(name: &str) -> &str {
    match name.find('!') {
        Some(i) => &name[..=i],
        None => name,
    }
}

/// A group name that satisfies the naming rules, checked once when it is made.
///
/// Every group operation of a [`ChannelLayer`](crate::ChannelLayer) takes a `Group` rather than
/// a string, so the rules are checked (and user text mapped) when a connection joins, not again
/// on every broadcast: a chat message costs a pointer copy for its group, not a scan of the name.
/// Cloning shares the text.
///
/// A group made from user text also keeps that text ([`Group::text`]): the Python pub/sub
/// layer names its Redis channel after the raw group text without checking it (`room_café`),
/// so the pub/sub layers use the text there, while everything else (the local tables, the
/// queue layer's keys, whose Python side refuses such names) uses the valid name. Equality,
/// ordering and hashing are by the name alone; the text follows from it.
#[derive(Clone)]
pub struct Group {
    name: Arc<str>,
    text: Arc<str>,
}

impl PartialEq for Group {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Group {}

impl std::hash::Hash for Group {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl PartialOrd for Group {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Group {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name.cmp(&other.name)
    }
}

impl Group {
    /// A group of exactly this name; [`LayerError::InvalidGroupName`] if it breaks the rules.
    pub fn new(name: &str) -> Result<Self, LayerError> {
        validate_group_name(name)?;
        let name: Arc<str> = Arc::from(name);
        Ok(Self {
            text: name.clone(),
            name,
        })
    }

    /// The group for any user text (a room name such as `"café au lait"`), through the
    /// deterministic, collision-free mapping of [`safe_group_name`]: every process maps a text
    /// to the same group, so they meet there.
    pub fn for_text(text: &str) -> Self {
        let name: Arc<str> = Arc::from(safe_group_name(text));
        let text = if *name == *text {
            name.clone()
        } else {
            Arc::from(text)
        };
        Self { name, text }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The text the group was made from: the name itself, or the user text that
    /// [`Group::for_text`] mapped to it.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl std::ops::Deref for Group {
    type Target = str;

    fn deref(&self) -> &str {
        &self.name
    }
}

impl AsRef<str> for Group {
    fn as_ref(&self) -> &str {
        &self.name
    }
}

impl std::borrow::Borrow<str> for Group {
    fn borrow(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.name, f)
    }
}

impl std::fmt::Display for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl std::str::FromStr for Group {
    type Err = LayerError;

    fn from_str(name: &str) -> Result<Self, LayerError> {
        Self::new(name)
    }
}

/// 32 random lowercase hex digits (the Python layers use `uuid4().hex`).
pub(crate) fn random_hex32() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Maps any text to a valid group name: deterministic (every process maps a room name the same
/// way, so they meet in the same group), identity for a name that is already valid, and
/// collision-free (two different inputs never share a group).
///
/// How: a valid name maps to itself unless it starts with the reserved prefix `_u.`/`_h.`. Any
/// other name is escaped byte by byte (`_` becomes `__`, a byte outside the allowed set becomes
/// `_` + two hex digits) behind `_u.`; the escaping is reversible, hence injective, and escaped
/// names can never be confused with identity-mapped ones because those never start with the
/// prefix. If the escaped form would exceed the length limit, the name becomes `_h.` + a
/// readable escaped head + `.` + SHA-1 of the original (collision-free in practice).
pub fn safe_group_name(name: &str) -> Cow<'_, str> {
    let reserved = name.starts_with(ESCAPED_PREFIX) || name.starts_with(HASHED_PREFIX);
    if !reserved && validate_group_name(name).is_ok() {
        return Cow::Borrowed(name);
    }
    let mut escaped = String::with_capacity(ESCAPED_PREFIX.len() + name.len() * 2);
    escaped.push_str(ESCAPED_PREFIX);
    for byte in name.bytes() {
        match byte {
            b'_' => escaped.push_str("__"),
            b if b.is_ascii_alphanumeric() || b == b'-' || b == b'.' => escaped.push(char::from(b)),
            b => {
                escaped.push('_');
                escaped.push_str(&hex::encode([b]));
            }
        }
    }
    if escaped.len() < MAX_NAME_LENGTH {
        return Cow::Owned(escaped);
    }
    let digest = sha1_smol::Sha1::from(name.as_bytes()).digest().to_string();
    // 3 (prefix) + head + 1 (".") + 40 (digest) must stay below 100.
    let head_len = MAX_NAME_LENGTH - 1 - HASHED_PREFIX.len() - 1 - digest.len();
    let head: String = escaped[ESCAPED_PREFIX.len()..]
        .chars()
        .take(head_len)
        .collect();
    Cow::Owned(format!("{HASHED_PREFIX}{head}.{digest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_rules() {
        for ok in ["specific.abc!def", "a", "x-y_z.1", "specific.x!", "a!é"] {
            validate_channel_name(ok).unwrap();
        }
        for bad in ["", "!x", "a b", "a/b", "café", &"x".repeat(100), "a!b!c"] {
            assert!(validate_channel_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn group_mapping_is_identity_for_valid_and_injective_otherwise() {
        assert_eq!(safe_group_name("general"), "general");
        assert!(matches!(safe_group_name("general"), Cow::Borrowed(_)));
        let inputs = [
            "a b",
            "a_20b",
            "_u.a_20b",
            "café",
            "a/b",
            "",
            "_u.",
            "_h.x",
            "a__b",
            "a_b",
            &"z".repeat(99),
            &"z".repeat(100),
            &"z".repeat(101),
            &"é".repeat(60),
            &"é".repeat(61),
        ];
        let mut seen = std::collections::HashSet::new();
        for input in inputs {
            let mapped = safe_group_name(input).into_owned();
            validate_group_name(&mapped).unwrap();
            assert_eq!(safe_group_name(input), mapped, "deterministic");
            assert!(
                seen.insert(mapped.clone()),
                "collision on {input:?} -> {mapped}"
            );
        }
    }
}
