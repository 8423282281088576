"""Memory given back after a long call, so that a service idles at its baseline.

CPython frees a finished call's objects into glibc's heaps, which keep them mapped (a discovery of
2,000 tables leaves its agent about 13 MB above its start, validation 30 MB) while the next phase
runs in another service. After a call that ran for a while, a collection and malloc_trim return
those pages to the system; the stack's peak is then that of the busy service, not the sum of every
service's own peak.
"""
from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import time

log = logging.getLogger(__name__)

LONG_CALL = 0.2  # seconds: a shorter call leaves little behind and may come many times a second
RELEASE_DELAY = 0.05  # seconds after the call, so that its answer goes out first
MIN_INTERVAL = 5.0  # seconds between two releases: a collection of a large heap holds the event loop


def _trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): the collection alone
        return None


_MALLOC_TRIM = _trim()


_last = 0.0


def release() -> None:
    global _last
    _last = time.monotonic()
    gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def after_call(seconds: float) -> None:
    """From a call's handler as it ends: a long call's leftovers are released once its answer is out."""
    if seconds <= LONG_CALL or time.monotonic() - _last < MIN_INTERVAL:
        return  # short, or just released (a watcher asking for a large migration every second)
    try:
        asyncio.get_running_loop().call_later(RELEASE_DELAY, release)
    except RuntimeError:  # no event loop (a call run in a thread): now
        release()


def import_without(module: str, optional: tuple[str, ...]):
    """`module`, imported while the optional packages it would pick up are hidden from it.

    Some libraries import large extras whenever they are installed, only to offer features this
    project does not use: sqlite-utils takes pandas and numpy (h2ogpte brings them; 48 MB and 0.4 s
    at every start of the coordinator) to map their column types, nats-py takes aiohttp (10 MB) for
    its websocket transport. A None entry in sys.modules makes their `import` raise ImportError, so
    the library goes without; the entries are removed again, for anyone else who imports them.
    """
    import importlib
    import sys

    hidden = [name for name in optional if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None
    try:
        return importlib.import_module(module)
    finally:
        for name in hidden:
            sys.modules.pop(name, None)
