"""A readable diff of two configuration snapshots, for reviewers and developers.

Both sides are pretty-printed as JSON with sorted keys, so the diff shows what changed
rather than how the JSON happened to be ordered.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

_LINE_STYLES = {
    "add": "background:#e6ffec;color:#116329",
    "del": "background:#ffebe9;color:#82071e",
    "hunk": "color:#6e7781;background:#f6f8fa",
    "file": "color:#6e7781;font-weight:bold",
    "ctx": "",
}


def pretty_config(config: Any) -> str:
    return json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def config_diff(
    old: Any, new: Any, *, from_label: str = "current", to_label: str = "submitted"
) -> list[str]:
    """Unified-diff lines (no trailing newlines); empty when nothing changed."""
    old_lines = pretty_config(old).splitlines() if old is not None else []
    new_lines = pretty_config(new).splitlines()
    return list(
        difflib.unified_diff(
            old_lines, new_lines, fromfile=from_label, tofile=to_label, n=3, lineterm=""
        )
    )


def _kind(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("+"):
        return "add"
    if line.startswith("-"):
        return "del"
    return "ctx"


def diff_summary(old: Any, new: Any) -> dict[str, Any]:
    """Counts of added/removed lines and the top-level keys whose values differ."""
    lines = config_diff(old, new)
    old_dict = old if isinstance(old, dict) else {}
    new_dict = new if isinstance(new, dict) else {}
    changed = sorted(
        key for key in set(old_dict) | set(new_dict) if old_dict.get(key) != new_dict.get(key)
    )
    return {
        "is_first_version": old is None,
        "added_lines": sum(1 for line in lines if _kind(line) == "add"),
        "removed_lines": sum(1 for line in lines if _kind(line) == "del"),
        "changed_keys": changed,
    }


def render_diff_html(
    old: Any, new: Any, *, from_label: str = "current", to_label: str = "submitted"
) -> SafeString:
    """The diff as a ``<pre>`` block with added lines green and removed lines red."""
    lines = config_diff(old, new, from_label=from_label, to_label=to_label)
    if not lines:
        return format_html('<p class="config-diff-empty">{}</p>', _("No changes."))
    rendered = []
    for line in lines:
        kind = _kind(line)
        rendered.append(
            f'<span class="diff-{kind}" style="display:block;{_LINE_STYLES[kind]}">'
            f"{escape(line) or '&nbsp;'}</span>"
        )
    body = "".join(rendered)
    return mark_safe(  # noqa: S308 - every line is escaped above
        '<pre class="config-diff" style="font-size:12px;line-height:1.4;padding:8px;'
        f'border:1px solid #d0d7de;overflow:auto;max-height:600px">{body}</pre>'
    )
