from __future__ import annotations

import asyncio

import pytest

from agentstore.aio import settle


def test_settle_resolves_what_is_pending_and_leaves_what_is_done():
    async def scenario():
        loop = asyncio.get_running_loop()
        done, ok, failed = loop.create_future(), loop.create_future(), loop.create_future()
        done.set_result("earlier")
        settle([done, ok], None)
        settle([failed], RuntimeError("boom"))
        return done.result(), ok.result(), failed

    earlier, result, failed = asyncio.run(scenario())

    assert (earlier, result) == ("earlier", None)
    with pytest.raises(RuntimeError, match="boom"):
        failed.result()
