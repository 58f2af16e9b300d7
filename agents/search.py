"""Store search: ``store_search(queryset, q)`` filters and ranks a queryset of agents.

On PostgreSQL (migration ``0002_store_search``):

1. Candidates come from two indexes: full-text matches on the trigger-maintained
   ``search_vector`` column (``websearch_to_tsquery('simple', …)``; name weight A,
   short description and tags B, description C), taken in popularity order and capped,
   plus trigram word-similarity matches on the name, which tolerate typos. Capping
   keeps a common term ("assistant") from ranking tens of thousands of rows.
2. The candidates are ranked by one score blending text relevance, name similarity,
   an exact-name bonus, installs (log) and the average rating.

Chinese and Japanese have no spaces between words: CJK characters are indexed one by
one, and a run of them in the query becomes a phrase, so "客服" matches "智能客服助手".

On other databases a simpler ``icontains`` search with a crude rank is used.
"""

from __future__ import annotations

import re

from django.contrib.postgres.search import (
    SearchQueryField,
    SearchVectorField,
    TrigramSimilarity,
    TrigramWordSimilarity,
)
from django.db import connections
from django.db.models import (
    BooleanField,
    Case,
    Exists,
    F,
    FloatField,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.expressions import Col, Expression
from django.db.models.functions import Cast, Greatest, Least, Ln, Lower

# Full-text candidates taken per query (in popularity order) and name candidates.
FULLTEXT_CANDIDATES = 300
NAME_CANDIDATES = 100
MAX_QUERY_LENGTH = 200

# Score weights. Text relevance and the name dominate; popularity and rating break ties
# between similarly relevant agents.
W_TEXT = 1.0
W_NAME = 1.0
W_EXACT = 3.0
W_INSTALLS = 0.05
W_RATING = 0.04

_CJK = (
    "\u3040-\u30ff"  # kana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # CJK ideographs
    "\uac00-\ud7af"  # hangul
)
_CJK_RUN = re.compile(f"[{_CJK}]+")


def normalize_query(q: str | None) -> str:
    return " ".join((q or "").split())[:MAX_QUERY_LENGTH]


def fulltext_query_text(q: str) -> str:
    """Prepare ``q`` for ``websearch_to_tsquery``: each CJK run becomes a phrase.

    Inside quotes the characters are only spaced out (the quotes already make a phrase).
    """
    out: list[str] = []
    in_quotes = False
    pos = 0
    for match in _CJK_RUN.finditer(q):
        before = q[pos : match.start()]
        in_quotes ^= before.count('"') % 2 == 1
        out.append(before)
        spaced = " ".join(match.group())
        out.append(f" {spaced} " if in_quotes else f' "{spaced}" ')
        pos = match.end()
    out.append(q[pos:])
    return " ".join("".join(out).split())


class _SearchVectorColumn(SearchVectorField):
    """Stands for ``agents_agent.search_vector``, a column the ORM does not map.

    Used as the target of a :class:`Col` so the table alias is relabelled correctly
    when the queryset becomes a subquery.
    """

    def __init__(self) -> None:
        super().__init__()
        self.column = "search_vector"
        self.name = "search_vector"


_SEARCH_VECTOR = _SearchVectorColumn()


class SearchVectorRef(Expression):
    """Resolves to the hidden ``search_vector`` column of the query's base table."""

    output_field = SearchVectorField()

    def resolve_expression(
        self, query=None, allow_joins=True, reuse=None, summarize=False, for_save=False
    ):
        return Col(query.get_initial_alias(), _SEARCH_VECTOR, output_field=SearchVectorField())


class WebSearchQuery(Func):
    """``websearch_to_tsquery('simple', text)``: quotes, ``or`` and ``-word`` work."""

    template = "websearch_to_tsquery('simple'::regconfig, %(expressions)s)"
    output_field = SearchQueryField()

    def __init__(self, text: str) -> None:
        super().__init__(Value(text))


class Matches(Func):
    """``search_vector @@ websearch_to_tsquery('simple', text)``."""

    template = "%(expressions)s"
    arg_joiner = " @@ "
    output_field = BooleanField()

    def __init__(self, text: str) -> None:
        super().__init__(SearchVectorRef(), WebSearchQuery(text))


class TextRank(Func):
    """``ts_rank(search_vector, query, 32)``: relevance scaled into 0..1."""

    function = "ts_rank"
    output_field = FloatField()

    def __init__(self, text: str) -> None:
        super().__init__(SearchVectorRef(), WebSearchQuery(text), Value(32))


def _is_postgresql(queryset: QuerySet) -> bool:
    return connections[queryset.db].vendor == "postgresql"


def store_search(queryset: QuerySet, q: str | None) -> QuerySet:
    """Filter ``queryset`` (agents) to matches of ``q`` and order them by relevance.

    The result is annotated with ``search_score``; an empty query returns the queryset
    unchanged. Callers that sort explicitly afterwards simply override the order.
    """
    q = normalize_query(q)
    if not q:
        return queryset
    if _is_postgresql(queryset):
        return _search_postgresql(queryset, q)
    return _search_fallback(queryset, q)


def _popularity() -> Expression:
    return Ln(F("install_count") + 1) * W_INSTALLS + Cast("rating_avg", FloatField()) * W_RATING


def split_terms(q: str) -> tuple[str, list[str]]:
    """The plain words of ``q`` (for trigram matching) and its ``-excluded`` words."""
    positive: list[str] = []
    negated: list[str] = []
    for word in q.replace('"', " ").split():
        if word.startswith("-") and len(word) > 1:
            negated.append(word[1:])
        elif word.lower() != "or" and word != "-":
            positive.append(word)
    return " ".join(positive), negated


def _search_postgresql(queryset: QuerySet, q: str) -> QuerySet:
    text = fulltext_query_text(q)
    plain, negated = split_terms(q)
    base = queryset.order_by()
    fulltext = base.filter(Matches(text)).order_by("-install_count", "pk").values("pk")
    by_name = base.filter(
        Q(name__trigram_similar=plain) | Q(name__trigram_word_similar=plain)
    ).values("pk")
    if negated:
        by_name = by_name.exclude(Matches(fulltext_query_text(" or ".join(negated))))
    candidates = fulltext[:FULLTEXT_CANDIDATES].union(by_name[:NAME_CANDIDATES])
    return (
        queryset.filter(pk__in=candidates)
        .annotate(
            search_score=(
                TextRank(text) * W_TEXT
                + Greatest(TrigramSimilarity("name", plain), TrigramWordSimilarity(plain, "name"))
                * W_NAME
                + Case(
                    When(name__iexact=q, then=Value(W_EXACT)),
                    default=Value(0.0),
                    output_field=FloatField(),
                )
                + _popularity()
            )
        )
        .order_by("-search_score", "-install_count", "pk")
    )


def _search_fallback(queryset: QuerySet, q: str) -> QuerySet:
    """icontains on name, descriptions and tag names; every word must match somewhere."""
    from agents.models import Agent

    condition = Q()
    for word in q.split()[:8]:
        tag_match = Agent.tags.through.objects.filter(
            agent_id=OuterRef("pk"), tag__name__icontains=word
        )
        condition &= (
            Q(name__icontains=word)
            | Q(short_description__icontains=word)
            | Q(description__icontains=word)
            | Q(Exists(tag_match))
        )
    lowered = q.lower()
    return (
        queryset.filter(condition)
        .annotate(
            search_score=Case(
                When(Q(name__iexact=q), then=Value(4.0)),
                When(Q(name__istartswith=q), then=Value(2.0)),
                When(Q(name__icontains=q), then=Value(1.5)),
                When(Q(short_description__icontains=q), then=Value(1.0)),
                default=Value(0.5),
                output_field=FloatField(),
            )
            + Least(Ln(F("install_count") + 1), Value(12.0)) * W_INSTALLS
            + Cast("rating_avg", FloatField()) * W_RATING
            + Case(
                When(Q(Exists(tag_match_exact(lowered))), then=Value(0.5)),
                default=Value(0.0),
                output_field=FloatField(),
            )
        )
        .order_by("-search_score", "-install_count", "pk")
    )


def tag_match_exact(lowered: str) -> QuerySet:
    from agents.models import Agent

    return (
        Agent.tags.through.objects.filter(agent_id=OuterRef("pk"))
        .annotate(tag_lower=Lower("tag__name"))
        .filter(tag_lower=lowered)
    )
