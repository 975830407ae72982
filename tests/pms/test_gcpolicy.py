"""The garbage collector's serving policy: tuned at lifespan startup, put back at shutdown."""

import gc
from collections.abc import MutableMapping
from typing import Any

from asgiref.testing import ApplicationCommunicator

from pms.gcpolicy import GEN0_THRESHOLD, OLDER_THRESHOLDS, ServingGC, restore, tune


class Trash:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_tune_freezes_what_is_left_and_raises_the_thresholds_restore_undoes_it() -> None:
    before = gc.get_threshold()
    Trash()  # garbage before the freeze: collected, not frozen
    saved = tune()
    try:
        assert saved == before
        assert gc.get_threshold() == (GEN0_THRESHOLD, *OLDER_THRESHOLDS)
        assert gc.get_freeze_count() > 0
        assert not [o for o in gc.get_objects() if isinstance(o, Trash)]
    finally:
        restore(saved)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


async def test_the_lifespan_tunes_at_startup_and_restores_at_shutdown() -> None:
    seen: list[tuple[int, int, int]] = []

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                seen.append(gc.get_threshold())
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        seen.append(gc.get_threshold())

    before = gc.get_threshold()
    lifespan = ApplicationCommunicator(ServingGC(app), {"type": "lifespan", "asgi": {"version": "3.0"}})
    await lifespan.send_input({"type": "lifespan.startup"})
    assert await lifespan.receive_output(timeout=5) == {"type": "lifespan.startup.complete"}
    assert seen == [(GEN0_THRESHOLD, *OLDER_THRESHOLDS)]
    await lifespan.send_input({"type": "lifespan.shutdown"})
    assert await lifespan.receive_output(timeout=5) == {"type": "lifespan.shutdown.complete"}
    await lifespan.wait(timeout=5)
    assert seen[-1] == before == gc.get_threshold() and gc.get_freeze_count() == 0

    http = ApplicationCommunicator(ServingGC(app), {"type": "http"})  # other scopes pass through untouched
    await http.wait(timeout=5)
    assert seen[-1] == before
