"""Store search benchmark: 100,000 published agents on PostgreSQL.

Creates a dedicated database (dropped first if it exists), migrates it, bulk-inserts a
synthetic catalogue (English and Chinese names and descriptions drawn from a Zipf-like
vocabulary, tags, categories, skewed installs and ratings), then times a fixed mix of
queries twice:

* through the API: ``GET /api/v1/store/agents`` with Django's test client (URL routing,
  DRF, filters, search, pagination, serialisation of a 20-item page);
* the SQL alone: the page query and the count query the API runs, executed directly.

It prints p50/p95 per query and for the whole mix. Not part of the test suite.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/agentstore_bench \\
        .venv/bin/python bench/store_search.py [--agents 100000] [--runs 30] [--explain]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/agentstore_bench"


def _words(text: str) -> list[str]:
    return text.split()


EN_WORDS = _words("""
assistant helper writer code review python data analysis report email meeting notes summary
translate translator chinese english tutor teacher learning study math physics chemistry
history legal contract lawyer finance budget invoice tax stock market research paper science
marketing seo social media blog post article story poetry novel script video image design
logo brand product project manager planner travel trip recipe cooking fitness health diet
sleep habit coach career resume interview job sales support customer service chat bot agent
sql database query excel spreadsheet chart dashboard api docs test debug refactor security
devops cloud linux shell git commit release deploy monitor log alert incident ticket hr
recruit onboarding policy compliance audit risk insurance medical doctor nurse patient pet
garden home music guitar piano podcast news weather calendar schedule task todo reminder
language grammar vocabulary speaking listening reading writing essay thesis citation
startup pitch investor growth product-market feedback survey interview persona ux ui mobile
web frontend backend react vue django rails golang rust java kotlin swift ios android game
unity quiz puzzle chess trivia kids family parenting wedding party event ticketing crm erp
""")
EXACT_NAME = "Lighthouse Keeper Pro"
RARE_WORDS = ["kubernetes", "quantum", "mahjong", "origami", "volcano", "saxophone"]
ZH_WORDS = _words("""
智能 客服 助手 代码 审查 翻译 写作 数据 分析 旅行 规划 法律 合同 财务 报表 教育 学习 医疗 健康
营销 文案 会议 纪要 简历 面试 诗词 小说 编程 数学 英语 日语 投资 股票 周报 总结 设计 产品
""")
ICONS = ["🤖", "📝", "💻", "📊", "🌍", "🎓", "⚖️", "💰", "🩺", "🎨", "🧭", "🍳", "🏋️", "📚"]
AGENT_TYPES = ["react", "dialog", "agentic_rag", "plan_execute", "reflexion"]

# label, query parameters
QUERIES: list[tuple[str, dict[str, str]]] = [
    ("selective: rare word", {"q": "kubernetes"}),
    ("selective: two words", {"q": "invoice tax"}),
    ("selective: exact name", {"q": "<exact>"}),
    ("common: one word", {"q": "assistant"}),
    ("common: two words", {"q": "code review"}),
    ("common: chinese", {"q": "智能助手"}),
    ("typo: one word", {"q": "asistant"}),
    ("typo: two words", {"q": "code reviw"}),
    ("filtered: category", {"q": "data", "category": "cat-2"}),
    ("filtered: min rating", {"q": "writer", "min_rating": "4"}),
    ("filtered: type + tag", {"q": "report", "agent_type": "react", "tag": "tag-3"}),
    ("browse: category, popular", {"category": "cat-5"}),
]


def _zipf_weights(n: int, s: float = 1.05) -> list[float]:
    return [1 / (rank + 1) ** s for rank in range(n)]


class Vocabulary:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.en = list(EN_WORDS)
        rng.shuffle(self.en)
        self.en_weights = _zipf_weights(len(self.en))
        self.zh_weights = _zipf_weights(len(ZH_WORDS))

    def en_words(self, k: int) -> list[str]:
        return self.rng.choices(self.en, weights=self.en_weights, k=k)

    def zh_words(self, k: int) -> list[str]:
        return self.rng.choices(ZH_WORDS, weights=self.zh_weights, k=k)


def _database_admin_url(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    return urlunparse(parsed._replace(path="/postgres")), name


def recreate_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    admin_url, name = _database_admin_url(url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    admin_url, name = _database_admin_url(url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("SECRET_KEY", uuid.uuid4().hex * 2)
    os.environ["DEBUG"] = "0"  # DEBUG keeps every query in memory and slows the loop
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentstore.settings")
    import django

    django.setup()


def seed(n_agents: int, rng: random.Random) -> dict[str, str]:
    from django.db import connection, transaction
    from django.utils import timezone

    from accounts.models import Role, User
    from agents.config import default_config
    from agents.models import Agent, AgentVersion, Category, Tag

    vocab = Vocabulary(rng)
    now = timezone.now()
    with transaction.atomic():
        developers = [
            User.objects.create(
                username=f"bench-dev-{i}", email=f"bench-dev-{i}@example.invalid",
                role=Role.DEVELOPER,
            )
            for i in range(50)
        ]  # fmt: skip
        roots = [
            Category.objects.create(name=f"Category {i}", slug=f"cat-{i}", ordering=i)
            for i in range(8)
        ]
        for i in range(8, 16):
            Category.objects.create(name=f"Category {i}", slug=f"cat-{i}", parent=roots[i % 8])
        categories = list(Category.objects.all())
        tags = Tag.objects.bulk_create(
            [Tag(name=f"{word}-{i}" if i else word, slug=f"tag-{i}") for i, word in
             enumerate(vocab.en_words(300))]
        )  # fmt: skip
    exact_name = ""
    started = time.perf_counter()
    # The search-index triggers would rebuild an agent's document once per row and once
    # per tag link; during the bulk load they are off and one UPDATE builds them all.
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE agents_agent DISABLE TRIGGER agents_agent_search")
        cursor.execute("ALTER TABLE agents_agent_tags DISABLE TRIGGER agents_agent_tags_search")
    batch = 5000
    config = default_config()
    through = Agent.tags.through
    for offset in range(0, n_agents, batch):
        agents = []
        for i in range(offset, min(offset + batch, n_agents)):
            chinese = rng.random() < 0.15
            if chinese:
                name = "".join(vocab.zh_words(rng.randint(2, 3)))
                short = "".join(vocab.zh_words(rng.randint(5, 10)))
                description = "，".join(
                    "".join(vocab.zh_words(rng.randint(2, 5))) for _ in range(rng.randint(5, 15))
                )
            else:
                name = " ".join(w.title() for w in vocab.en_words(rng.randint(2, 3)))
                short = " ".join(vocab.en_words(rng.randint(8, 15))).capitalize() + "."
                description = " ".join(vocab.en_words(rng.randint(30, 120))).capitalize() + "."
            if i % 4000 == 7:
                description += " " + RARE_WORDS[(i // 4000) % len(RARE_WORDS)]
            if i == n_agents // 2:
                name = exact_name = EXACT_NAME
            rated = rng.random() < 0.7
            rating_count = int(rng.paretovariate(1.3)) if rated else 0
            agents.append(
                Agent(
                    name=name[:100],
                    slug=f"bench-{i}",
                    short_description=short[:200],
                    description=description,
                    icon=rng.choice(ICONS),
                    developer=developers[i % len(developers)],
                    category=rng.choice(categories),
                    agent_type=rng.choice(AGENT_TYPES),
                    status=Agent.Status.PUBLISHED,
                    install_count=int(rng.paretovariate(1.1)) - 1,
                    rating_count=rating_count,
                    rating_sum=rating_count * 3,
                    rating_avg=round(rng.uniform(1, 5), 2) if rated else 0,
                    published_at=now - timedelta(minutes=rng.randint(0, 525_600)),
                )
            )
        with transaction.atomic():
            created = Agent.objects.bulk_create(agents, batch_size=batch)
            AgentVersion.objects.bulk_create(
                [
                    AgentVersion(
                        agent=agent,
                        version="1.0.0",
                        config=config,
                        status=AgentVersion.Status.APPROVED,
                        is_current=True,
                        check_status=AgentVersion.CheckStatus.PASSED,
                    )
                    for agent in created
                ],
                batch_size=batch,
            )
            through.objects.bulk_create(
                [
                    through(agent_id=agent.pk, tag_id=tag.pk)
                    for agent in created
                    for tag in rng.sample(tags, rng.randint(1, 4))
                ],
                batch_size=batch * 3,
            )
        print(
            f"  seeded {offset + len(agents):>7,} agents  ({time.perf_counter() - started:.0f} s)"
        )
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE agents_agent ENABLE TRIGGER agents_agent_search")
        cursor.execute("ALTER TABLE agents_agent_tags ENABLE TRIGGER agents_agent_tags_search")
        cursor.execute(
            "UPDATE agents_agent AS a SET current_version_id = v.id, "
            "search_vector = agentstore_agent_document(a.id, a.name, a.short_description, "
            "a.description) FROM agents_agentversion AS v WHERE v.agent_id = a.id AND v.is_current"
        )
        # The UPDATE above rewrote every row; compact the table as a restore would.
        cursor.execute("VACUUM FULL ANALYZE agents_agent")
        cursor.execute("VACUUM ANALYZE")
    print(f"  search documents built  ({time.perf_counter() - started:.0f} s)")
    return {"<exact>": exact_name}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def run(args: argparse.Namespace) -> None:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    rng = random.Random(42)  # noqa: S311 - benchmark data
    if args.reuse:
        substitutions = {"<exact>": EXACT_NAME}
    else:
        print(f"seeding {args.agents:,} agents into {urlparse(args.database_url).path[1:]} …")
        t0 = time.perf_counter()
        substitutions = seed(args.agents, rng)
        print(f"seeded in {time.perf_counter() - t0:.0f} s")
    queries = [
        (label, {k: substitutions.get(v, v) for k, v in params.items()})
        for label, params in QUERIES
    ]
    client = Client()
    rows = []
    all_api: list[float] = []
    all_sql: list[float] = []
    for label, params in queries:
        url_params = {**params, "page_size": "20"}
        for _ in range(3):  # warm-up: caches, plans
            response = client.get("/api/v1/store/agents", url_params)
            assert response.status_code == 200, response.content[:500]
        api_times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            response = client.get("/api/v1/store/agents", url_params)
            api_times.append((time.perf_counter() - started) * 1000)
        total = response.json()["data"]["total"]
        first = [item["name"] for item in response.json()["data"]["items"][:3]]

        # The SQL alone: replay exactly the statements the API ran for this request.
        with CaptureQueriesContext(connection) as captured:
            client.get("/api/v1/store/agents", url_params)
        statements = [query["sql"] for query in captured.captured_queries]
        sql_times = []
        with connection.cursor() as cursor:
            for _ in range(args.runs):
                started = time.perf_counter()
                for statement in statements:
                    cursor.execute(statement)
                    if cursor.description is not None:
                        cursor.fetchall()
                sql_times.append((time.perf_counter() - started) * 1000)
            if args.explain:
                print(f"\n--- {label}: {params}")
                for statement in statements:
                    if not statement.lstrip().upper().startswith("SELECT"):
                        cursor.execute(statement)
                        continue
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement)
                    print("\n".join(row[0] for row in cursor.fetchall()))
        all_api += api_times
        all_sql += sql_times
        rows.append((label, params, total, first, api_times, sql_times))

    print()
    print(f"{'query':<28} {'hits':>7} {'API p50':>8} {'API p95':>8} {'SQL p50':>8} {'SQL p95':>8}")
    for label, _params, total, _first, api_times, sql_times in rows:
        print(
            f"{label:<28} {total:>7,} {statistics.median(api_times):>7.1f}  "
            f"{percentile(api_times, 0.95):>7.1f}  {statistics.median(sql_times):>7.1f}  "
            f"{percentile(sql_times, 0.95):>7.1f}"
        )
    print(
        f"{'whole mix':<28} {'':>7} {statistics.median(all_api):>7.1f}  "
        f"{percentile(all_api, 0.95):>7.1f}  {statistics.median(all_sql):>7.1f}  "
        f"{percentile(all_sql, 0.95):>7.1f}"
    )
    print("(milliseconds; SQL = every statement the API request ran, replayed directly)")
    if args.show_results:
        for label, params, _total, first, _a, _s in rows:
            print(f"  {label}: {params} → {first}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30, help="timed runs per query")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse", action="store_true", help="time a database kept by an earlier --keep run"
    )
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE plans")
    parser.add_argument("--show-results", action="store_true", help="print the top 3 per query")
    args = parser.parse_args()
    if not args.database_url.startswith("postgres"):
        parser.error("the benchmark needs PostgreSQL (--database-url postgres://…)")
    print(f"machine: {platform.node()} · {os.cpu_count()} CPUs · {platform.platform()}")
    if not args.reuse:
        recreate_database(args.database_url)
    setup_django(args.database_url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    try:
        run(args)
    finally:
        from django.db import connections

        connections.close_all()
        if not (args.keep or args.reuse):
            drop_database(args.database_url)


if __name__ == "__main__":
    main()
