"""Coalescer: one batch at a time; what arrives meanwhile goes together in the next."""

import asyncio

import pytest

from realtime.coalesce import Coalescer


async def test_calls_arriving_while_a_batch_is_served_form_the_next_batch() -> None:
    batches: list[list[int]] = []
    gate = asyncio.Event()

    async def flush(items: list[int]) -> list[int]:
        batches.append(items)
        if len(batches) == 1:
            await gate.wait()
        return [item * 10 for item in items]

    coalescer: Coalescer[int, int] = Coalescer(flush)
    first = [asyncio.ensure_future(coalescer.submit(n)) for n in (1, 2)]
    while not batches:
        await asyncio.sleep(0)
    later = [asyncio.ensure_future(coalescer.submit(n)) for n in (3, 4, 5)]
    await asyncio.sleep(0.01)
    assert batches == [[1, 2]]  # nothing else starts while the first batch is out
    gate.set()
    assert await asyncio.gather(*first, *later) == [10, 20, 30, 40, 50]
    assert batches == [[1, 2], [3, 4, 5]] and coalescer.flushes == 2


async def test_a_failed_batch_fails_each_of_its_callers_and_the_next_batch_runs() -> None:
    calls = 0

    async def flush(items: list[str]) -> list[str | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("store down")
        return [ValueError(item) if item == "bad" else item.upper() for item in items]

    coalescer: Coalescer[str, str] = Coalescer(flush)
    failed = await asyncio.gather(coalescer.submit("a"), coalescer.submit("b"), return_exceptions=True)
    assert [type(outcome) for outcome in failed] == [RuntimeError, RuntimeError]
    good, bad = await asyncio.gather(coalescer.submit("ok"), coalescer.submit("bad"), return_exceptions=True)
    assert good == "OK" and isinstance(bad, ValueError)  # one item's error is its own


async def test_a_cancelled_caller_does_not_cancel_the_batch() -> None:
    served: list[list[str]] = []
    gate = asyncio.Event()

    async def flush(items: list[str]) -> list[str]:
        await gate.wait()
        served.append(items)
        return items

    coalescer: Coalescer[str, str] = Coalescer(flush)
    leaving = asyncio.ensure_future(coalescer.submit("leaving"))
    staying = asyncio.ensure_future(coalescer.submit("staying"))
    await asyncio.sleep(0.01)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    gate.set()
    assert await staying == "staying"
    assert served == [["leaving", "staying"]]
