"""Fixtures of the accounts tests."""

from __future__ import annotations

import types

import pytest


@pytest.fixture
def throttle_clock(monkeypatch):
    """Login throttling counts in fixed windows of wall-clock time: a test whose attempts
    straddle a window's end would see the count start again. Pin the throttle's clock to
    the middle of a window (only the throttling module's view of the time)."""
    from accounts import throttling

    now = (int(throttling.time.time() // 3600) + 0.5) * 3600
    monkeypatch.setattr(throttling, "time", types.SimpleNamespace(time=lambda: now))
    return now
