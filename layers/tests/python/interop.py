"""Python side of the mixed-fleet test: a fast-channels 1.1.0 process on the test's Redis.

usage: interop.py (queue|pubsub) REDIS_URLS PREFIX group_send GROUP JSON
       interop.py (queue|pubsub) REDIS_URL PREFIX send CHANNEL JSON
       interop.py (queue|pubsub) REDIS_URL PREFIX receive GROUP COUNT
The receive mode joins GROUP with a new channel, prints "READY <channel>", then prints
"GOT <json>" for each of COUNT messages. REDIS_URLS is a comma-separated ring of hosts, as REDIS_URL takes it (redis+sentinel://
entries become fast-channels Sentinel host dicts).
"""

import asyncio
import json
import sys

from fast_channels.layers.redis import RedisChannelLayer, RedisPubSubChannelLayer


def host_entry(url: str):
    """A REDIS_URL ring member as a fast-channels host: a URL, or for
    redis+sentinel://h1:p1?sentinel_master_name=NAME&addr=h2:p2 the Sentinel dict."""
    if not url.startswith("redis+sentinel://"):
        return url
    first, _, query = url[len("redis+sentinel://"):].partition("?")
    sentinels = [first.split("/")[0]]
    master_name = None
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if key == "addr":
            sentinels.append(value)
        elif key == "sentinel_master_name":
            master_name = value
    pairs = [(h, int(p)) for h, p in (s.rsplit(":", 1) for s in sentinels)]
    return {"sentinels": pairs, "master_name": master_name}


async def main() -> None:
    kind, urls, prefix, mode, target, arg = sys.argv[1:7]
    hosts = [host_entry(url) for url in urls.split(",")]
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
