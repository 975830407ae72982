"""The cyclic garbage collector while the process serves (ASGI lifespan, uvicorn).

CPython's defaults suit scripts: a young collection every 700 container allocations, and
every full collection scans every object the process holds. A server allocates and frees
a few hundred objects per chat message (dicts of frames, futures, coroutine frames), nearly
all freed by reference counting before any collection sees them, and holds ~200,000
objects it loaded at start-up (Django, the apps, the protocol tables) for its whole life.
While serving, `ServingGC`:

- collects once, then freezes what start-up left (`gc.freeze`): those objects are never
  scanned again (nor collected: they live as long as the process anyway);
- runs young collections every 50,000 allocations (`GEN0_THRESHOLD`) and the older
  generations 20 and 100 times less often (`OLDER_THRESHOLDS`): the young generation is
  then mostly objects still in use, so fewer collections do the same work.

Measured (docs/benchmarks.md, "Chat path, third pass"): the server's GC, timed by a
`gc.callbacks` probe during a 300/1,600/2,500 msg/s chat run, took at least 1.06 s of
thread CPU against 10.0 s of server CPU in the three steps with the defaults (a full
collection ~135 ms); with this policy the server's CPU per chat message fell 10-27 % at
1,600-2,500 msg/s, side by side on a busy machine.
Lifespan shutdown puts the defaults back (an in-process test of the lifespan leaves the
test process as it found it). daphne sends no lifespan: it keeps the defaults.
"""

import gc
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

GEN0_THRESHOLD = 50_000
OLDER_THRESHOLDS = (20, 100)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def tune() -> tuple[int, int, int]:
    """Collect, freeze what is left, raise the thresholds; returns the thresholds it replaced."""
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, *OLDER_THRESHOLDS)
    return previous


def restore(thresholds: tuple[int, int, int]) -> None:
    """Undo `tune`: the thresholds back, frozen objects scanned again."""
    gc.set_threshold(*thresholds)
    gc.unfreeze()


class ServingGC:
    """ASGI wrapper: `tune` at lifespan startup, `restore` at lifespan shutdown (or when the lifespan ends)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        saved: tuple[int, int, int] | None = None

        async def receive_tuned() -> MutableMapping[str, Any]:
            nonlocal saved
            message = await receive()
            if message["type"] == "lifespan.startup" and saved is None:
                saved = tune()
            elif message["type"] == "lifespan.shutdown" and saved is not None:
                restore(saved)
                saved = None
            return message

        try:
            await self.app(scope, receive_tuned, send)
        finally:
            if saved is not None:
                restore(saved)
