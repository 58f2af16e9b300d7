from __future__ import annotations

import gc

import pytest

from agentstore import heap


@pytest.fixture
def restored_gc():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_settle_freezes_what_is_alive_and_collects_what_comes_later(settings, restored_gc):
    settings.GC_FREEZE = True
    settings.GC_THRESHOLDS = [5000, 20, 30]
    survivor = Node()
    garbage = Node()
    del garbage  # a cycle: settle's own full collection frees it before freezing

    report = heap.settle("test")

    assert report["frozen"] > 0
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (5000, 20, 30)
    # What was alive is in the permanent generation: full collections no longer walk it.
    assert not any(obj is survivor for obj in gc.get_objects())
    later = Node()
    assert any(obj is later for obj in gc.get_objects())
    del later
    assert gc.collect() > 0  # garbage made after the freeze is still collected


def test_settle_can_be_turned_off(settings, restored_gc):
    settings.GC_FREEZE = False
    settings.GC_THRESHOLDS = []
    before = gc.get_threshold()

    assert heap.settle("test") == {}
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


def test_a_worker_settles_its_heap_when_it_is_ready(settings, restored_gc):
    from chats.tasks import _settle_heap

    settings.GC_FREEZE = True
    settings.GC_THRESHOLDS = []
    _settle_heap(sender=None)

    assert gc.get_freeze_count() > 0
