//! The room store of a single process (the in-memory layer): a map of rooms behind one lock,
//! each with a ring of its last messages and its members.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use super::{
    new_epoch, now_ms, select, History, MemberEntry, Presence, Retention, RoomStore, Stamp,
    StoreError, StoredChat,
};

/// How often, at most, rooms that are empty and whose history has aged out are freed (the
/// sweep runs on the next store call after this).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// One room's state.
#[derive(Debug)]
struct Room {
    epoch: String,
    /// The newest offset given.
    last: u64,
    /// The newest `Retention::size` messages, oldest first.
    ring: VecDeque<StoredChat>,
    members: Vec<MemberEntry>,
}

impl Room {
    fn new() -> Self {
        Self {
            epoch: new_epoch(),
            last: 0,
            ring: VecDeque::new(),
            members: Vec::new(),
        }
    }

    /// Whether it can be forgotten: nobody in it, and no message younger than `max_age`.
    fn forgettable(&self, now: u64, max_age: Duration) -> bool {
        let max_age = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
        self.members.is_empty()
            && self
                .ring
                .back()
                .is_none_or(|m| m.at_ms.saturating_add(max_age) < now)
    }
}

#[derive(Debug)]
struct Rooms {
    rooms: HashMap<String, Room>,
    last_sweep_ms: u64,
}

/// Presence and history in this process. A lock around a map: each call holds it for a few
/// pushes or a copy of at most `Retention::size` messages, and never across an await.
#[derive(Debug)]
pub struct MemoryStore {
    retention: Retention,
    state: Mutex<Rooms>,
}

impl MemoryStore {
    /// An empty store keeping `retention`'s worth of history per room.
    pub fn new(retention: Retention) -> Self {
        Self {
            retention,
            state: Mutex::new(Rooms {
                rooms: HashMap::new(),
                last_sweep_ms: now_ms(),
            }),
        }
    }

