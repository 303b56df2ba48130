"""The tutorial's channel layers, each under the alias and prefix the tutorial gives it.

The room chat uses `chat`: Redis pub/sub with the prefix `chat`, which is what room-chat's `chat`
alias speaks, so both kinds of node meet in the same Redis channels (`chat__group__room_<name>`).
The other aliases are registered as the tutorial does, for completeness.
"""

import os

from fast_channels.layers import InMemoryChannelLayer, has_layers, register_channel_layer
from fast_channels.layers.redis import RedisChannelLayer, RedisPubSubChannelLayer


def setup_layers(force: bool = False) -> None:
    """Registers the layers once, on the Redis at `REDIS_URL`."""
    if has_layers() and not force:
        return
    # The tutorial falls back to localhost:6379; a test node must never touch a Redis it was
    # not given, so a missing REDIS_URL is an error here.
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        raise RuntimeError("REDIS_URL is not set: the tutorial node needs the test's own Redis")
    hosts = [redis_url]
    layers = {
        "memory": InMemoryChannelLayer(),
        "chat": RedisPubSubChannelLayer(hosts=hosts, prefix="chat"),
        "queue": RedisChannelLayer(hosts=hosts, prefix="queue", expiry=900, capacity=1000),
        "notifications": RedisPubSubChannelLayer(hosts=hosts, prefix="notify"),
        "analytics": RedisChannelLayer(hosts=hosts, prefix="analytics", expiry=3600, capacity=5000),
    }
    for alias, layer in layers.items():
        register_channel_layer(alias, layer)
