from __future__ import annotations

import pytest
from django.utils import translation
from guardian.shortcuts import assign_perm

from accounts.models import Role
from accounts.tests.factories import UserFactory
from agents.config import (
    default_config,
    normalize_config,
    schema_problems,
    undeclared_variables,
    validate_config,
)
from agents.tests.factories import (
    KnowledgeBaseFactory,
    MCPConnectionFactory,
    SkillFactory,
    SkillVersionFactory,
)
from integrations.models import LLMModel, LLMModelAccess, Skill


@pytest.fixture(autouse=True)
def _english():
    # Messages are asserted in English, whatever an earlier test left active.
    with translation.override("en"):
        yield


@pytest.fixture
def dan(db):
    return UserFactory(username="dan", role=Role.DEVELOPER)


def _llm(**fields) -> LLMModel:
    return LLMModel.objects.create(
        display_name="Demo", provider_type="demo", model_name="demo", **fields
    )


def test_default_config_is_valid(developer):
    assert validate_config(default_config("dialog"), developer=developer) == []


def test_normalize_fills_defaults_and_keeps_given_values():
    config = normalize_config({"agent_type": "reflexion", "model": {"temperature": 0.1}})

    assert config["model"] == {
        "llm_model_id": None,
        "temperature": 0.1,
        "max_tokens": 2048,
        "stream": True,
        "params": {},
    }
    assert config["memory"] == {"type": "database", "window": 20, "compression": False}
    assert config["workflow"] is None


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({"agent_type": "react", "model": {"temperature": 3}}, "$.model.temperature"),
        ({"agent_type": "chatty"}, "$.agent_type"),
        ({}, "$"),
        ({"agent_type": "react", "surprise": 1}, "$"),
        ({"agent_type": "react", "memory": {"window": 0}}, "$.memory.window"),
        ({"agent_type": "react", "builtin_tools": ["rm_rf"]}, "$.builtin_tools[0]"),
        (
            {"agent_type": "react", "skills": [{"skill_id": "nope", "version": "1"}]},
            "$.skills[0].skill_id",
        ),
        (
            {"agent_type": "react", "tool_approval": {"python_exec": "maybe"}},
            "$.tool_approval.python_exec",
        ),
        ({"agent_type": "react", "persona": {"variables": {"1bad": {}}}}, "$.persona.variables"),
    ],
)
def test_schema_problems_carry_json_paths(config, path):
    problems = schema_problems(config)

    assert [p["path"] for p in problems] == [path]
    assert problems[0]["code"] == "schema"


def test_workflow_with_definition_and_template_is_refused():
    config = {"agent_type": "react", "workflow": {"definition": {}, "template_id": "t1"}}

    assert schema_problems(config) == [
        {
            "path": "$.workflow",
            "message": "A workflow is either an inline definition or a template with "
            "parameters, never both.",
            "code": "schema",
        }
    ]


@pytest.mark.parametrize(
    "workflow", [None, {"definition": {"nodes": []}}, {"template_id": "t1", "parameters": {}}]
)
def test_workflow_inline_or_template_is_accepted(workflow):
    assert schema_problems({"agent_type": "plan_execute", "workflow": workflow}) == []


def test_knowledge_base_of_another_user_is_not_accessible(developer, dan):
    private = KnowledgeBaseFactory(owner=dan)
    config = normalize_config(
        {"agent_type": "agentic_rag", "knowledge": {"knowledge_base_ids": [str(private.pk)]}}
    )

    assert validate_config(config, developer=developer) == [
        {
            "path": "$.knowledge.knowledge_base_ids[0]",
            "message": f"Knowledge base {private.pk}: not found or not accessible.",
            "code": "reference",
        }
    ]
    assert validate_config(config, developer=dan) == []


def test_public_and_shared_knowledge_bases_are_usable(developer, dan):
    public = KnowledgeBaseFactory(owner=dan, is_public=True)
    shared = KnowledgeBaseFactory(owner=dan)
    assign_perm("knowledge.view_knowledgebase", developer, shared)
    config = {
        "agent_type": "react",
        "knowledge": {"knowledge_base_ids": [str(public.pk), str(shared.pk)]},
    }

    assert validate_config(config, developer=developer) == []


def test_disabled_knowledge_base_is_not_usable_even_by_its_owner(developer):
    kb = KnowledgeBaseFactory(owner=developer, enabled=False)
    config = {"agent_type": "react", "knowledge": {"knowledge_base_ids": [str(kb.pk)]}}

    assert [p["code"] for p in validate_config(config, developer=developer)] == ["reference"]


def test_private_skill_of_another_user_is_not_accessible(developer, dan):
    theirs = SkillVersionFactory(skill=SkillFactory(owner=dan))
    public = SkillVersionFactory(
        skill=SkillFactory(owner=dan, is_public=True, status=Skill.Status.PUBLISHED)
    )
    config = {
        "agent_type": "react",
        "skills": [
            {"skill_id": str(theirs.skill_id), "version": "1.0.0"},
            {"skill_id": str(public.skill_id), "version": "1.0.0"},
            {"skill_id": str(public.skill_id), "version": "9.9.9"},
        ],
    }

    problems = validate_config(config, developer=developer)

    assert [p["path"] for p in problems] == ["$.skills[0]", "$.skills[2]"]
    assert problems[0]["message"] == (
        f"Skill {theirs.skill_id}@1.0.0: not found or not accessible."
    )


def test_mcp_connection_checks_owner_and_enabled_functions(developer, dan):
    own = MCPConnectionFactory(owner=developer)
    theirs = MCPConnectionFactory(owner=dan)
    config = {
        "agent_type": "react",
        "mcp": [
            {"connection_id": str(own.pk), "enabled_functions": ["search", "delete_all"]},
            {"connection_id": str(theirs.pk)},
        ],
    }

    problems = validate_config(config, developer=developer)

    assert [(p["path"], p["code"]) for p in problems] == [
        ("$.mcp[0].enabled_functions", "reference"),
        ("$.mcp[1].connection_id", "reference"),
    ]


def test_preset_args_only_for_enabled_functions(developer):
    own = MCPConnectionFactory(owner=developer)
    config = {
        "agent_type": "react",
        "mcp": [
            {
                "connection_id": str(own.pk),
                "enabled_functions": ["search"],
                "preset_args": {"fetch": {"url": "x"}},
            }
        ],
    }

    assert [p["path"] for p in validate_config(config, developer=developer)] == [
        "$.mcp[0].preset_args.fetch"
    ]


def test_llm_model_must_be_active_and_allowed(developer, dan):
    usable = _llm()
    inactive = _llm(is_active=False)
    only_dan = _llm()
    LLMModelAccess.objects.create(model=only_dan, user=dan, allow=True)

    def problems_for(model, user):
        config = {"agent_type": "react", "model": {"llm_model_id": str(model.pk)}}
        return [p["path"] for p in validate_config(config, developer=user)]

    assert problems_for(usable, developer) == []
    assert problems_for(inactive, developer) == ["$.model.llm_model_id"]
    assert problems_for(only_dan, developer) == ["$.model.llm_model_id"]
    assert problems_for(only_dan, dan) == []


def test_undeclared_template_variables_are_listed():
    config = normalize_config(
        {
            "agent_type": "dialog",
            "system_prompt": "Hi {{user_name}}, I am {{ nickname }} from {{city}}.",
            "persona": {"variables": {"nickname": {"default": "Bo"}}},
        }
    )

    assert undeclared_variables(config) == ["city"]
