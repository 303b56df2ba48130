//! The reference server: the least a broadcast chat server can do on this machine.
//!
//! It speaks just enough of the room chat protocol for the load generator: the room is the
//! path segment after `/ws/room/`; a text frame starting with `{"action":"ping"` gets
//! `{"action":"pong","payload":null}`; any other text frame goes, unchanged and without being
//! parsed, to every member of the room (the sender included); joining and leaving send the
//! notices to the others, so room setup costs the same frames as on the service. No JSON, no
//! channel layer, no metrics: one shared `Bytes` per broadcast and a bounded queue per client
//! (a full queue closes that client with 1008, as the service does). Its figures are the
//! ceiling the service's are compared against.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Limits, matching the service's defaults so memory and backpressure compare like for like.
#[derive(Debug, Clone)]
pub struct ReferenceSettings {
    /// Frames queued per client before it is closed as a slow consumer.
    pub outbound_queue: usize,
    /// WebSocket read (and write) buffer per connection, bytes.
    pub buffer_bytes: usize,
    /// Largest message accepted, bytes.
    pub max_frame_bytes: usize,
}

impl Default for ReferenceSettings {
    fn default() -> Self {
        Self {
            outbound_queue: 1024,
            buffer_bytes: 4 * 1024,
            max_frame_bytes: 64 * 1024,
        }
    }
}

/// One member of a room.
struct Member {
    id: u64,
    queue: mpsc::Sender<Message>,
    /// Set when its queue overflowed; its writer closes it.
    slow: Arc<AtomicBool>,
}

type Rooms = Mutex<HashMap<String, Arc<RwLock<Vec<Member>>>>>;

/// A running reference server.
pub struct ReferenceServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ReferenceServer {
    /// Binds `addr` and serves in the background.
    pub async fn start(addr: SocketAddr, settings: ReferenceSettings) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, Arc::new(settings), stopped));
        Ok(Self { addr, stop, task })
    }

    /// Stops accepting (open connections end when their clients leave).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    settings: Arc<ReferenceSettings>,
    mut stopped: watch::Receiver<bool>,
) {
    let rooms: Arc<Rooms> = Arc::default();
    let ids = Arc::new(AtomicU64::new(0));
    loop {
        let accepted = tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let id = ids.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve(stream, id, rooms.clone(), settings.clone()));
            }
            // Out of file descriptors or similar: keep serving the others.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

fn room_of(path: &str) -> Option<String> {
    let room = path.strip_prefix("/ws/room/")?;
    (!room.is_empty() && !room.contains('/')).then(|| room.to_owned())
}

fn notice(room: &str, verb: &str, emoji: &str) -> Message {
    Message::text(format!(
        r#"{{"action":"room_notification","payload":{{"message":"{emoji} Someone {verb} room '{room}'","room_name":"{room}"}}}}"#
    ))
}

/// Sends `message` to every member of `members` (except `skip`); a member whose queue is full
/// is marked slow and its writer closes it.
fn broadcast(members: &RwLock<Vec<Member>>, message: &Message, skip: Option<u64>) {
    let members = members.read().unwrap_or_else(PoisonError::into_inner);
    for member in members.iter().filter(|m| Some(m.id) != skip) {
        if let Err(mpsc::error::TrySendError::Full(_)) = member.queue.try_send(message.clone()) {
            member.slow.store(true, Ordering::Relaxed);
        }
    }
}

async fn serve(stream: TcpStream, id: u64, rooms: Arc<Rooms>, settings: Arc<ReferenceSettings>) {
    let _ = stream.set_nodelay(true);
    let mut path = String::new();
    let config = WebSocketConfig::default()
        .read_buffer_size(settings.buffer_bytes)
        .write_buffer_size(settings.buffer_bytes)
        .max_message_size(Some(settings.max_frame_bytes))
        .max_frame_size(Some(settings.max_frame_bytes));
    // The error type is tungstenite's, not ours to shrink; the callback never fails anyway.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        path = request.uri().path().to_owned();
        Ok(response)
    };
    let Ok(ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await
    else {
        return;
    };
    let Some(room) = room_of(&path) else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (queue, mut outbound) = mpsc::channel::<Message>(settings.outbound_queue.max(1));
    let slow = Arc::new(AtomicBool::new(false));
    let members = rooms
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(room.clone())
        .or_default()
        .clone();
    broadcast(&members, &notice(&room, "joined", "🚪"), None);
    members
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Member {
            id,
            queue: queue.clone(),
            slow: slow.clone(),
        });

    // Writer: batch what is queued into one flush.
    let writer_slow = slow.clone();
    let writer = tokio::spawn(async move {
        while let Some(message) = outbound.recv().await {
            if sink.feed(message).await.is_err() {
                return;
            }
            for _ in 0..64 {
                let Ok(message) = outbound.try_recv() else {
                    break;
                };
                if sink.feed(message).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
            if writer_slow.load(Ordering::Relaxed) {
                let _ = sink
                    .send(Message::Close(Some(CloseFrame {
                        code: CloseCode::Policy,
                        reason: Utf8Bytes::from_static("slow consumer"),
                    })))
                    .await;
                return;
            }
        }
        let _ = sink.close().await;
    });

    let pong = Message::text(r#"{"action":"pong","payload":null}"#);
    while let Some(Ok(message)) = stream.next().await {
        match message {
            Message::Text(text) if text.starts_with(r#"{"action":"ping""#) => {
                let _ = queue.try_send(pong.clone());
            }
            Message::Text(text) => broadcast(&members, &Message::Text(text), None),
            Message::Close(_) => break,
            _ => {}
        }
        if slow.load(Ordering::Relaxed) {
            break;
        }
    }

    members
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|m| m.id != id);
    broadcast(&members, &notice(&room, "left", "👋"), Some(id));
    {
        let mut rooms = rooms.lock().unwrap_or_else(PoisonError::into_inner);
        let empty = members
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty();
        if empty {
            rooms.remove(&room);
        }
    }
    drop(queue);
    let _ = writer.await;
}
