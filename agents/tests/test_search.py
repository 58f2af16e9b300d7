"""Store search ranking (agents.search): the SQLite fallback everywhere, the PostgreSQL
full-text + trigram search where the database is PostgreSQL (integration)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.paginator import EmptyPage

from agents import search
from agents.models import Agent, Tag
from agents.search import SearchPaginator, fulltext_query_text, split_terms, store_search
from agents.selectors import store_agents
from agents.tests.factories import published_agent


@pytest.fixture(autouse=True)
def _no_builtins(db):
    Agent.objects.filter(is_builtin=True).update(status=Agent.Status.ARCHIVED)


@pytest.fixture
def agents(developer):
    made = {
        "reviewer": published_agent(
            developer=developer,
            name="Code Reviewer",
            slug="code-reviewer",
            short_description="Reviews pull requests and finds bugs.",
            description="Knows **Python**, Rust and Go.",
            install_count=500,
            rating_avg=Decimal("4.20"),
        ),
        "tutor": published_agent(
            developer=developer,
            name="Python Tutor",
            slug="python-tutor",
            short_description="Teaches programming step by step.",
            description="From variables to decorators.",
            install_count=40,
        ),
        "kefu": published_agent(
            developer=developer,
            name="智能客服助手",
            slug="kefu",
            short_description="回答客户关于订单和退货的问题。",
            install_count=120,
        ),
        "translator": published_agent(
            developer=developer,
            name="Translator",
            slug="translator",
            short_description="Translates between Chinese and English.",
            description="翻译中文和英文文档。",
            install_count=80,
        ),
    }
    made["translator"].tags.add(Tag.objects.create(name="翻译", slug="fanyi"))
    made["tutor"].tags.add(Tag.objects.create(name="education", slug="education"))
    return made


def _slugs(q: str) -> list[str]:
    return [agent.slug for agent in store_search(store_agents(), q)]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("客服", "客服"),
        ("智能客服", "智能 客服"),
        ("智能客服助", "智能 客服 服助"),
        ("智能 客服 bot", "智能 客服 bot"),
        ("云", "云"),
        ('"客服系统"', '" 客服 服系 系统 "'),
        ("code助手 -java", "code 助手 -java"),
        ("助手 -客服系统", '助手 -"客服 服系 系统"'),
        ("  many   spaces ", "many spaces"),
    ],
)
def test_query_text_turns_cjk_runs_into_bigrams(q, expected):
    assert fulltext_query_text(" ".join(q.split())) == expected


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("python tutor", ("python tutor", [])),
        ("python -rust", ("python", ["rust"])),
        ('"code review" or bugs', ("code review bugs", [])),
    ],
)
def test_split_terms(q, expected):
    assert split_terms(q) == expected


def test_empty_query_changes_nothing(agents):
    queryset = store_agents().order_by("name")
    assert store_search(queryset, "   ") is queryset


def test_exact_name_match_comes_first(agents):
    assert _slugs("Python Tutor")[0] == "python-tutor"


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("pull requests", ["code-reviewer"]),
        ("decorators", ["python-tutor"]),
        ("education", ["python-tutor"]),
        ("客服", ["kefu"]),
        ("翻译", ["translator"]),
        ("nothing-like-this", []),
    ],
)
def test_matches_name_descriptions_and_tags(agents, q, expected):
    assert _slugs(q) == expected


def test_popularity_breaks_ties_between_equal_matches(agents):
    # "python" is in the tutor's name but only in the reviewer's description; the name
    # match outranks 10x the installs.
    assert _slugs("python") == ["python-tutor", "code-reviewer"]


def test_search_respects_the_given_queryset(agents):
    only_tutor = store_agents().filter(slug="python-tutor")
    assert [a.slug for a in store_search(only_tutor, "python")] == ["python-tutor"]


def test_search_never_returns_agents_outside_the_queryset(agents, developer):
    draft = published_agent(developer=developer, name="Python Draft", slug="python-draft")
    Agent.objects.filter(pk=draft.pk).update(status=Agent.Status.DRAFT)
    assert "python-draft" not in _slugs("python")


def test_search_paginator_counts_anything_else_as_usual(agents, django_assert_num_queries):
    paginator = SearchPaginator(store_agents().prefetch_related(None).order_by("slug"), 3)

    with django_assert_num_queries(2):  # the count, then the page
        slugs = [agent.slug for agent in paginator.page(2)]

    assert (slugs, paginator.count) == (["translator"], 4)


# --- PostgreSQL only: the integration marker runs these where DATABASE_URL is PostgreSQL ---


@pytest.mark.integration
@pytest.mark.parametrize(
    ("q", "expected_first"),
    [
        ("pythn tutr", "python-tutor"),
        ("Code Reviewr", "code-reviewer"),
        ("Translater", "translator"),
    ],
)
def test_typos_in_names_are_tolerated(agents, q, expected_first):
    assert _slugs(q)[0] == expected_first


@pytest.mark.integration
def test_websearch_syntax_excludes_words(agents):
    assert _slugs("python -rust") == ["python-tutor"]
    assert _slugs('"pull requests" or 客服') == ["code-reviewer", "kefu"]


@pytest.mark.integration
def test_renaming_a_tag_updates_the_search_index(agents):
    Tag.objects.filter(slug="education").update(name="schooling")
    assert _slugs("schooling") == ["python-tutor"]
    assert _slugs("education") == []


@pytest.mark.integration
def test_editing_a_description_updates_the_search_index(agents):
    Agent.objects.filter(slug="kefu").update(description="Handles refunds quickly.")
    assert _slugs("refunds") == ["kefu"]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("智能助手", ["kefu"]),  # both words, anywhere
        ('"客服助手"', ["kefu"]),  # a phrase: the characters next to each other
        ("客服 -退货", []),
        ("客服 -翻译", ["kefu"]),
    ],
)
def test_chinese_words_phrases_and_exclusions(agents, q, expected):
    assert _slugs(q) == expected


@pytest.mark.integration
def test_similar_names_are_only_offered_when_nothing_matches_exactly(agents, developer):
    published_agent(developer=developer, name="Translatr Bot", slug="translatr-bot")
    assert _slugs("Translator") == ["translator"]
    assert _slugs("Translatorr") == ["translator", "translatr-bot"]


@pytest.mark.integration
def test_the_most_installed_matches_are_the_candidates_filtered_or_not(developer, monkeypatch):
    # More matches than the cap: the candidates are the most installed ones, whether the
    # whole catalogue is read tier by tier or a filtered queryset the planner's way.
    monkeypatch.setattr(search, "FULLTEXT_CANDIDATES", 3)
    for installs in [0, 1, 6, 40, 3000]:
        published_agent(
            developer=developer,
            name=f"Helper {installs}",
            slug=f"helper-{installs}",
            description="Knows the zeppelin timetable.",
            install_count=installs,
        )

    whole_catalogue = _slugs("zeppelin")
    filtered = [
        a.slug for a in store_search(store_agents().filter(developer=developer), "zeppelin")
    ]

    assert whole_catalogue == ["helper-3000", "helper-40", "helper-6"]
    assert filtered == whole_catalogue


@pytest.fixture
def gadgets(developer):
    return [
        published_agent(
            developer=developer, name=f"Gadget {n:02d}", slug=f"gadget-{n:02d}", install_count=n
        )
        for n in range(12)
    ]


@pytest.mark.integration
def test_a_search_page_brings_its_own_count(gadgets, django_assert_num_queries):
    paginator = SearchPaginator(store_search(store_agents().prefetch_related(None), "gadget"), 5)

    with django_assert_num_queries(1):
        page = paginator.page(3)
        slugs = [agent.slug for agent in page]

    assert slugs == ["gadget-01", "gadget-00"]
    assert (paginator.count, paginator.num_pages, page.has_next()) == (12, 3, False)


@pytest.mark.integration
def test_a_search_with_no_results_is_one_empty_page(agents, django_assert_num_queries):
    paginator = SearchPaginator(store_search(store_agents(), "nothing-like-this"), 5)

    with django_assert_num_queries(1):
        page = paginator.page(1)

    assert (list(page), paginator.count, paginator.num_pages) == ([], 0, 1)


@pytest.mark.integration
def test_a_search_page_past_the_end_is_refused_or_replaced_by_the_last(gadgets):
    queryset = store_search(store_agents(), "gadget")

    with pytest.raises(EmptyPage):
        SearchPaginator(queryset, 5).page(4)
    last = SearchPaginator(queryset, 5).get_page(9)
    first = SearchPaginator(queryset, 5).get_page("x")

    assert (last.number, [agent.slug for agent in last]) == (3, ["gadget-01", "gadget-00"])
    assert (first.number, len(first)) == (1, 5)
