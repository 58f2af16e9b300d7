"""Markdown to safe HTML for agent descriptions (and later chat messages).

Markdown is rendered with ``markdown`` (fenced code highlighted by Pygments into CSS
classes), then everything passes through ``nh3`` with an allow-list: no script, iframe,
style or event-handler attributes, only http(s)/mailto URLs, and every link gets
``rel="noopener noreferrer nofollow"``. Raw HTML inside the Markdown is sanitised the same
way.
"""

from __future__ import annotations

from functools import cache

import markdown
import nh3
from django.utils.safestring import SafeString, mark_safe
from pygments.formatters import HtmlFormatter
from pygments.token import STANDARD_TYPES

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt",
    "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre",
    "s", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "th", "thead",
    "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "img": {"src", "alt", "title", "width", "height"},
    "th": {"align"},
    "td": {"align"},
    "ol": {"start"},
    "code": {"class"},
    "div": {"class"},
    "pre": {"class"},
    "span": {"class"},
}
# Tags removed together with their content (the rest are unwrapped, keeping the text).
CONTENT_STRIPPED = {"script", "style", "iframe", "object", "embed", "template", "noscript"}
URL_SCHEMES = {"http", "https", "mailto"}
LINK_REL = "noopener noreferrer nofollow"
HIGHLIGHT_CLASS = "highlight"

# Only Pygments token classes and the highlight wrapper may appear in class attributes, so
# a description cannot borrow the site's own CSS classes to imitate its interface.
_PYGMENTS_CLASSES = frozenset(cls for cls in STANDARD_TYPES.values() if cls) | {HIGHLIGHT_CLASS}


def _attribute_filter(element: str, attribute: str, value: str) -> str | None:
    if attribute != "class":
        return value
    kept = [
        cls
        for cls in value.split()
        if cls in _PYGMENTS_CLASSES or (element == "code" and cls.startswith("language-"))
    ]
    return " ".join(kept) or None


def render_markdown(text: str | None) -> SafeString:
    """Markdown source → sanitised HTML that is safe to put in a page."""
    if not text:
        return mark_safe("")  # noqa: S308 - empty string
    html = markdown.markdown(
        text,
        extensions=["fenced_code", "codehilite", "tables", "sane_lists"],
        extension_configs={
            "codehilite": {"css_class": HIGHLIGHT_CLASS, "guess_lang": False, "use_pygments": True}
        },
        output_format="html",
    )
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        clean_content_tags=CONTENT_STRIPPED,
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=_attribute_filter,
        url_schemes=URL_SCHEMES,
        link_rel=LINK_REL,
        strip_comments=True,
    )
    return mark_safe(clean.strip())  # noqa: S308 - sanitised by nh3 with an allow-list above


@cache
def highlight_css(style: str = "default") -> str:
    """The Pygments CSS for highlighted code blocks (serve it or inline it once)."""
    return HtmlFormatter(style=style).get_style_defs(f".{HIGHLIGHT_CLASS}")
