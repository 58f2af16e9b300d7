"""JWT access/refresh tokens and personal API keys (implemented by the accounts work)."""

from __future__ import annotations


def user_for_token(token: str):
    return None
