"""Built-in default agents: one per agent type, published, free for anyone to duplicate.

They belong to a system account, ``agentstore`` (inactive, no usable password, role
developer), so no person owns them and nobody can log in as their developer; admins edit
them in the Django admin. Their approved 1.0.0 version uses the platform default model
(``llm_model_id`` null). They are created without a reviewer because they ship with the
product; :func:`ensure_builtin_agents` runs after every ``migrate`` and is idempotent: an
existing built-in (found by slug) is left as it is, so admin edits survive.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import connections, transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Role, User
from agents.config import default_config
from agents.models import Agent, AgentVersion

logger = logging.getLogger(__name__)

SYSTEM_USERNAME = "agentstore"
SYSTEM_EMAIL = "system@agentstore.invalid"

BUILTINS: list[dict[str, Any]] = [
    {
        "agent_type": "react",
        "slug": "builtin-react",
        "name": "ReAct Assistant",
        "icon": "🛠️",
        "short_description": "Reasons step by step and uses tools to get things done.",
        "system_prompt": (
            "You are {{agent_name}}, a helpful assistant. Think step by step and use the "
            "tools you have when they help. Answer in the user's language ({{locale}})."
        ),
        "builtin_tools": ["current_time"],
    },
    {
        "agent_type": "dialog",
        "slug": "builtin-dialog",
        "name": "Dialog Companion",
        "icon": "💬",
        "short_description": "A friendly conversational assistant with memory of the chat.",
        "system_prompt": (
            "You are {{agent_name}}, a friendly conversational partner. Keep answers short "
            "and clear, and remember what the user told you earlier in the chat."
        ),
        "builtin_tools": [],
    },
    {
        "agent_type": "agentic_rag",
        "slug": "builtin-agentic-rag",
        "name": "Knowledge Researcher",
        "icon": "📚",
        "short_description": "Decides when to search knowledge bases and cites its sources.",
        "system_prompt": (
            "You are {{agent_name}}, a research assistant. Search the knowledge available "
            "to you when a question needs facts, and cite the passages you used."
        ),
        "builtin_tools": ["knowledge_search", "current_time"],
    },
    {
        "agent_type": "plan_execute",
        "slug": "builtin-plan-execute",
        "name": "Planner",
        "icon": "🗺️",
        "short_description": "Breaks a task into a plan, then carries it out step by step.",
        "system_prompt": (
            "You are {{agent_name}}. First write a short numbered plan for the user's "
            "task, then carry out each step and report the result."
        ),
        "builtin_tools": ["current_time", "python_exec"],
    },
    {
        "agent_type": "reflexion",
        "slug": "builtin-reflexion",
        "name": "Reflective Writer",
        "icon": "🪞",
        "short_description": "Drafts an answer, critiques it, and improves it before replying.",
        "system_prompt": (
            "You are {{agent_name}}. Draft an answer, critique the draft for mistakes and "
            "gaps, then give the improved answer."
        ),
        "builtin_tools": [],
    },
]


def system_user() -> User:
    user = User.objects.filter(username=SYSTEM_USERNAME).first()
    if user is None:
        user = User(
            username=SYSTEM_USERNAME,
            email=SYSTEM_EMAIL,
            display_name="AgentStore",
            role=Role.DEVELOPER,
            is_active=False,
        )
        user.set_unusable_password()
        user.save()
    return user


def ensure_builtin_agents() -> list[Agent]:
    """Create the missing built-in agents; returns the ones created."""
    created = []
    with transaction.atomic():
        owner = system_user()
        existing = set(
            Agent.objects.filter(slug__in=[spec["slug"] for spec in BUILTINS]).values_list(
                "slug", flat=True
            )
        )
        now = timezone.now()
        for spec in BUILTINS:
            if spec["slug"] in existing:
                continue
            config = default_config(spec["agent_type"])
            config["system_prompt"] = spec["system_prompt"]
            config["builtin_tools"] = spec["builtin_tools"]
            agent = Agent.objects.create(
                name=spec["name"],
                slug=spec["slug"],
                short_description=spec["short_description"],
                description=(
                    f"{spec['short_description']}\n\n"
                    "This is a built-in starting point: duplicate it to build your own agent."
                ),
                icon=spec["icon"],
                developer=owner,
                agent_type=spec["agent_type"],
                status=Agent.Status.PUBLISHED,
                is_builtin=True,
                published_at=now,
            )
            version = AgentVersion.objects.create(
                agent=agent,
                version="1.0.0",
                changelog="Built-in default agent.",
                config=config,
                status=AgentVersion.Status.APPROVED,
                is_current=True,
                submitted_at=now,
                reviewed_at=now,
                review_note="Ships with AgentStore.",
                check_status=AgentVersion.CheckStatus.PASSED,
                created_by=owner,
            )
            agent.current_version = version
            agent.save(update_fields=["current_version"])
            audit_record(None, action="agent.builtin_create", obj=agent)
            created.append(agent)
    return created


def ensure_builtin_agents_after_migrate(using: str = "default", **kwargs) -> None:
    """post_migrate receiver; does nothing while the store tables do not exist (for
    example when migrating the app back to zero)."""
    tables = connections[using].introspection.table_names()
    if Agent._meta.db_table not in tables or AgentVersion._meta.db_table not in tables:
        return
    created = ensure_builtin_agents()
    if created:
        logger.info("created %d built-in agents", len(created))
