"""Store search: ``store_search(queryset, q)`` filters and ranks a queryset of agents.

On PostgreSQL (migration ``0002_store_search``) it works in two steps:

1. **Candidates** from the indexes, each source capped so a common word ("assistant")
   never means ranking tens of thousands of rows:
   full-text matches on the trigger-maintained ``search_vector`` (name weight A, short
   description and tags B, description C; ``websearch_to_tsquery('simple', …)`` so
   quotes, ``or`` and ``-word`` work) in popularity order; full-text matches on the name
   alone in popularity order (agents named after the query are always considered); exact
   name matches. Only when that finds almost nothing (typically a typo) are
   trigram-similar names added, in a second query.
2. **Ranking** of the candidates (in the same query), on the agents table alone, by one
   score blending text relevance, name similarity, an exact-name bonus, installs (log)
   and the average rating. The best ``MAX_RESULTS`` are kept, so the count and the page
   queries that follow read at most that many rows.

The filters of ``queryset`` (category, tag, type, rating…) apply to the candidates, so
filtered searches are complete within the caps.

Chinese, Japanese and Korean are written without spaces: their runs are indexed as
overlapping character bigrams and queries are split the same way, so "客服" finds
"智能客服助手".

On other databases (SQLite) a simpler ``icontains`` search with a crude rank is used.
"""

from __future__ import annotations

import re

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.search import (
    SearchQueryField,
    SearchVectorField,
    TrigramSimilarity,
    TrigramWordSimilarity,
)
from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import (
    BooleanField,
    Case,
    Exists,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    UUIDField,
    Value,
    When,
)
from django.db.models.expressions import Col, Expression, RawSQL
from django.db.models.functions import Cast, Greatest, Least, Ln

MAX_QUERY_LENGTH = 200
# A search returns at most this many agents (five pages of 20): beyond that, refine the
# words or the filters.
MAX_RESULTS = 100
# Candidate caps: full-text matches in popularity order, name matches in popularity
# order, exact names, and trigram (typo) matches.
FULLTEXT_CANDIDATES = 200
NAME_CANDIDATES = 50
EXACT_CANDIDATES = 10
TYPO_CANDIDATES = 50
# Fewer full-text candidates than this and trigram-similar names are added.
TYPO_THRESHOLD = 10

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


def cjk_terms(run: str, *, phrase: bool = False) -> str:
    """The index terms of a CJK run in a query.

    The index stores every overlapping bigram. A phrase needs them all, in order; a plain
    search only needs bigrams that cover the run ("智能助手" → "智能 助手"): the result
    is nearly the same, and the planner's estimate of how many agents match stays close
    to the truth, because overlapping bigrams are strongly correlated.
    """
    if len(run) <= 2:
        return run
    if phrase:
        return " ".join(run[i : i + 2] for i in range(len(run) - 1))
    terms = [run[i : i + 2] for i in range(0, len(run) - 1, 2)]
    if len(run) % 2:
        terms.append(run[-2:])
    return " ".join(terms)


def fulltext_query_text(q: str) -> str:
    """``q`` for ``websearch_to_tsquery`` with each CJK run turned into index terms:
    plain terms outside quotes, a phrase inside quotes, a negated phrase after ``-``."""
    out: list[str] = []
    in_quotes = False
    pos = 0
    for match in _CJK_RUN.finditer(q):
        before = q[pos : match.start()]
        in_quotes ^= before.count('"') % 2 == 1
        run = match.group()
        if in_quotes:
            out.append(f"{before} {cjk_terms(run, phrase=True)} ")
        elif before.endswith("-"):
            out.append(f'{before[:-1]} -"{cjk_terms(run, phrase=True)}" ')
        else:
            out.append(f"{before} {cjk_terms(run)} ")
        pos = match.end()
    out.append(q[pos:])
    return " ".join("".join(out).split())


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


class NameVector(Func):
    """The name's own tsvector, exactly the expression of the ``agent_name_tsv`` index."""

    template = "to_tsvector('simple'::regconfig, agentstore_search_text(%(expressions)s))"
    output_field = SearchVectorField()

    def __init__(self) -> None:
        super().__init__(F("name"))


class WebSearchQuery(Func):
    """``websearch_to_tsquery('simple', text)``: quotes, ``or`` and ``-word`` work."""

    template = "websearch_to_tsquery('simple'::regconfig, %(expressions)s)"
    output_field = SearchQueryField()

    def __init__(self, text: str) -> None:
        super().__init__(Value(text))


