"""The garbage collector of the long-running processes (web server, Celery workers).

CPython's cyclic collector stops the whole process, GIL held, while it walks a generation.
The oldest generation holds everything imported at start: Django, DRF and, in a worker,
AgentScope with the model SDKs, several hundred thousand objects that never become garbage.
Measured under 200 streaming chats (docs/benchmarks.md), a full collection took 220–440 ms
in a worker and 50–260 ms in the web process, and happened every few seconds: each one a
stall of every stream and every first token in that process.

``settle()`` runs once, when a process has imported what it serves with: one last full
collection, then ``gc.freeze()`` moves every surviving object to the permanent generation,
which collections never walk. Objects created afterwards (requests, runs, their cycles) are
collected as before. The thresholds can be raised too (``GC_THRESHOLDS``) so young
collections run less often.
"""

from __future__ import annotations

import gc
import logging
import time

from django.conf import settings

logger = logging.getLogger(__name__)


def settle(process: str) -> dict[str, float]:
    """Freeze this process's start-up heap (``GC_FREEZE``) and apply ``GC_THRESHOLDS``.

    Safe to call again: a later call freezes what was imported in between. Returns what it
    did (for the log and the tests)."""
    report: dict[str, float] = {}
    thresholds = tuple(int(x) for x in getattr(settings, "GC_THRESHOLDS", ()) or ())
    if thresholds:
        gc.set_threshold(*thresholds[:3])
        report["threshold0"] = thresholds[0]
    if not getattr(settings, "GC_FREEZE", True):
        return report
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    report["frozen"] = gc.get_freeze_count()
    report["seconds"] = time.perf_counter() - started
    logger.info(
        "%s: %d start-up objects frozen out of garbage collection (%.0f ms)",
        process,
        report["frozen"],
        report["seconds"] * 1000,
    )
    return report
