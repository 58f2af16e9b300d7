"""Semantic version strings (semver.org 2.0.0): validation and precedence ordering.

PEP 440 (``packaging``) parses a different grammar (``1.0.0-beta.1`` becomes ``1.0.0b1``
and arbitrary pre-release identifiers are refused), so agent versions use the semver
grammar directly.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


def is_semver(value: str) -> bool:
    return bool(SEMVER_RE.match(value or ""))


def validate_semver(value: str) -> None:
    if not is_semver(value):
        raise ValidationError(
            _("'%(value)s' is not a semantic version such as 1.2.0."),
            code="semver",
            params={"value": value},
        )


def semver_key(value: str) -> tuple:
    """A sort key giving semver precedence (build metadata is ignored)."""
    match = SEMVER_RE.match(value)
    if match is None:
        raise ValueError(f"not a semantic version: {value!r}")
    major, minor, patch, pre, _build = match.groups()
    if pre is None:
        # A release sorts after every pre-release of the same version.
        pre_key: tuple = ((2,),)
    else:
        pre_key = tuple(
            (0, int(part), "") if part.isdigit() else (1, 0, part) for part in pre.split(".")
        )
    return (int(major), int(minor), int(patch), pre is None, pre_key)
