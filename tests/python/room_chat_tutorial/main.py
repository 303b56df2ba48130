"""The FastAPI app: the room chat under `/ws/room/{room_name}`, mounted as the tutorial does.

(The tutorial registers the route with `add_websocket_route`, which Starlette 1.x no longer
has; a `WebSocketRoute` is the same route.)
"""

from fastapi import FastAPI
from starlette.routing import WebSocketRoute

from .consumer import RoomChatConsumer
from .layers import setup_layers

setup_layers()

app = FastAPI()

ws_router = FastAPI(routes=[WebSocketRoute("/room/{room_name}", RoomChatConsumer.as_asgi())])
app.mount("/ws", ws_router)
