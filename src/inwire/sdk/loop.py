"""An event loop in a background thread, so that blocking code can drive async code.

The blocking :class:`~inwire.sdk.Client` sends every call through the same async code as
:class:`~inwire.sdk.AsyncClient`, on a loop of its own in a daemon thread. The caller's
thread waits on the result, so the client works the same from a plain script, from a
thread, and from code that already runs inside an event loop (where ``asyncio.run`` would
refuse: a running loop cannot start another in its own thread).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """Runs coroutines on a private event loop in a daemon thread."""

    def __init__(self, name: str = "inwire-sdk") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._loop.is_closed()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result (its exception is re-raised)."""
        if self._loop.is_closed():
            coro.close()
            raise RuntimeError("the client is closed")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a blocking client call cannot run on the client's own loop")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:
            # Ctrl-C or a cancelled caller: do not leave the call running unseen.
            future.cancel()
            raise

    def close(self) -> None:
        """Stop the loop and its thread; idempotent."""
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()