class Matches(Func):
    """``<vector> @@ websearch_to_tsquery('simple', text)``."""

    template = "%(expressions)s"
    arg_joiner = " @@ "
    output_field = BooleanField()

    def __init__(self, text: str, vector: Expression | None = None) -> None:
        super().__init__(vector or SearchVectorRef(), WebSearchQuery(text))


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

    An empty query returns the queryset unchanged; callers that sort explicitly
    afterwards simply override the order. On PostgreSQL the candidates are found and
    ranked here (two or three small queries) and the returned queryset holds the best
    ``MAX_RESULTS`` of them, annotated with ``search_rank`` (1 = best).
    """
    q = normalize_query(q)
    if not q:
        return queryset
    if _is_postgresql(queryset):
        return _search_postgresql(queryset, q)
    return _search_fallback(queryset, q)


def _candidate_sources(queryset: QuerySet, q: str) -> tuple[list[QuerySet], QuerySet | None]:
    """The capped candidate querysets for ``q`` and the trigram (typo) one, if any."""
    text = fulltext_query_text(q)
    plain, negated = split_terms(q)
    base = queryset.order_by().values_list("pk", flat=True)
    by_name = base.filter(Matches(text, NameVector()))
    exact = base.filter(name__iexact=plain) if plain else base.none()
    if negated:
        # "-word" excludes agents whose whole document has the word, not only the name.
        by_name, exact = by_name.filter(Matches(text)), exact.filter(Matches(text))
    sources = [
        exact[:EXACT_CANDIDATES],
        base.filter(Matches(text)).order_by("-install_count")[:FULLTEXT_CANDIDATES],
        by_name.order_by("-install_count")[:NAME_CANDIDATES],
    ]
    if not plain:
        return sources, None
    # Ordered by similarity, so the planner reads every trigram match through the index
    # (a few hundred rows) instead of scanning the table until enough rows match.
    similar = (
        base.filter(Q(name__trigram_similar=plain) | Q(name__trigram_word_similar=plain))
        .alias(similarity=_name_similarity(plain))
        .order_by("-similarity")
    )
    if negated:
        similar = similar.exclude(Matches(fulltext_query_text(" or ".join(negated))))
    return sources, similar[:TYPO_CANDIDATES]


def _name_similarity(plain: str) -> Expression:
    return Greatest(TrigramSimilarity("name", plain), TrigramWordSimilarity(plain, "name"))


def _union_sql(querysets: list[QuerySet], *, using: str) -> tuple[str, list] | None:
    """One ``SELECT id … UNION ALL …`` over ``querysets`` (``None`` if all are empty).

    Composed by hand: Django's ``union()`` refuses parts ordered by a column they do
    not select, and each part here is "the first N by popularity"."""
    statements, params = [], []
    for queryset in querysets:
        try:
            sql, part_params = queryset.query.get_compiler(using=using).as_sql()
        except EmptyResultSet:
            continue
        statements.append(f"({sql})")
        params.extend(part_params)
    if not statements:
        return None
    return " UNION ALL ".join(statements), params


def _rank(queryset: QuerySet, q: str, sources: list[QuerySet]) -> list[tuple]:
    """``(pk, name)`` of the best ``MAX_RESULTS`` agents among ``sources``, best first,
    in one query. Scored on the agents table alone: the candidates already passed the
    queryset's filters."""
    union = _union_sql(sources, using=queryset.db)
    if union is None:
        return []
    text = fulltext_query_text(q)
    plain, _negated = split_terms(q)
    name_score = _name_similarity(plain) if plain else Value(0.0)
    exact = (
        Case(When(name__iexact=plain, then=Value(W_EXACT)), default=Value(0.0))
        if plain
        else Value(0.0)
    )
    score = TextRank(text) * W_TEXT + name_score * W_NAME + exact + _popularity()
    return list(
        queryset.model.objects.using(queryset.db)
        # The SQL is Django-compiled from the querysets above; values stay parameters.
        .filter(pk__in=RawSQL(*union))  # noqa: S611
        .alias(score=ExpressionWrapper(score, output_field=FloatField()))
        .order_by("-score", "-install_count", "pk")
        .values_list("pk", "name")[:MAX_RESULTS]
    )


def ranked_ids(queryset: QuerySet, q: str) -> list:
    """Primary keys of the best ``MAX_RESULTS`` matches of ``q``, best first
    (PostgreSQL): one query, or two when the first finds almost nothing."""
    sources, similar = _candidate_sources(queryset, q)
    ranked = _rank(queryset, q, sources)
    plain = split_terms(q)[0].casefold()
    # Few matches and no agent of exactly that name: probably a typo.
    exact_found = any(name.casefold() == plain for _pk, name in ranked)
    if similar is not None and len(ranked) < TYPO_THRESHOLD and not exact_found:
        ranked = _rank(queryset, q, [*sources, similar])
    return [pk for pk, _name in ranked]


def _search_postgresql(queryset: QuerySet, q: str) -> QuerySet:
    ranked = ranked_ids(queryset, q)
    position = Func(
        Value(ranked, output_field=ArrayField(UUIDField())),
        F("pk"),
        function="array_position",
        output_field=IntegerField(),
    )
    return queryset.filter(pk__in=ranked).annotate(search_rank=position).order_by("search_rank")


def _popularity() -> Expression:
    return (
        Least(Ln(F("install_count") + 1), Value(12.0)) * W_INSTALLS
        + Cast("rating_avg", FloatField()) * W_RATING
    )


def _search_fallback(queryset: QuerySet, q: str) -> QuerySet:
    """icontains on name, descriptions and tag names; every word must match somewhere."""
    through = queryset.model.tags.through
    condition = Q()
    words = [word for word in q.replace('"', " ").split() if word.lower() != "or"]
    for word in words[:8]:
        tag_match = through.objects.filter(agent_id=OuterRef("pk"), tag__name__icontains=word)
        condition &= (
            Q(name__icontains=word)
            | Q(short_description__icontains=word)
            | Q(description__icontains=word)
            | Q(Exists(tag_match))
        )
    return (
        queryset.filter(condition)
        .annotate(
            search_score=Case(
                When(Q(name__iexact=q), then=Value(W_EXACT + 1.0)),
                When(Q(name__istartswith=q), then=Value(2.0)),
                When(Q(name__icontains=q), then=Value(1.5)),
                When(Q(short_description__icontains=q), then=Value(1.0)),
                default=Value(0.5),
                output_field=FloatField(),
            )
            + _popularity()
        )
        .order_by("-search_score", "-install_count", "pk")
    )
