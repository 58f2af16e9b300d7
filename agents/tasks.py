"""Background work of the store. Tasks only call services (STYLE §2)."""

from __future__ import annotations

from celery import shared_task

from agents import services


@shared_task(name="agents.run_review_checks", acks_late=True, time_limit=300, soft_time_limit=240)
def run_review_checks(version_id: str) -> str | None:
    version = services.review_run_checks(version_id=version_id)
    return version.check_status if version is not None else None
