"""One run per workflow at a time inside an agent.

When the coordinator dies or restarts mid-call, the agent's old run goes on in its thread while the
coordinator's retry arrives. Two runs of the same workflow must never overlap (one would drop the
scratch database or the tables the other is filling), so a call waits until the previous run of
its workflow has really stopped, and a run whose caller went away is asked to stop.
"""
from __future__ import annotations

import asyncio
import collections
import threading
from typing import Callable, TypeVar

T = TypeVar("T")


class PerWorkflow:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)

    def lock(self, workflow_id: str) -> asyncio.Lock:
        return self._locks[workflow_id or "-"]

    async def run(self, workflow_id: str, fn: Callable[[threading.Event], T]) -> T:
        """fn(cancel) in a worker thread, alone for its workflow; the lock is held until the thread
        has returned, even when this call is cancelled (cancel is then set so fn stops early)."""
        cancel = threading.Event()
        async with self.lock(workflow_id):
            future = asyncio.get_running_loop().run_in_executor(None, fn, cancel)
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                cancel.set()
                await wait_out(future)
                raise


async def wait_out(future: asyncio.Future) -> None:
    """Waits for a worker thread's future to finish, through any further cancellation."""
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            continue
        except BaseException:
            return
