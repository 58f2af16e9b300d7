"""Store search: ``store_search(queryset, q)`` filters and ranks a queryset of agents.

On PostgreSQL (migrations ``0002_store_search`` and ``0004_store_search_popularity``)
the returned queryset is one statement, and nothing runs until it is evaluated:

1. **Candidates** from the indexes, each source capped so a common word ("assistant")
   never means ranking tens of thousands of rows:
   full-text matches on the trigger-maintained ``search_vector`` (name weight A, short
   description and tags B, description C; ``websearch_to_tsquery('simple', …)`` so
   quotes, ``or`` and ``-word`` work), the most installed first; the same for matches
   in the name alone (agents named after the query are always considered); exact name
   matches. For the whole catalogue the most installed matches are read from GIN
   indexes popularity tier by popularity tier (:func:`_by_popularity`). Only when
   those sources find almost nothing (typically a typo) are trigram-similar names
   added; that condition is checked once, inside the statement.
2. **Ranking** of the candidates on the agents table alone, by one score blending text
   relevance, name similarity, an exact-name bonus, installs (log) and the average
   rating. The best ``MAX_RESULTS`` are kept.
3. **The page**: those rows, ordered by the score (``search_score``), each carrying how
   many there are (``search_total``, a window count), so :class:`SearchPaginator` needs
   no separate COUNT query.

The filters of ``queryset`` (category, tag, type, rating…) apply to the candidates, so
filtered searches are complete within the caps.

Chinese, Japanese and Korean are written without spaces: their runs are indexed as
overlapping character bigrams and queries are split the same way, so "客服" finds
"智能客服助手".

On other databases (SQLite) a simpler ``icontains`` search with a crude rank is used.
"""

from __future__ import annotations

import re

from django.core.exceptions import EmptyResultSet, FullResultSet
from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db import connections
from django.db.models import (
    BooleanField,
    Case,
    Count,
    Exists,
    F,
    FloatField,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
    Window,
)
from django.db.models.expressions import Expression
from django.db.models.functions import Cast, Least, Ln

from agents.selectors import store_agents

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
# The highest popularity tier (agentstore_popularity_tier, migration 0004): 2**20 installs
# and more.
TOP_TIER = 21
# The annotation that carries the number of results on every row of a search.
SEARCH_TOTAL = "search_total"

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


def _is_postgresql(queryset: QuerySet) -> bool:
    return connections[queryset.db].vendor == "postgresql"


def store_search(queryset: QuerySet, q: str | None) -> QuerySet:
    """Filter ``queryset`` (agents) to matches of ``q`` and order them by relevance.

    An empty query returns the queryset unchanged; callers that sort explicitly
    afterwards simply override the order. On PostgreSQL the returned queryset holds the
    best ``MAX_RESULTS`` matches, each annotated with ``search_score`` (higher is better)
    and ``search_total`` (how many there are); paginate it with
    :class:`SearchPaginator` to read the count from the page instead of a COUNT query.
    """
    q = normalize_query(q)
    if not q:
        return queryset
    if _is_postgresql(queryset):
        return _search_postgresql(queryset, q)
    return _search_fallback(queryset, q)


# --- PostgreSQL ---------------------------------------------------------------------------
#
# The statement is written by hand (the ORM has no CTEs or LATERAL): fixed SQL text around
# the queryset's own FROM and WHERE as Django compiles them, every value a parameter.
# ``{t}`` stands for the agents table's alias. ``%%`` is a literal ``%`` (trigram
# operators): the text goes through the driver's parameter formatting.

_TSQUERY = "websearch_to_tsquery('simple'::regconfig, %s)"
# The document and the name's own tsvector: the expressions of the GIN indexes of
# migrations 0002 and 0004.
_DOCUMENT = "{t}.search_vector @@ " + _TSQUERY
_NAME = "to_tsvector('simple'::regconfig, agentstore_search_text({t}.name)) @@ " + _TSQUERY
_SIMILAR_NAME = "({t}.name %% %s OR {t}.name %%> %s)"
_NAME_SIMILARITY = "GREATEST(similarity({t}.name, %s), word_similarity(%s, {t}.name))"


