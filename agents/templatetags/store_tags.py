"""Template helpers for the store and portal pages."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import template
from django.utils.html import format_html
from django.utils.translation import gettext as _

register = template.Library()


@register.simple_tag(takes_context=True)
def query_with(context, **changes) -> str:
    """The current query string with ``changes`` applied (``None`` removes a key), for
    pagination and sort links that keep the active filters."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"


@register.simple_tag
def agent_icon(agent, size: str = "") -> str:
    """The agent's icon: an image when it is a URL, else its emoji, else its initial."""
    icon = (getattr(agent, "icon", "") or "").strip()
    css = f"agent-icon {size}".strip()
    if icon.startswith(("https://", "http://", "/")):
        return format_html(
            '<span class="{}" aria-hidden="true"><img src="{}" alt="" loading="lazy"></span>',
            css,
            icon,
        )
    return format_html(
        '<span class="{}" aria-hidden="true">{}</span>', css, icon or (agent.name[:1].upper())
    )


@register.simple_tag
def stars(value) -> str:
    """Five stars, the average rounded to the nearest half rendered as full stars."""
    try:
        rating = Decimal(str(value or 0))
    except InvalidOperation:
        rating = Decimal(0)
    full = int((rating + Decimal("0.5")).to_integral_value(rounding="ROUND_FLOOR"))
    full = max(0, min(5, full))
    label = _("%(rating)s out of 5 stars") % {"rating": f"{rating:.1f}"}
    return format_html(
        '<span class="stars" role="img" aria-label="{}">{}<span class="off">{}</span></span>',
        label,
        "★" * full,
        "★" * (5 - full),
    )


@register.filter
def percent_of(value, total) -> int:
    try:
        return round(100 * int(value) / int(total)) if int(total) else 0
    except (TypeError, ValueError):
        return 0


@register.simple_tag(takes_context=True)
def page_query(context, param: str, number) -> str:
    """The current query string with page parameter ``param`` set to ``number``."""
    return query_with(context, **{param or "page": number})
