"""CopyPool: the data phase's workers (pgcopydb's --table-jobs and --index-jobs).

`jobs` copy workers take copy items; as many finishing workers take finishing items (index
builds, checks, keys, seals, ANALYZE), so the copies go on while a table that is in gets its
indexes. Once every copy is done the copy workers turn to finishing too: the last table's builds
and check then run side by side instead of one after another. The first error stops every worker
(the cancel event) and is kept for the caller.
"""
from __future__ import annotations

import itertools
import queue
import threading
import time
from typing import Any, Callable

Work = Callable[[Any], None]
_STOP = 9


class CopyPool:
    def __init__(self, jobs: int, cancel: threading.Event, on_error: Callable[[], None]):
        self.jobs = jobs
        self.cancel = cancel
        self.on_error = on_error  # after an error, before the others are stopped (reset connections)
        self.errors: list[BaseException] = []
        self.spent: dict[str, list] = {}  # work name -> [count, seconds]
        self._copying: queue.PriorityQueue = queue.PriorityQueue()
        self._finishing: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._worker, args=(self._copying, self._finishing),
                                          name=f"copy-{i}", daemon=True) for i in range(jobs)]
        self._threads += [threading.Thread(target=self._worker, args=(self._finishing,), name=f"finish-{i}",
                                           daemon=True) for i in range(jobs)]

    def copy(self, fn: Work, arg: Any) -> None:
        self._copying.put((1, next(self._order), fn, arg))

    def finish(self, fn: Work, arg: Any) -> None:
        self._finishing.put((0, next(self._order), fn, arg))

    def start(self) -> None:
        for th in self._threads:
            th.start()

    def wait_copies(self) -> None:
        """Until every copy item queued so far is done (more may be queued after)."""
        self._copying.join()

    def close(self) -> None:
        """Every copy done, so every finishing item is queued: waits for them, then stops the workers."""
        self._copying.join()
        for _ in range(self.jobs):
            self._copying.put((_STOP, next(self._order), None, None))
        self._finishing.join()
        for _ in self._threads:
            self._finishing.put((_STOP, next(self._order), None, None))
        for th in self._threads:
            th.join()

    def time_spent(self) -> str:
        return ", ".join(f"{n} {name} {secs:.1f} s"
                         for name, (n, secs) in sorted(self.spent.items(), key=lambda kv: -kv[1][1]))

    def _worker(self, *queues: queue.PriorityQueue) -> None:
        """Runs the items of each queue in turn, until that queue's stop item."""
        for work in queues:
            while True:
                _, _, fn, arg = work.get()
                try:
                    if fn is None:
                        break
                    if not self.cancel.is_set():
                        self._run(fn, arg)
                except BaseException as err:  # the first error stops the others; the caller raises it
                    self.on_error()
                    with self._lock:
                        self.errors.append(err)
                    self.cancel.set()
                finally:
                    work.task_done()

    def _run(self, fn: Work, arg: Any) -> None:
        t0 = time.monotonic()
        fn(arg)
        with self._lock:  # where the workers' time went, for the log
            spent = self.spent.setdefault(fn.__name__, [0, 0.0])
            spent[0] += 1
            spent[1] += time.monotonic() - t0
