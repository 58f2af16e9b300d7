from __future__ import annotations

import pytest
from django.utils import translation

from agents.rendering import highlight_css, render_markdown
from agents.review_diff import config_diff, diff_summary, render_diff_html


@pytest.fixture(autouse=True)
def _english():
    # Messages are asserted in English, whatever an earlier test left active.
    with translation.override("en"):
        yield


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Hi <script>alert(1)</script> there", "<p>Hi  there</p>"),
        ('<iframe src="https://evil.example"></iframe>ok', "<p>ok</p>"),
        ("[click](javascript:alert(1))", '<p><a rel="noopener noreferrer nofollow">click</a></p>'),
        ('<img src="x" onerror="alert(1)">', '<p><img src="x"></p>'),
        ("![x](data:image/png;base64,AAAA)", '<p><img alt="x"></p>'),
        ('<p style="color:red" onclick="x()">hi</p>', "<p>hi</p>"),
        ("<style>body{display:none}</style>text", "<p>text</p>"),
        ('<span class="btn btn-primary k">x</span>', '<p><span class="k">x</span></p>'),
    ],
)
def test_markdown_is_sanitised(source, expected):
    assert render_markdown(source) == expected


def test_links_get_safe_rel_and_keep_http_urls():
    assert render_markdown("[docs](https://example.com/a)") == (
        '<p><a href="https://example.com/a" rel="noopener noreferrer nofollow">docs</a></p>'
    )


def test_fenced_code_is_highlighted_with_pygments_classes():
    html = render_markdown("```python\nimport os\n```")

    assert html.startswith('<div class="highlight"><pre>')
    assert '<span class="kn">import</span>' in html
    assert ".highlight .kn" in highlight_css()


def test_tables_render():
    html = render_markdown("| a | b |\n|---|---|\n| 1 | 2 |")

    assert "<table>" in html
    assert "<td>1</td>" in html


def test_empty_markdown_is_empty():
    assert render_markdown("") == ""


def test_config_diff_shows_changed_lines():
    lines = config_diff({"agent_type": "react", "a": 1}, {"agent_type": "dialog", "a": 1})

    assert '-  "agent_type": "react"' in lines
    assert '+  "agent_type": "dialog"' in lines


def test_diff_summary_counts_lines_and_keys():
    assert diff_summary({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == {
        "is_first_version": False,
        "added_lines": 2,
        "removed_lines": 1,
        "changed_keys": ["b", "c"],
    }


def test_rendered_diff_escapes_and_colours():
    html = render_diff_html({"p": "<b>"}, {"p": "<script>"})

    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert 'class="diff-add"' in html
    assert 'class="diff-del"' in html


def test_rendered_diff_of_equal_configs_says_no_changes():
    assert render_diff_html({"a": 1}, {"a": 1}) == '<p class="config-diff-empty">No changes.</p>'