def _score_sql(t: str, q: str) -> tuple[str, list]:
    """Text relevance + name similarity + exact-name bonus + popularity (higher is
    better), for the agents row aliased ``t``."""
    plain, _negated = split_terms(q)
    sql = f"ts_rank({t}.search_vector, {_TSQUERY}, 32) * {W_TEXT}"
    params: list = [fulltext_query_text(q)]
    if plain:
        sql = (
            f"(({sql} + {_NAME_SIMILARITY.format(t=t)} * {W_NAME})"
            f" + CASE WHEN UPPER({t}.name::text) = UPPER(%s) THEN {W_EXACT} ELSE 0 END)"
        )
        params += [plain, plain, plain]
    popularity = (
        f"LEAST(LN({t}.install_count + 1), 12) * {W_INSTALLS}"
        f" + {t}.rating_avg::double precision * {W_RATING}"
    )
    return f"({sql} + ({popularity}))", params


class _OnAgents(Expression):
    """Raw SQL about the query's agents row: no expression compiling, and aliased like a
    column, so it follows the table when the query is relabelled (a subquery, a COUNT)."""

    def __init__(self, *args, alias: str | None = None) -> None:
        super().__init__()
        self.args, self.alias = args, alias

    def resolve_expression(
        self, query=None, allow_joins=True, reuse=None, summarize=False, for_save=False
    ):
        return type(self)(*self.args, alias=query.get_initial_alias())

    def relabeled_clone(self, change_map):
        return type(self)(*self.args, alias=change_map.get(self.alias, self.alias))

    def as_sql(self, compiler, connection):
        return self.sql(compiler.quote_name(self.alias), *self.args)


class SearchScore(_OnAgents):
    """The score of :func:`_score_sql` (``SearchScore(q)``)."""

    output_field = FloatField()
    sql = staticmethod(_score_sql)


class _AmongRanked(_OnAgents):
    """``id = ANY(ARRAY(<ranked ids>))`` (``_AmongRanked(sql, params)``).

    An array computed once (an InitPlan) rather than ``IN (subquery)``: the planner then
    does not weigh the search as one more relation to join, which cost milliseconds of
    planning behind a tag filter (the agents, their tags, the tag, the version, the
    developer and the category already are six).
    """

    output_field = BooleanField()

    @staticmethod
    def sql(t: str, ranked: str, params: list) -> tuple[str, list]:
        return f"{t}.id = ANY(ARRAY({ranked}))", params


class _Filtered:
    """The queryset's own FROM and WHERE (category, tag, type…), compiled once and
    repeated in every candidate source: ``select(condition, …)`` is "the ids of the
    queryset's agents that also match ``condition``"."""

    def __init__(self, queryset: QuerySet) -> None:
        query = queryset.order_by().values("pk").query
        compiler = query.get_compiler(using=queryset.db)
        compiler.pre_sql_setup()
        try:
            where, self.where_params = compiler.compile(compiler.where)
        except FullResultSet:
            where, self.where_params = "", []
        # EmptyResultSet (the queryset can match nothing) goes to the caller.
        from_, self.from_params = compiler.get_from_clause()
        self.t = compiler.quote_name(query.get_initial_alias())
        self.from_ = " ".join(from_)
        self.where = f"({where}) AND " if where else ""

    def select(
        self, condition: str, params: list, *, order: str = "", limit: int, exact: str = ""
    ) -> tuple[str, list]:
        sql = (
            f"SELECT {self.t}.id{exact} FROM {self.from_}"  # noqa: S608
            f" WHERE {self.where}{condition.format(t=self.t)}"
            f"{f' ORDER BY {order.format(t=self.t)}' if order else ''} LIMIT %s"
        )
        return sql, [*self.from_params, *self.where_params, *params, limit]


