"""Run a coroutine to completion from synchronous code, also inside Jupyter.

`asyncio.run` refuses to start when the calling thread already runs an event loop, which is
always the case in a notebook kernel; there the coroutine runs on a fresh loop in a worker thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[object, object, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
