"""Integration models, one module per purpose (STYLE §1): system settings, LLM providers
and models, skills, MCP connections. Each module's models are re-exported here."""

from __future__ import annotations

from integrations.models.llm import (  # noqa: F401
    LLMModel,
    LLMModelAccess,
    ProviderType,
    UserProviderKey,
)
from integrations.models.mcp import MCPConnection as MCPConnection
from integrations.models.skills import Skill as Skill
from integrations.models.skills import SkillVersion as SkillVersion
from integrations.models.system import SystemSetting as SystemSetting
