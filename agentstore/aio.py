"""Small asyncio helpers shared across apps."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


def settle(futures: Iterable[asyncio.Future], error: BaseException | None) -> None:
    """Resolve every future not done yet: with ``None``, or with ``error`` when given (the
    waiters of one shared operation — a pipelined publish, a shared INSERT)."""
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
