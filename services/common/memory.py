"""Memory given back after a long call, so that a service idles at its baseline.

CPython frees a finished call's objects into glibc's heaps, which keep them mapped (a discovery of
2,000 tables leaves its agent about 13 MB above its start, validation 30 MB) while the next phase
runs in another service. After a call that ran for a while, a collection and malloc_trim return
those pages to the system; the stack's peak is then that of the busy service, not the sum of every
service's own peak.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging

log = logging.getLogger(__name__)

LONG_CALL = 0.5  # seconds: a shorter call leaves little behind and may come many times a second


def _trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): the collection alone
        return None


_MALLOC_TRIM = _trim()


def release() -> None:
    gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
