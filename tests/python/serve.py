"""Runs the tutorial app (`room_chat_tutorial`) with uvicorn on a free loopback port.

usage: REDIS_URL=redis://127.0.0.1:PORT python serve.py

Binds 127.0.0.1:0 itself and hands the socket to uvicorn, so there is no race for a port;
prints `LISTENING <port>` once uvicorn has started serving, then runs until it is terminated.
"""

import asyncio
import socket
import sys
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))


class Server(uvicorn.Server):
    """Says on stdout when it is ready, for the test that started it."""

    def __init__(self, config: uvicorn.Config, port: int):
        super().__init__(config)
        self.port = port

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        print(f"LISTENING {self.port}", flush=True)


def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config("room_chat_tutorial.main:app", log_level="warning", ws="websockets-sansio")
    asyncio.run(Server(config, port).serve(sockets=[sock]))


if __name__ == "__main__":
    main()