def _by_popularity(
    filtered: _Filtered, condition: str, params: list, limit: int, *, tiered: bool
) -> tuple[str, list]:
    """The ids of the ``limit`` most installed of the queryset's agents that match
    ``condition``, most installed first (ties: by id).

    ``tiered``: popularity tiers (``agentstore_popularity_tier``, migration 0004) are
    read from the top down through the GIN indexes on (tier, document): each tier's
    matches come straight from the index and the scan stops as soon as enough are
    found. A common word then costs a few hundred rows instead of a walk through
    thousands of popular agents checking the document of each. That is for the whole
    catalogue: behind a selective filter (a category, a tag) most of the matches read
    would be dropped, so there the planner chooses, as for any query, between walking
    the popularity index and a bitmap of all matches.
    """
    if not tiered:
        order = "{t}.install_count DESC, {t}.id"
        return filtered.select(condition, params, order=order, limit=limit)
    tier = f"{condition} AND agentstore_popularity_tier({{t}}.install_count) = tiers.tier"
    # The same order, but not one an index provides: the planner cannot know that a
    # tier's agents sit together deep in the popularity index, and walking it from the
    # top for a common word in a low tier reads most of the table (seconds). This way
    # each tier's matches come from the GIN index and are sorted.
    order = "-{t}.install_count, {t}.id"
    sql, params = filtered.select(tier, params, order=order, limit=limit)
    sql = (
        "SELECT c.id FROM generate_series(%s, 0, -1) AS tiers(tier)"  # noqa: S608
        f" CROSS JOIN LATERAL ({sql}) AS c LIMIT %s"
    )
    return sql, [TOP_TIER, *params, limit]


def _is_whole_catalogue(queryset: QuerySet) -> bool:
    """Whether ``queryset`` filters exactly like the store catalogue (no category, tag,
    type or rating filter)."""
    return queryset.query.where == store_agents().query.where


def _ranked_sql(queryset: QuerySet, q: str) -> tuple[str, list] | None:
    """``SELECT id …`` of the best ``MAX_RESULTS`` candidates for ``q``, best first
    (``None`` if the queryset can match nothing).

    Candidate sources, each capped, each within the queryset's filters:

    * exact name matches;
    * full-text matches, the most installed first (:func:`_by_popularity`);
    * matches in the name alone, the most installed first, so agents named after the
      query are always considered;
    * trigram-similar names (typos): only when the others found fewer than
      ``TYPO_THRESHOLD`` agents and none of exactly that name. That condition depends
      on no row, so PostgreSQL checks it once (a one-time filter) and does not start
      the scan when it is false.

    The candidates are then ranked on the agents table alone: they already passed the
    queryset's filters.
    """
    try:
        filtered = _Filtered(queryset)
    except EmptyResultSet:
        return None
    text = fulltext_query_text(q)
    plain, negated = split_terms(q)
    table = connections[queryset.db].ops.quote_name(queryset.model._meta.db_table)
    tiered = _is_whole_catalogue(queryset)
    name, name_params = _NAME, [text]
    exact, exact_params = "UPPER({t}.name::text) = UPPER(%s)", [plain]
    if negated:
        # "-word" excludes agents whose whole document has the word, not only the name.
        name, name_params = f"{name} AND {_DOCUMENT}", [text, text]
        exact, exact_params = f"{exact} AND {_DOCUMENT}", [plain, text]

    found, params = [], []
    if plain:
        sql, part_params = filtered.select(
            exact, exact_params, limit=EXACT_CANDIDATES, exact=", TRUE"
        )
        found.append(f"({sql})")
        params += part_params
    for condition, condition_params, limit in [
        (_DOCUMENT, [text], FULLTEXT_CANDIDATES),
        (name, name_params, NAME_CANDIDATES),
    ]:
        sql, part_params = _by_popularity(
            filtered, condition, condition_params, limit, tiered=tiered
        )
        found.append(f"SELECT c.id, FALSE FROM ({sql}) AS c")  # noqa: S608
        params += part_params
    # Named columns: an unknown name in a subquery would silently refer to the
    # enclosing query instead.
    sql = f"WITH found(id, exact) AS MATERIALIZED ({' UNION ALL '.join(found)})"

    candidates = "SELECT id FROM found"
    if plain:
        # Ordered by similarity, so the planner reads every trigram match through the
        # index (a few hundred rows) instead of scanning the table until enough match.
        similar, similar_params = _SIMILAR_NAME, [plain, plain]
        if negated:
            similar = f"{similar} AND NOT {_DOCUMENT}"
            similar_params.append(fulltext_query_text(" or ".join(negated)))
        typo, part_params = filtered.select(
            similar, similar_params, order=f"{_NAME_SIMILARITY} DESC", limit=TYPO_CANDIDATES
        )
        # ORDER BY's parameters come after WHERE's: before the limit.
        part_params[-1:-1] = [plain, plain]
        candidates += (
            f" UNION ALL SELECT c.id FROM ({typo}) AS c"  # noqa: S608
            " WHERE (SELECT count(DISTINCT id) FROM found) < %s"
            " AND NOT EXISTS (SELECT FROM found WHERE found.exact)"
        )
        params += [*part_params, TYPO_THRESHOLD]
    score, score_params = _score_sql('"r"', q)
    sql += (
        f" SELECT r.id FROM {table} AS r WHERE r.id IN ({candidates})"  # noqa: S608
        f" ORDER BY {score} DESC, r.install_count DESC, r.id LIMIT %s"
    )
    return sql, [*params, *score_params, MAX_RESULTS]


