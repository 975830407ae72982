"""The Python upper bound: a bare `websockets` room-broadcast server, no ASGI, no Django.

    python loadtests/peers/bare_websockets.py --port 8766

Same wire traffic as the tutorial chat: connect to `/ws/chat/<room>/`, send
`{"message": ...}`, and every socket of the room (the sender's included) gets
`{"message": ...}`. One process, one room registry in memory, `websockets.broadcast`
(one encoded frame written to every socket; slow sockets are skipped by the library's
write-buffer check rather than awaited).
"""

import argparse
import asyncio
import json
import re

from websockets.asyncio.server import ServerConnection, broadcast, serve

ROOM = re.compile(r"^/ws/chat/([\w-]+)/$")
rooms: dict[str, set[ServerConnection]] = {}


async def handler(ws: ServerConnection) -> None:
    match = ROOM.match(ws.request.path if ws.request else "")
    if match is None:
        await ws.close(1008, "unknown path")
        return
    members = rooms.setdefault(match.group(1), set())
    members.add(ws)
    try:
        async for text in ws:
            message = json.loads(text)["message"]
            broadcast(members, json.dumps({"message": message}))
    finally:
        members.discard(ws)
        if not members:
            rooms.pop(match.group(1), None)


async def main(host: str, port: int) -> None:
    async with serve(
        handler, host, port, compression=None, max_queue=64, backlog=4096, ping_interval=25, ping_timeout=60
    ):
        await asyncio.Future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(args.host, args.port))
    else:
        uvloop.run(main(args.host, args.port))
