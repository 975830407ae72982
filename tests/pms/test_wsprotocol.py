"""The lean uvicorn protocol's queue and event behave as the asyncio ones uvicorn expects."""

import asyncio

import pytest

from pms.wsprotocol import LeanEvent, LeanReceiveQueue


async def test_queue_is_fifo_and_wakes_a_waiting_getter() -> None:
    queue = LeanReceiveQueue()
    assert queue.empty() and queue.qsize() == 0
    waiting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("connect")
    assert await asyncio.wait_for(waiting, 1) == "connect"
    for item in ("a", "b", "c"):
        queue.put_nowait(item)
    assert queue.qsize() == 3 and not queue.empty()
    assert [await queue.get() for _ in range(3)] == ["a", "b", "c"]
    assert queue.empty() and queue._getters is None  # no waiter kept while idle


async def test_queue_serves_several_getters_and_a_cancelled_one_passes_its_turn_on() -> None:
    queue = LeanReceiveQueue()
    first, second = asyncio.ensure_future(queue.get()), asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait(1)
    first.cancel()  # woken for the item, cancelled before it ran
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, 1) == 1
    both = [asyncio.ensure_future(queue.get()) for _ in range(2)]
    await asyncio.sleep(0)
    queue.put_nowait(2)
    queue.put_nowait(3)
    assert sorted(await asyncio.wait_for(asyncio.gather(*both), 1)) == [2, 3]


async def test_event_waits_until_set_and_keeps_no_waiters() -> None:
    event = LeanEvent(True)
    assert event.is_set() and await event.wait() is True
    event.clear()
    waiters = [asyncio.ensure_future(event.wait()) for _ in range(2)]
    await asyncio.sleep(0.01)
    assert not any(w.done() for w in waiters)
    event.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters), 1) == [True, True]
    event.clear()
    cancelled = asyncio.ensure_future(event.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert event._waiters == []
    event.set()
    assert event._waiters is None