def _search_postgresql(queryset: QuerySet, q: str) -> QuerySet:
    """One statement: the candidates (CTEs), the best ``MAX_RESULTS`` of them, then the
    requested rows in that order, each with their count."""
    ranked = _ranked_sql(queryset, q)
    if ranked is None:
        return queryset.none()
    return (
        queryset.filter(_AmongRanked(*ranked))
        # The score again, for the at most MAX_RESULTS rows left: cheaper than joining
        # the ranked subquery, which the ORM cannot express.
        .annotate(search_score=SearchScore(q), **{SEARCH_TOTAL: Window(Count("pk"))})
        .order_by("-search_score", "-install_count", "pk")
    )


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


class SearchPaginator(Paginator):
    """A paginator that reads the count of a search from its page.

    The rows of a ``store_search()`` queryset carry ``search_total``: the page is fetched
    first and the count taken from it, so a search page is one statement (plus
    prefetches) instead of a COUNT and a page query that would both find and rank the
    candidates. Anything else (a listing without ``q``, the SQLite fallback, a page past
    the end) is paginated as usual.
    """

    def page(self, number) -> Page:
        if "count" in self.__dict__ or self.orphans or not _carries_total(self.object_list):
            return super().page(number)
        try:
            first = (int(number) - 1) * self.per_page
        except (TypeError, ValueError):
            return super().page(number)  # refused before any query
        if first < 0 or isinstance(number, float) and not number.is_integer():
            return super().page(number)
        rows = list(self.object_list[first : first + self.per_page])
        if not rows and first:
            return super().page(number)  # past the end: the usual COUNT and EmptyPage
        self.count = getattr(rows[0], SEARCH_TOTAL) if rows else 0
        return self._get_page(rows, self.validate_number(number), self)

    def get_page(self, number) -> Page:
        # Paginator.get_page validates (counts) before fetching; fetch first instead.
        if "count" in self.__dict__ or not _carries_total(self.object_list):
            return super().get_page(number)
        try:
            return self.page(number)
        except PageNotAnInteger:
            return self.page(1)
        except EmptyPage:
            return self.page(self.num_pages)


def _carries_total(object_list) -> bool:
    query = getattr(object_list, "query", None)
    return query is not None and SEARCH_TOTAL in query.annotations
