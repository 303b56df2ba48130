"""The Python WebSocket client the AsyncAPI CLI generates from `/asyncapi.client.yaml`
(`asyncapi generate client python`), used as its README says, in a room of a live service: a
second generated client joins the room and chats, the first receives both notifications
through its `receive_room_notification` handler.

Usage: python asyncapi_cli_live.py ROOM_URL   (the generated `client.py` on PYTHONPATH)
Exits non-zero, with the reason, when a notification does not arrive as the contract says.
"""

import json
import queue
import sys
import time

from client import RoomChatClient

TIMEOUT = 5.0


def open_client(url: str) -> tuple[RoomChatClient, "queue.Queue[dict]"]:
    notices: "queue.Queue[dict]" = queue.Queue()
    client = RoomChatClient(url)
    client.register_receive_room_notification_handler(lambda raw: notices.put(json.loads(raw)))
    client.connect()
    return client, notices


def wait_connected(client: RoomChatClient) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        sock = client.ws_app.sock if client.ws_app else None
        if sock is not None and sock.connected:
            return
        time.sleep(0.02)
    raise AssertionError(f"no connection to {client.url} within {TIMEOUT} s")


def main(url: str) -> None:
    room = url.rstrip("/").rsplit("/", 1)[-1]
    ada, ada_notices = open_client(url)
    wait_connected(ada)
    # A ping answered proves ada is in the room before bob joins.
    pongs: "queue.Queue[str]" = queue.Queue()
    ada.register_message_handler(pongs.put)
    ada.send_ping({"action": "ping"})
    assert json.loads(pongs.get(timeout=TIMEOUT))["action"] == "pong"

    bob, _ = open_client(url)
    wait_connected(bob)
    joined = ada_notices.get(timeout=TIMEOUT)
    # The tutorial's notice; `sender` is null for an anonymous member, and join notices have no
    # place in the history.
    assert joined == {
        "action": "room_notification",
        "payload": {
            "message": f"🚪 Someone joined room '{room}'",
            "room_name": room,
            "sender": None,
            "offset": None,
            "epoch": None,
        },
    }, joined

    bob.send_room_chat({"action": "room_chat", "payload": {"message": "hello from python"}})
    chat = ada_notices.get(timeout=TIMEOUT)
    place = {key: chat["payload"].pop(key, None) for key in ("offset", "epoch")}
    assert chat["payload"] == {"message": "💬 hello from python", "room_name": room, "sender": None}, chat
    assert isinstance(place["offset"], int) and isinstance(place["epoch"], str), place

    bob.close()
    ada.close()
    print("AsyncAPI CLI client: join notice and chat received through receive_room_notification: ok")


if __name__ == "__main__":
    main(sys.argv[1])