    /// Rooms held now (for tests of the freeing rule).
    pub fn rooms(&self) -> usize {
        self.lock().rooms.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rooms> {
        // Every change leaves the map consistent, so a poisoned lock is taken over.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on `room`'s state (created if new), sweeping forgotten rooms now and then.
    fn with_room<T>(&self, room: &str, f: impl FnOnce(&mut Room) -> T) -> T {
        let now = now_ms();
        let mut state = self.lock();
        if now.saturating_sub(state.last_sweep_ms)
            >= u64::try_from(SWEEP_EVERY.as_millis()).unwrap_or(u64::MAX)
        {
            let max_age = self.retention.max_age;
            state.rooms.retain(|_, r| !r.forgettable(now, max_age));
            state.last_sweep_ms = now;
        }
        let entry = state.rooms.entry(room.to_owned()).or_insert_with(Room::new);
        f(entry)
    }
}

#[async_trait::async_trait]
impl RoomStore for MemoryStore {
    async fn append(
        &self,
        room: &str,
        message: &str,
        sender: Option<&str>,
    ) -> Result<Stamp, StoreError> {
        let size = self.retention.size;
        Ok(self.with_room(room, |r| {
            r.last += 1;
            if size > 0 {
                if r.ring.len() >= size {
                    r.ring.pop_front();
                }
                r.ring.push_back(StoredChat {
                    offset: r.last,
                    message: message.to_owned(),
                    sender: sender.map(str::to_owned),
                    at_ms: now_ms(),
                });
            }
            Stamp {
                offset: r.last,
                epoch: r.epoch.clone(),
            }
        }))
    }

    async fn history(
        &self,
        room: &str,
        since: Option<u64>,
        limit: usize,
    ) -> Result<History, StoreError> {
        let max_age = self.retention.max_age;
        let (epoch, last, retained) =
            self.with_room(room, |r| (r.epoch.clone(), r.last, r.ring.clone()));
        let (messages, complete) = select(retained, last, since, limit, max_age, now_ms());
        Ok(History {
            epoch,
            messages,
            complete,
        })
    }

    async fn join(&self, room: &str, member: &MemberEntry) -> Result<(), StoreError> {
        self.with_room(room, |r| r.members.push(member.clone()));
        Ok(())
    }

    async fn leave(&self, room: &str, member: &MemberEntry) -> Result<(), StoreError> {
        let now = now_ms();
        let max_age = self.retention.max_age;
        let mut state = self.lock();
        if let Some(r) = state.rooms.get_mut(room) {
            r.members.retain(|m| m.id != member.id);
            if r.forgettable(now, max_age) {
                state.rooms.remove(room);
            }
        }
        Ok(())
    }

    async fn presence(&self, room: &str, max: usize) -> Result<Presence, StoreError> {
        let state = self.lock();
        let members = state
            .rooms
            .get(room)
            .map(|r| r.members.as_slice())
            .unwrap_or_default();
        // Members are pushed as they join, so the list is oldest first already.
        Ok(Presence {
            count: members.len(),
            members: members.iter().take(max).cloned().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str) -> MemberEntry {
        MemberEntry {
            id: id.into(),
            name: Some(id.into()),
            joined_at_ms: now_ms(),
        }
    }

    #[tokio::test]
    async fn a_ring_per_room_freed_when_empty_and_old() {
        let store = MemoryStore::new(Retention {
            size: 2,
            max_age: Duration::ZERO,
        });
        let ada = member("ada");
        store.join("r", &ada).await.unwrap();
        for text in ["a", "b", "c"] {
            store.append("r", text, Some("ada")).await.unwrap();
        }
        let presence = store.presence("r", 10).await.unwrap();
        assert_eq!(presence.count, 1);
        // With a max age of zero every message is old a moment later: the last one out frees
        // the room.
        tokio::time::sleep(Duration::from_millis(5)).await;
        store.leave("r", &ada).await.unwrap();
        assert_eq!(store.rooms(), 0);
        // A room still in use, or with fresh history, is kept.
        let keeps = MemoryStore::new(Retention {
            size: 2,
            max_age: Duration::from_secs(60),
        });
        keeps.join("t", &ada).await.unwrap();
        keeps.append("t", "a", None).await.unwrap();
        keeps.leave("t", &ada).await.unwrap();
        assert_eq!(keeps.rooms(), 1);
        store.join("s", &ada).await.unwrap();
        store.leave("s", &ada).await.unwrap();
        assert_eq!(store.rooms(), 0);
    }

    #[tokio::test]
    async fn a_forgotten_room_comes_back_with_a_new_epoch() {
        let store = MemoryStore::new(Retention {
            size: 5,
            max_age: Duration::ZERO,
        });
        let ada = member("ada");
        store.join("r", &ada).await.unwrap();
        let before = store.append("r", "a", None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        store.leave("r", &ada).await.unwrap();
        let after = store.append("r", "b", None).await.unwrap();
        assert_eq!(after.offset, 1);
        assert_ne!(
            after.epoch, before.epoch,
            "offsets of the old epoch mean nothing now"
        );
    }

    #[tokio::test]
    async fn offsets_increase_and_the_ring_keeps_the_newest() {
        let store = MemoryStore::new(Retention {
            size: 2,
            max_age: Duration::from_secs(60),
        });
        let mut epoch = None;
        for (i, text) in ["a", "b", "c"].into_iter().enumerate() {
            let stamp = store.append("r", text, None).await.unwrap();
            assert_eq!(stamp.offset, i as u64 + 1);
            assert!(epoch.get_or_insert(stamp.epoch.clone()) == &stamp.epoch);
        }
        let history = store.history("r", Some(0), 10).await.unwrap();
        let texts: Vec<_> = history
            .messages
            .iter()
            .map(|m| m.message.as_str())
            .collect();
        assert_eq!(texts, ["b", "c"]);
        assert!(!history.complete);
        assert!(store.history("r", Some(1), 10).await.unwrap().complete);
    }
}
