"""The room chat consumer: one instance per connection to `/ws/room/{room_name}`.

Connecting joins the group `room_<name>` on the `chat` layer and tells the others; a chat
message goes to the whole room, the sender included; disconnecting tells the others and leaves.
"""

from typing import Any

from chanx.core.decorators import channel, ws_handler
from chanx.messages.incoming import PingMessage
from chanx.messages.outgoing import PongMessage
from fast_channels.type_defs import WebSocketDisconnectEvent

from .base_consumer import BaseConsumer
from .messages import RoomChatMessage, RoomMessagePayload, RoomNotificationMessage


@channel(
    name="room_chat",
    description="Room Chat Consumer - Dynamic room-based messaging",
    tags=["chat", "rooms"],
)
class RoomChatConsumer(BaseConsumer):
    """A member of one room."""

    channel_layer_alias = "chat"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.room_name: str | None = None
        self.room_group_name: str | None = None

    def notice(self, text: str) -> RoomNotificationMessage:
        return RoomNotificationMessage(
            payload=RoomMessagePayload(message=text, room_name=self.room_name)
        )

    @ws_handler(
        summary="Handle ping requests",
        description="Simple ping-pong for connectivity testing",
    )
    async def handle_ping(self, _message: PingMessage) -> PongMessage:
        return PongMessage()

    @ws_handler(
        summary="Handle room chat messages",
        description="Process room chat messages and broadcast to room members",
        output_type=RoomNotificationMessage,
    )
    async def handle_room_chat(self, message: RoomChatMessage) -> None:
        assert self.room_group_name
        await self.broadcast_message(
            self.notice(f"💬 {message.payload.message}"), groups=[self.room_group_name]
        )

    async def post_authentication(self) -> None:
        self.room_name = self.scope["path_params"]["room_name"]
        self.room_group_name = f"room_{self.room_name}"
        await self.channel_layer.group_add(self.room_group_name, self.channel_name)
        if self.room_group_name not in self.groups:
            self.groups.append(self.room_group_name)
        await self.broadcast_message(
            self.notice(f"🚪 Someone joined room '{self.room_name}'"),
            groups=[self.room_group_name],
            exclude_current=True,
        )

    async def websocket_disconnect(self, message: WebSocketDisconnectEvent) -> None:
        if self.room_group_name:
            await self.broadcast_message(
                self.notice(f"👋 Someone left room '{self.room_name}'"),
                groups=[self.room_group_name],
                exclude_current=True,
            )
            await self.channel_layer.group_discard(self.room_group_name, self.channel_name)
        await super().websocket_disconnect(message)
