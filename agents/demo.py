"""The demo catalogue of the embedded set-up (`make run` → ``manage.py seed_demo``).

``seed_demo_catalogue()`` builds a believable store: categories, 23 agents in Chinese and
English from three developers, 1–3 reviewed versions each, installs, ratings with review
texts from demo users and a few developer replies. Everything goes through the services
(so counters, notifications and the audit log are real), then the timestamps are spread
over the last months so "newest" and the statistics charts look like a living store.

Idempotent: an agent whose slug exists is left alone, so a second run changes nothing.
The demo accounts (admin, reviewer, developer, user) must exist already.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import Role, User
from agents import services
from agents.config import default_config
from agents.models import Agent, AgentVersion, Category, Install, Notification, Rating

DEMO_EMAIL_DOMAIN = "demo.agentstore.local"

CATEGORIES = [
    # slug, name, icon, description, parent slug
    ("productivity", "Productivity", "🗂️", "Meetings, email, reports and planning.", None),
    ("writing", "Writing & Content", "✍️", "Articles, posts, copy and poetry.", None),
    ("development", "Development", "💻", "Code review, queries, tests and tooling.", None),
    ("code-review", "Code review", "🔍", "Second opinions on your changes.", "development"),
    ("education", "Education", "🎓", "Tutors and practice partners.", None),
    ("business", "Business & Finance", "📈", "Contracts, pitches, invoices and markets.", None),
    ("lifestyle", "Lifestyle", "🌿", "Travel, food and fitness.", None),
    ("research", "Research & Data", "🔬", "Papers, analysis and market research.", None),
    ("data-analysis", "Data analysis", "📊", "Tables, charts and statistics.", "research"),
]

# Extra developers (the demo "developer" account owns most agents).
DEVELOPERS = [
    ("mingyue.studio", "明月工作室"),
    ("northwind.labs", "Northwind Labs"),
]

# Demo store users who install and rate (no usable password: they never log in).
RATERS = [
    ("lin.wei", "林伟", "zh"), ("chen.jing", "陈静", "zh"), ("wang.fang", "王芳", "zh"),
    ("zhang.hao", "张浩", "zh"), ("liu.yang", "刘洋", "zh"), ("huang.min", "黄敏", "zh"),
    ("zhao.lei", "赵磊", "zh"), ("sun.li", "孙丽", "zh"), ("zhou.tao", "周涛", "zh"),
    ("wu.xin", "吴昕", "zh"), ("maria.g", "María García", "en"), ("tom.b", "Tom Baker", "en"),
    ("aisha.k", "Aisha Khan", "en"), ("kenji.s", "Kenji Sato", "en"),
    ("emma.w", "Emma Wilson", "en"), ("lucas.m", "Lucas Martin", "en"),
    ("sofia.r", "Sofia Rossi", "en"), ("noah.j", "Noah Johnson", "en"),
    ("priya.n", "Priya Nair", "en"), ("olga.p", "Olga Petrova", "en"),
    ("ben.c", "Ben Carter", "en"), ("chloe.d", "Chloé Dubois", "en"),
    ("omar.h", "Omar Haddad", "en"), ("yuki.t", "Yuki Tanaka", "en"),
]  # fmt: skip

REVIEWS = {
    "en": {
        5: ["Exactly what I needed. Saves me an hour a day.",
            "Brilliant, and it explains its steps.", "Best agent in this category, hands down.",
            "Fast, accurate and pleasant to use."],
        4: ["Very useful; occasionally a bit verbose.", "Solid. I use it most days.",
            "Good results once I learned how to ask.", "Helpful, with a few rough edges."],
        3: ["Does the job, nothing special.", "Fine for simple cases, struggles with long input.",
            "Useful but I still double-check everything."],
        2: ["Too generic for my needs.", "Missed the point a few times."],
        1: ["Did not work for my use case."],
    },
    "zh": {
        5: ["非常好用，每天帮我节省很多时间！", "回答准确，思路清晰，强烈推荐。",
            "同类里最好用的一个。", "速度快，效果好，界面也简洁。"],
        4: ["挺实用的，偶尔有点啰嗦。", "整体不错，基本每天都在用。",
            "效果很好，希望支持更多格式。"],
        3: ["能用，但没有特别惊喜。", "简单任务还行，复杂的需要自己改。"],
        2: ["回答比较泛，不太符合我的需求。"],
        1: ["对我的场景没有帮助。"],
    },
}  # fmt: skip

DEVELOPER_REPLIES = {
    "en": "Thanks for the feedback! The next version handles this better.",
    "zh": "感谢反馈！下个版本会改进这个问题。",
}


@dataclass
class Spec:
    slug: str
    name: str
    icon: str
    category: str
    agent_type: str
    short: str
    description: str
    tags: list[str]
    prompt: str
    versions: list[tuple[str, str]]
    developer: str = "developer"
    tools: list[str] = field(default_factory=list)
    featured: bool = False
    popularity: float = 0.5  # share of demo users who install it
    quality: float = 4.2  # mean stars
    age_days: int = 60  # published this many days ago


AGENTS: list[Spec] = [
    Spec("meeting-minutes-pro", "Meeting Minutes Pro", "📝", "productivity", "dialog",
         "Turns a messy transcript into minutes with decisions and action items.",
         "Paste a transcript or rough notes and get:\n\n- a short **summary**\n"
         "- the **decisions** taken\n- **action items** with owners and due dates\n\n"
         "Works with English and Chinese transcripts.",
         ["meetings", "notes", "summary"],
         "You are {{agent_name}}. Turn meeting transcripts into concise minutes with "
         "decisions and action items (owner, due date).",
         [("1.0.0", "First release."), ("1.1.0", "Action items now carry due dates."),
          ("1.2.0", "Better speaker detection in long transcripts.")],
         featured=True, popularity=0.75, quality=4.6, age_days=110),
    Spec("huiyi-jiyao", "会议纪要助手", "🗒️", "productivity", "dialog",
         "把会议录音转写整理成结构清晰的会议纪要。",
         "上传或粘贴会议转写文本，自动生成：\n\n- 会议**要点**\n- **决议**事项\n"
         "- **待办**及负责人\n\n支持中英文混合会议。",
         ["会议", "纪要", "办公"],
         "你是{{agent_name}}，负责把会议转写整理成简洁的会议纪要，列出决议和待办事项。",
         [("1.0.0", "首次发布。"), ("1.1.0", "支持中英文混合会议。")],
         developer="mingyue.studio", featured=True, popularity=0.7, quality=4.5, age_days=95),
    Spec("inbox-zero-coach", "Inbox Zero Coach", "📬", "productivity", "react",
         "Drafts replies and sorts your email into act, delegate, defer.",
         "Forward an email thread and the coach proposes a reply, a priority and the next "
         "step. Keeps your tone; never sends anything by itself.",
         ["email", "productivity"],
         "You are {{agent_name}}. Triage emails (act, delegate, defer, delete) and draft "
         "short replies in the user's tone.",
         [("1.0.0", "First release.")],
         developer="northwind.labs", popularity=0.35, quality=3.9, age_days=40,
         tools=["current_time"]),
    Spec("zhoubao-shengcheng", "周报生成器", "📅", "productivity", "dialog",
         "输入本周做过的事，一键生成条理清楚的工作周报。",
         "按**本周完成**、**进行中**、**下周计划**和**风险**四部分生成周报，"
         "语气正式，可直接发给领导。",
         ["周报", "办公", "写作"],
         "你是{{agent_name}}，根据用户的工作记录生成结构化周报。",
         [("1.0.0", "首次发布。"), ("1.0.1", "修复列表编号错误。")],
         developer="mingyue.studio", popularity=0.55, quality=4.3, age_days=70),
    Spec("blog-post-writer", "Blog Post Writer", "✍️", "writing", "reflexion",
         "Outlines, drafts and polishes blog posts in your voice.",
         "Give it a topic and a few bullet points. It writes an outline, a draft, critiques "
         "the draft and hands you the improved version.\n\n> Tip: paste one of your old "
         "posts so it can copy your style.",
         ["blog", "writing", "content"],
         "You are {{agent_name}}. Write blog posts: outline, draft, self-critique, final.",
         [("1.0.0", "First release."), ("2.0.0", "Now critiques its own draft before answering.")],
         featured=True, popularity=0.6, quality=4.4, age_days=120),
    Spec("xiaohongshu-wenan", "小红书文案助手", "🌸", "writing", "dialog",
         "生成带 emoji 和话题标签的种草文案，适合小红书风格。",
         "告诉它产品和卖点，生成**标题**、**正文**和**话题标签**，风格活泼亲切。",
         ["文案", "营销", "社交媒体"],
         "你是{{agent_name}}，擅长写小红书风格的种草文案。",
         [("1.0.0", "首次发布。"), ("1.1.0", "新增标题备选方案。")],
         developer="mingyue.studio", popularity=0.65, quality=4.1, age_days=50),
    Spec("seo-headline-lab", "SEO Headline Lab", "🔎", "writing", "react",
         "Ten headline variants scored for clarity, curiosity and keywords.",
         "Enter a topic and target keyword; get ten headlines with a score and a short "
         "reason for each.",
         ["seo", "marketing", "headlines"],
         "You are {{agent_name}}. Propose and score SEO-friendly headlines.",
         [("1.0.0", "First release.")],
         developer="northwind.labs", popularity=0.25, quality=3.6, age_days=25),
    Spec("gushici-shangxi", "古诗词赏析", "📜", "education", "dialog",
         "逐句讲解古诗词的意思、典故和写作手法。",
         "输入一首诗或词的标题或原文，得到**白话翻译**、**背景**、**典故**和**赏析**，"
         "适合中小学生和诗词爱好者。",
         ["诗词", "语文", "教育"],
         "你是{{agent_name}}，一位耐心的语文老师，讲解古诗词。",
         [("1.0.0", "首次发布。")],
         developer="mingyue.studio", popularity=0.4, quality=4.7, age_days=85),
    Spec("code-reviewer", "Code Reviewer", "🔍", "code-review", "react",
         "Reviews diffs for bugs, security issues and readability.",
         "Paste a diff or a file. The reviewer points out:\n\n1. bugs and edge cases\n"
         "2. security problems\n3. naming and readability\n\nIt can run small Python "
         "snippets in the sandbox to check a claim.\n\n```python\ndef add(a, b):\n"
         "    return a - b  # it will notice\n```",
         ["code", "review", "python", "security"],
         "You are {{agent_name}}, a senior engineer. Review code changes for bugs, security "
         "issues and readability. Be specific and kind.",
         [("1.0.0", "First release."), ("1.1.0", "Checks claims by running code in the sandbox."),
          ("1.2.0", "Understands unified diffs with renames.")],
         featured=True, popularity=0.8, quality=4.5, age_days=130,
         tools=["python_exec", "current_time"]),
    Spec("sql-query-helper", "SQL Query Helper", "🗄️", "development", "react",
         "Writes, explains and optimises SQL for PostgreSQL and MySQL.",
         "Describe the result you want and your tables; get a query, an explanation and "
         "index suggestions.",
         ["sql", "database", "postgresql"],
         "You are {{agent_name}}. Write correct, readable SQL and explain it.",
         [("1.0.0", "First release."), ("1.1.0", "Index suggestions.")],
         developer="northwind.labs", popularity=0.5, quality=4.2, age_days=75),
    Spec("regex-wizard", "Regex Wizard", "🧩", "development", "react",
         "Builds and explains regular expressions, with test cases.",
         "Tell it what to match; it answers with a pattern, an explanation of each part and "
         "examples that match and do not match.",
         ["regex", "code"],
         "You are {{agent_name}}. Build regular expressions and test them.",
         [("1.0.0", "First release.")],
         popularity=0.3, quality=4.0, age_days=35, tools=["python_exec"]),
    Spec("commit-message-writer", "Commit Message Writer", "🌱", "development", "dialog",
         "Conventional commit messages from a diff.",
         "Paste `git diff --staged`; get a conventional-commit subject line and body.",
         ["git", "code"],
         "You are {{agent_name}}. Write conventional commit messages from diffs.",
         [("1.0.0", "First release.")],
         popularity=0.45, quality=4.3, age_days=12),
    Spec("python-tutor", "Python Tutor", "🐍", "education", "dialog",
         "Teaches Python step by step, with exercises and gentle hints.",
         "From variables to decorators. The tutor asks what you know, explains with small "
         "examples and gives you exercises with hints instead of answers.",
         ["python", "programming", "education"],
         "You are {{agent_name}}, a patient Python teacher for {{level}} learners.",
         [("1.0.0", "First release."), ("1.1.0", "Exercises with hints.")],
         featured=True, popularity=0.55, quality=4.8, age_days=100),
    Spec("yingyu-kouyu-peilian", "英语口语陪练", "🗣️", "education", "dialog",
         "模拟真实场景的英语对话练习，并纠正语法和用词。",
         "选择场景（面试、点餐、出差……），用英语对话，练习结束后给出**纠错**和**更地道的表达**。",
         ["英语", "口语", "学习"],
         "你是{{agent_name}}，一位友好的英语口语陪练。",
         [("1.0.0", "首次发布。"), ("1.1.0", "新增面试场景。"), ("1.2.0", "纠错更详细。")],
         developer="mingyue.studio", featured=True, popularity=0.6, quality=4.4, age_days=90),
    Spec("hetong-shencha", "合同审查助手", "⚖️", "business", "agentic_rag",
         "逐条审查合同条款，标出风险并给出修改建议。",
         "上传合同文本，助手会：\n\n- 标出**高风险条款**\n- 解释风险原因\n- 给出**修改建议**\n\n"
         "> 仅供参考，不构成法律意见。",
         ["合同", "法律", "风控"],
         "你是{{agent_name}}，帮助用户审查合同条款并提示风险。",
         [("1.0.0", "首次发布。")],
         developer="mingyue.studio", popularity=0.35, quality=4.0, age_days=55),
    Spec("startup-pitch-critic", "Startup Pitch Critic", "🚀", "business", "reflexion",
         "Tough-love feedback on your pitch deck narrative.",
         "Paste your pitch. The critic plays a sceptical investor, lists the ten questions "
         "you will be asked and rewrites your weakest slide.",
         ["startup", "pitch", "business"],
         "You are {{agent_name}}, a sceptical but fair venture investor.",
         [("1.0.0", "First release."), ("1.1.0", "Rewrites the weakest slide.")],
         developer="northwind.labs", popularity=0.3, quality=4.1, age_days=65),
    Spec("expense-sorter", "Invoice & Expense Sorter", "🧾", "business", "react",
         "Categorises expenses and totals them by month and project.",
         "Paste rows from your bank export or invoices; get categories, monthly totals and "
         "a CSV you can import into a spreadsheet.",
         ["finance", "expenses", "csv"],
         "You are {{agent_name}}. Categorise expenses and compute totals.",
         [("1.0.0", "First release.")],
         developer="northwind.labs", popularity=0.2, quality=3.8, age_days=20,
         tools=["python_exec"]),
    Spec("lvxing-guihua", "旅行规划师", "🧳", "lifestyle", "plan_execute",
         "根据预算和兴趣，规划逐日行程、交通和住宿。",
         "告诉它目的地、天数、预算和兴趣，生成**逐日行程**、交通方式和住宿区域建议。",
         ["旅行", "行程", "生活"],
         "你是{{agent_name}}，一位经验丰富的旅行规划师。先列计划，再逐步完善。",
         [("1.0.0", "首次发布。"), ("1.1.0", "加入预算明细。")],
         developer="mingyue.studio", featured=True, popularity=0.5, quality=4.5, age_days=45),
    Spec("recipe-remix", "Recipe Remix", "🍳", "lifestyle", "dialog",
         "Cook with what is in your fridge: recipes, swaps and timings.",
         "List your ingredients; get three recipes, substitutions for what is missing and "
         "a cooking timeline.",
         ["cooking", "recipes", "food"],
         "You are {{agent_name}}, a creative home cook.",
         [("1.0.0", "First release.")],
         popularity=0.4, quality=4.2, age_days=30),
    Spec("fitness-plan-builder", "Fitness Plan Builder", "🏋️", "lifestyle", "plan_execute",
         "Weekly training plans that fit your level, time and equipment.",
         "Answer a few questions and get a four-week plan with progressions. Not medical "
         "advice.",
         ["fitness", "health", "training"],
         "You are {{agent_name}}, a certified personal trainer.",
         [("1.0.0", "First release."), ("1.0.1", "Fixed rest-day scheduling.")],
         developer="northwind.labs", popularity=0.3, quality=3.9, age_days=15),
    Spec("paper-summarizer", "Paper Summarizer", "📄", "research", "agentic_rag",
         "Summarises research papers: claims, methods, limitations.",
         "Give it a paper (or its abstract and sections). It answers with the main claim, the "
         "method, the evidence and the limitations, and cites the passages it used.",
         ["research", "papers", "summary"],
         "You are {{agent_name}}. Summarise papers faithfully and cite the passages you use.",
         [("1.0.0", "First release."), ("1.1.0", "Cites passages.")],
         popularity=0.45, quality=4.6, age_days=80, tools=["knowledge_search"]),
    Spec("shuju-fenxi", "数据分析助手", "📊", "data-analysis", "react",
         "上传表格数据，自动完成清洗、统计和图表建议。",
         "粘贴 CSV 数据，助手会用 Python 在沙箱中计算**描述统计**、发现**异常值**，"
         "并建议合适的图表。",
         ["数据分析", "python", "表格"],
         "你是{{agent_name}}，一位严谨的数据分析师，必要时在沙箱中运行 Python。",
         [("1.0.0", "首次发布。"), ("1.1.0", "支持异常值检测。")],
         developer="mingyue.studio", popularity=0.45, quality=4.3, age_days=60,
         tools=["python_exec"]),
    Spec("market-research-scout", "Market Research Scout", "🧭", "research", "plan_execute",
         "Plans and drafts a market research brief: segments, competitors, risks.",
         "Describe a product idea; the scout plans the research, then drafts a brief with "
         "segments, competitors, pricing and risks.",
         ["market", "research", "business"],
         "You are {{agent_name}}, a market research analyst. Plan first, then execute.",
         [("1.0.0", "First release.")],
         developer="northwind.labs", popularity=0.2, quality=3.7, age_days=8),
]  # fmt: skip


def _rng(*parts: Any) -> random.Random:
    seed = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return random.Random(int(seed[:16], 16))  # noqa: S311 - demo data, not security


def _demo_user(username: str, display_name: str, role: str, language: str = "") -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User(
            username=username,
            email=f"{username}@{DEMO_EMAIL_DOMAIN}",
            display_name=display_name,
            role=role,
            language={"zh": "zh-hans", "en": "en"}.get(language, ""),
        )
        user.set_unusable_password()
        user.save()
    return user


def _categories() -> dict[str, Category]:
    found = {}
    for ordering, (slug, name, icon, description, parent) in enumerate(CATEGORIES):
        category = Category.objects.filter(slug=slug).first()
        if category is None:
            category = Category.objects.create(
                slug=slug,
                name=name,
                icon=icon,
                description=description,
                ordering=ordering,
                parent=found.get(parent),
            )
        found[slug] = category
    return found


def _config(spec: Spec, index: int) -> dict[str, Any]:
    config = default_config(spec.agent_type)
    config["system_prompt"] = spec.prompt
    config["builtin_tools"] = list(spec.tools)
    if "{{level}}" in spec.prompt:
        config["persona"]["variables"] = {
            "level": {"default": "beginner", "description": "beginner, intermediate, advanced"}
        }
    config["model"]["temperature"] = round(0.3 + 0.1 * index, 1)
    return config


def _stars(rng: random.Random, quality: float) -> int:
    return max(1, min(5, round(rng.gauss(quality, 0.8))))


def _seed_agent(
    spec: Spec,
    *,
    categories: dict[str, Category],
    developers: dict[str, User],
    reviewer: User,
    people: list[tuple[User, str]],
) -> tuple[int, int]:
    rng = _rng(spec.slug)
    developer = developers[spec.developer]
    agent = services.agent_create(
        developer,
        data={
            "name": spec.name,
            "slug": spec.slug,
            "short_description": spec.short,
            "description": spec.description,
            "icon": spec.icon,
            "category": categories[spec.category],
            "tags": spec.tags,
            "agent_type": spec.agent_type,
        },
    )
    now = timezone.now()
    published = now - timedelta(days=spec.age_days, hours=rng.randint(0, 20))
    installs = ratings = 0
    versions: list[AgentVersion] = []
    for index, (number, changelog) in enumerate(spec.versions):
        draft = services.agent_version_create(
            developer, agent=agent, version=number, changelog=changelog, config=_config(spec, index)
        )
        services.agent_version_submit(developer, version=draft)
        version = services.review_approve(reviewer, version=draft, note="Looks good.")
        versions.append(version)
        agent = version.agent  # published now: current version, status
        if index > 0:
            continue
        # Installs and ratings happen on the first version, so later versions notify
        # the installers (the "update available" badge in My agents).
        for person, language in people:
            if rng.random() >= spec.popularity:
                continue
            services.agent_install(person, agent=agent)
            installs += 1
            if rng.random() < 0.65:
                stars = _stars(rng, spec.quality)
                text = rng.choice(REVIEWS[language][stars]) if rng.random() < 0.8 else ""
                rating = services.rating_submit(person, agent=agent, stars=stars, text=text)
                ratings += 1
                if stars <= 3 and text and rng.random() < 0.6:
                    services.rating_reply(
                        developer,
                        rating=rating,
                        reply=DEVELOPER_REPLIES["en" if spec.name.isascii() else "zh"],
                    )
    _spread_over_time(agent, versions, published, now, rng)
    if spec.featured:
        Agent.objects.filter(pk=agent.pk).update(is_featured=True)
    return installs, ratings


def _spread_over_time(
    agent: Agent, versions: list[AgentVersion], published, now, rng: random.Random
) -> None:
    """Give the seeded rows a history instead of "all created this second".

    Versions spread from ``published`` to now and installs over the same time. The
    services ran every install before the updates, so each install keeps only the update
    notices of versions published after it and "saw" the version current when it came.
    """
    span = now - published
    times = [published + span * (0.9 * index / len(versions)) for index in range(len(versions))]
    for version, at in zip(versions, times, strict=True):
        AgentVersion.objects.filter(pk=version.pk).update(
            created_at=at - timedelta(days=2), submitted_at=at - timedelta(days=1), reviewed_at=at
        )
        Notification.objects.filter(version=version).update(created_at=at)
    Agent.objects.filter(pk=agent.pk).update(
        published_at=published, created_at=published, updated_at=times[-1]
    )
    for install in Install.objects.filter(agent=agent).order_by("pk"):
        installed = published + timedelta(seconds=rng.uniform(0, span.total_seconds()))
        seen = [v for v, at in zip(versions, times, strict=True) if at <= installed][-1]
        Install.objects.filter(pk=install.pk).update(installed_at=installed, seen_version=seen)
        Notification.objects.filter(
            user_id=install.user_id,
            agent=agent,
            kind=Notification.Kind.AGENT_UPDATED,
            created_at__lt=installed,
        ).delete()
        Rating.objects.filter(agent=agent, user_id=install.user_id).update(
            created_at=min(installed + timedelta(hours=rng.uniform(1, 72)), now)
        )


@transaction.atomic
def seed_demo_catalogue(*, only: Iterable[str] | None = None) -> str:
    """Create the demo catalogue; agents that exist already (by slug) are skipped.

    ``only`` limits it to some slugs (tests seed a few agents instead of all of them)."""
    wanted = set(only) if only is not None else None
    specs = [spec for spec in AGENTS if wanted is None or spec.slug in wanted]
    existing = set(
        Agent.objects.filter(slug__in=[spec.slug for spec in specs]).values_list("slug", flat=True)
    )
    todo = [spec for spec in specs if spec.slug not in existing]
    if not todo:
        return "already present"
    try:
        reviewer = User.objects.get(username="reviewer")
        main_developer = User.objects.get(username="developer")
        demo_user = User.objects.get(username="user")
    except User.DoesNotExist as exc:
        raise RuntimeError("Create the demo accounts first (accounts.demo).") from exc
    developers = {"developer": main_developer}
    for username, display_name in DEVELOPERS:
        developers[username] = _demo_user(username, display_name, Role.DEVELOPER)
    people = [(_demo_user(u, name, Role.USER, lang), lang) for u, name, lang in RATERS]
    people.append((demo_user, "en"))
    categories = _categories()
    installs = ratings = 0
    for spec in todo:
        made = _seed_agent(
            spec,
            categories=categories,
            developers=developers,
            reviewer=reviewer,
            people=people,
        )
        installs += made[0]
        ratings += made[1]
    return f"{len(todo)} agents, {installs} installs, {ratings} ratings"
