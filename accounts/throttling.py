"""API login throttling (SPEC §3): failed logins per client IP + login name, and per IP
across all names.

Fixed windows counted with atomic cache increments, so the limit holds across processes
when the cache is Redis. The rate comes from ``settings.LOGIN_THROTTLE_RATE`` ("10/min");
the per-IP ceiling is five times that, to slow password spraying over many accounts.
Failures are counted, not attempts: a client that logs in correctly is never slowed down,
while a guessing run is stopped for the rest of the window.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils.translation import gettext as _

from accounts.audit import client_ip
from agentstore.errors import RateLimited

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
IP_MULTIPLIER = 5


def parse_rate(rate: str) -> tuple[int, int]:
    """ "10/min" → (10, 60)."""
    count, _sep, period = rate.partition("/")
    return int(count), _PERIODS[period.strip()[:1].lower()]


class LoginThrottle:
    def __init__(self, request: Any, login: str) -> None:
        limit, self.period = parse_rate(settings.LOGIN_THROTTLE_RATE)
        self.now = time.time()
        window = int(self.now // self.period)
        self.window_end = (window + 1) * self.period
        ip = client_ip(request) or "unknown"
        name = hashlib.sha256((login or "").strip().lower().encode("utf-8")).hexdigest()[:32]
        self.limits = {
            f"accounts:login-fail:{ip}:{name}:{window}": limit,
            f"accounts:login-fail:{ip}:{window}": limit * IP_MULTIPLIER,
        }

    def check(self) -> None:
        """Raise RateLimited (42901 with retry_after) while over the limit."""
        counts = cache.get_many(list(self.limits))
        if any(counts.get(key, 0) >= limit for key, limit in self.limits.items()):
            wait = max(1, int(self.window_end - self.now + 0.999))
            raise RateLimited(
                _("Too many failed login attempts; try again in %(n)d s.") % {"n": wait},
                retry_after=wait,
            )

    def failed(self) -> None:
        for key in self.limits:
            # add() starts the window; incr() is atomic on Redis and keeps the expiry.
            if not cache.add(key, 1, timeout=self.period + 1):
                try:
                    cache.incr(key)
                except ValueError:  # expired between add() and incr()
                    cache.add(key, 1, timeout=self.period + 1)
