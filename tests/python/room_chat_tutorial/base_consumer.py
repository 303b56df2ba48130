"""The tutorial's base consumer: chanx's JSON consumer for fast-channels."""

import os

from chanx.fast_channels.websocket import AsyncJsonWebsocketConsumer, ReceiveEvent


class BaseConsumer(AsyncJsonWebsocketConsumer[ReceiveEvent]):
    # Completion frames after each handled message, as chanx's own tests use them.
    send_completion = bool(os.environ.get("SEND_COMPLETION"))
