"""Hand an unloaded model version's memory back to the operating system, promptly.

A loaded SavedModel's Python objects (functions, variables, the resources they
own) form reference cycles, so unloading a version frees nothing until a full
garbage collection runs, which the interpreter does only after many more objects
were created (about every twenty version swaps of a small model); and glibc keeps
freed heap memory for reuse instead of returning it. Without help, the resident
size of a server that swaps versions grows with each swap (TensorFlow Serving users
know the complaint). So the server process (serving.server.main):

* freezes the objects that live as long as it does (TensorFlow, gRPC and the
  server's own modules, some 300,000) before loading any model, so that a full
  collection only walks what came after (milliseconds instead of most of a second
  that every request would wait for);
* after each unload, collects and asks glibc to trim its heaps (`malloc_trim`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable

from serving.manager import ModelManager, State, VersionStatus
from serving.servable import ServableId

log = logging.getLogger(__name__)


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def release_unused_memory() -> None:
    """Collect unreachable objects, then return free heap memory to the OS."""
    collected = gc.collect()
    if _TRIM is not None:
        _TRIM(0)
    log.debug("released memory: %d unreachable objects collected", collected)


def release_memory_of_unloaded_versions(manager: ModelManager) -> None:
    """Freeze what exists now (call before loading models), then release memory whenever
    `manager` has unloaded a version."""
    gc.collect()
    gc.freeze()

    def on_state_change(_: ServableId, status: VersionStatus) -> None:
        if status.state == State.END and status.error is None:  # unloaded, not failed
            release_unused_memory()

    manager.add_state_listener(on_state_change)
