"""`realtime.runtime`'s one core per event loop: `install` while a core runs does not orphan it."""

from collections.abc import Callable, Iterator
from typing import cast

import pytest

from pms import wiring
from realtime import connections, runtime


class _Core:
    """Stands in for `Realtime`: only started and stopped here."""

    def __init__(self) -> None:
        self.running = False

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False


@pytest.fixture
def fake_cores() -> Iterator[None]:
    yield
    wiring.configure(connections.current_settings())  # the real factory again


async def test_a_core_built_before_install_is_still_stopped_by_stop_realtime(fake_cores: None) -> None:
    """Reconfiguring while sockets are open (tests' `tune`) used to drop the running core from
    the registry, so `stop_realtime` never stopped it: its broker and clients stayed open."""
    factory = cast(Callable[[], runtime.Realtime], _Core)
    runtime.install(factory)
    first = cast(_Core, await runtime.get_realtime())
    runtime.install(factory)
    second = cast(_Core, await runtime.get_realtime())
    assert second is not first  # built from the new settings
    assert first.running and second.running
    await runtime.stop_realtime()
    assert not first.running and not second.running
    await runtime.stop_realtime()  # nothing left to stop
