"""Python side of the mixed-fleet test: a fast-channels 1.1.0 process on the test's Redis.

usage: interop.py (queue|pubsub) REDIS_URLS PREFIX group_send GROUP JSON
       interop.py (queue|pubsub) REDIS_URL PREFIX send CHANNEL JSON
       interop.py (queue|pubsub) REDIS_URL PREFIX receive GROUP COUNT
The receive mode joins GROUP with a new channel, prints "READY <channel>", then prints
"GOT <json>" for each of COUNT messages. REDIS_URLS is a comma-separated ring of hosts.
"""

import asyncio
import json
import sys

from fast_channels.layers.redis import RedisChannelLayer, RedisPubSubChannelLayer


async def main() -> None:
    kind, urls, prefix, mode, target, arg = sys.argv[1:7]
    hosts = urls.split(",")
    if kind == "queue":
        layer = RedisChannelLayer(hosts=hosts, prefix=prefix)
    else:
        layer = RedisPubSubChannelLayer(hosts=hosts, prefix=prefix)
    if mode == "group_send":
        await layer.group_send(target, json.loads(arg))
    elif mode == "send":
        await layer.send(target, json.loads(arg))
    elif mode == "receive":
        channel = await layer.new_channel()
        await layer.group_add(target, channel)
        print("READY " + channel, flush=True)
        for _ in range(int(arg)):
            message = await asyncio.wait_for(layer.receive(channel), 20)
            print("GOT " + json.dumps(message, ensure_ascii=False), flush=True)
        await layer.group_discard(target, channel)
    if kind == "queue":
        await layer.close_pools()
    else:
        await layer.flush()


asyncio.run(main())
