"""``RunFailure``: why a run could not finish, with a stable code and a safe message.

The message is shown to the user (RUN_ERROR event, failed assistant message) and logged,
so it is always written by us and never contains a key or a provider's raw response.
"""

from __future__ import annotations


class RunFailure(Exception):
    """A run ends failed with ``code`` and ``message`` (``transient``: worth a retry)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        transient: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.transient = transient
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"RunFailure({self.code!r}, {self.message!r}, transient={self.transient})"


class RetryRun(Exception):
    """Raised by ``run_execute`` after putting the run back to pending: the task should
    run it again in ``countdown`` seconds (a transient provider error before any token)."""

    def __init__(self, run_id: str, *, countdown: float, code: str) -> None:
        super().__init__(f"retry run {run_id} in {countdown:.1f}s ({code})")
        self.run_id = run_id
        self.countdown = countdown
        self.code = code
