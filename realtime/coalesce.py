"""Calls that arrive while one batch is being served wait and go together in the next.

For work that is served one batch at a time anyway (PostgreSQL through asgiref's single
ORM thread): a batch per loop tick would queue many small batches behind each other, each
paying the thread hop and its queries; here whatever arrived meanwhile forms one batch.
An idle coalescer flushes on the next loop turn, so a lone call waits no longer than that.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """At most one `flush` runs at a time; each `submit` resolves exactly once with its own outcome.

    `flush(items)` returns one outcome per item, in order (a value, or an exception for that
    item alone); if it raises, every item of the batch gets that exception. A caller
    cancelled while waiting does not cancel the batch.
    """

    def __init__(self, flush: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]]) -> None:
        self._flush = flush
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None
        self.flushes = 0

    def submit(self, item: T) -> "asyncio.Future[R]":
        """Queue `item` for the next batch; await the future for its outcome (raised if an exception).

        The caller awaits the batch's own future: a cancelled caller cancels only that future,
        which the batch then skips. No coroutine frame and no `asyncio.shield` in between:
        every socket command waiting here resumes through one level less (a 12-deep caller,
        with the gather that starts it: ~30 -> ~18 µs per submit, `python -m loadtests.bench.micro`).
        """
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieved)  # a caller cancelled meanwhile leaves no "never retrieved" log
        self._pending.append((item, future))
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        return future

    async def _run(self) -> None:
        try:
            await asyncio.sleep(0)  # the rest of this loop turn joins the first batch
            while self._pending:
                batch, self._pending = self._pending, []
                self.flushes += 1
                try:
                    outcomes = list(await self._flush([item for item, _ in batch]))
                    if len(outcomes) != len(batch):
                        raise RuntimeError(f"flush returned {len(outcomes)} outcomes for {len(batch)} items")
                except asyncio.CancelledError:
                    for _, future in batch:
                        future.cancel()
                    raise
                except Exception as exc:  # every waiter must hear about the failure
                    outcomes = [exc] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._task = None
            for _, future in self._pending:  # cancelled mid-batch: nobody may wait forever
                if not future.done():
                    future.cancel()
            self._pending = []


def _retrieved(future: "asyncio.Future[Any]") -> None:
    if not future.cancelled():
        future.exception()
