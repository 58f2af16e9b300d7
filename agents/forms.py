"""Forms of the store website and the developer portal.

Forms only parse and validate input; every write goes through ``agents.services``. The
version form offers only what the developer may use (models, skills, MCP connections and
knowledge bases from the scoped selectors) and turns the fields into the configuration
snapshot. Its "Advanced: JSON" textarea stays editable: when its text differs from the
JSON the page was rendered with, the JSON is saved instead of the fields.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from agents import selectors
from agents.config import BUILTIN_TOOLS, MEMORY_TYPES, normalize_config
from agents.models import Agent, AgentType
from agents.semver import validate_semver

MIN_RATING_CHOICES = [
    ("", _("Any rating")),
    ("4", _("4 stars and up")),
    ("3", _("3 stars and up")),
    ("2", _("2 stars and up")),
]
SORT_CHOICES = [
    ("relevance", _("Best match")),
    ("popular", _("Most installed")),
    ("rating", _("Top rated")),
    ("newest", _("Newest")),
    ("name", _("Name")),
]
SORT_ORDERING = {
    "popular": ("-install_count", "-rating_avg", "name"),
    "rating": ("-rating_avg", "-rating_count", "name"),
    "newest": ("-published_at", "name"),
    "name": ("name", "pk"),
}
BUILTIN_TOOL_LABELS = {
    "current_time": _("Current time"),
    "python_exec": _("Run Python in the sandbox"),
    "knowledge_search": _("Knowledge search"),
    "text_to_sql": _("Text to SQL (read-only database)"),
}
MEMORY_LABELS = {
    "in_memory": _("In memory (this chat only)"),
    "database": _("Database (chat history)"),
    "long_term": _("Long-term memory"),
}


class StoreSearchForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False, max_length=200)
    category = forms.CharField(label=_("Category"), required=False, max_length=100)
    tag = forms.CharField(label=_("Tag"), required=False, max_length=60)
    type = forms.ChoiceField(
        label=_("Agent type"),
        required=False,
        choices=[("", _("Any type")), *AgentType.choices],
    )
    min_rating = forms.ChoiceField(
        label=_("Minimum rating"), required=False, choices=MIN_RATING_CHOICES
    )
    sort = forms.ChoiceField(
        label=_("Sort by"),
        required=False,
        choices=SORT_CHOICES,
        widget=forms.Select(attrs={"data-autosubmit-sort": ""}),
    )

    def __init__(self, *args, categories: list[dict[str, Any]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"].widget = forms.Select(
            choices=[("", _("All categories"))]
            + [
                (node["slug"], "\u2003" * node["depth"] + node["name"])
                for node in (categories or [])
            ]
        )


class RatingForm(forms.Form):
    stars = forms.TypedChoiceField(
        label=_("Your rating"),
        coerce=int,
        choices=[(n, n) for n in range(5, 0, -1)],
        widget=forms.RadioSelect,
    )
    text = forms.CharField(
        label=_("Your review"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class ReplyForm(forms.Form):
    reply = forms.CharField(
        label=_("Reply"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Shown under the review. Leave empty to remove your reply."),
    )


# --- developer portal ---------------------------------------------------------------------


class AgentListingForm(forms.Form):
    """The store listing of an agent (not its configuration)."""

    name = forms.CharField(label=_("Name"), max_length=100)
    short_description = forms.CharField(
        label=_("Short description"),
        max_length=200,
        required=False,
        help_text=_("One sentence shown on cards and in search results."),
    )
    description = forms.CharField(
        label=_("Description"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text=_("Markdown. Scripts, frames and unsafe links are removed."),
    )
    icon = forms.CharField(
        label=_("Icon"),
        max_length=500,
        required=False,
        help_text=_("An emoji (for example 🤖) or an image URL."),
    )
    category = forms.ChoiceField(label=_("Category"), required=False)
    tags = forms.CharField(
        label=_("Tags"),
        required=False,
        max_length=600,
        help_text=_("Comma-separated, at most 10."),
    )
    mode = forms.ChoiceField(label=_("Mode"), choices=Agent.Mode.choices, initial=Agent.Mode.CHAT)

    def __init__(self, *args, categories: list[dict[str, Any]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"].choices = [("", _("No category"))] + [
            (str(node["id"]), "\u2003" * node["depth"] + node["name"])
            for node in (categories or [])
        ]

    @staticmethod
    def initial_for(agent: Agent) -> dict[str, Any]:
        return {
            "name": agent.name,
            "short_description": agent.short_description,
            "description": agent.description,
            "icon": agent.icon,
            "category": str(agent.category_id or ""),
            "tags": ", ".join(tag.name for tag in agent.tags.all()),
            "mode": agent.mode,
        }

    def service_data(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["category"] = data["category"] or None
        data["tags"] = [name.strip() for name in data["tags"].split(",") if name.strip()]
        return data


class AgentCreateForm(AgentListingForm):
    agent_type = forms.ChoiceField(
        label=_("Agent type"),
        choices=AgentType.choices,
        initial=AgentType.REACT,
        help_text=_("How the agent works; the first draft version starts with its defaults."),
    )


class NewVersionForm(forms.Form):
    version = forms.CharField(
        label=_("Version"),
        max_length=64,
        validators=[validate_semver],
        help_text=_("A semantic version greater than the latest one, such as 1.1.0."),
    )


class SubmitForm(forms.Form):
    changelog = forms.CharField(
        label=_("Changelog"),
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("What changed in this version; shown in the store's version history."),
    )


class PersonaCheckForm(forms.Form):
    """The persona check's own sample prompts (optional; the check's service validates
    how many and how long)."""

    prompts = forms.CharField(
        label=_("Sample prompts"),
        required=False,
        max_length=6000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_(
            "One per line, at most 5. Empty: a greeting, two questions in the persona's "
            "domain and a request to leave the role."
        ),
    )

    def prompt_list(self) -> list[str] | None:
        lines = [line.strip() for line in self.cleaned_data.get("prompts", "").splitlines()]
        return [line for line in lines if line] or None


def _parse_variables(text: str) -> dict[str, dict[str, str]]:
    """``name = default  # description`` per line."""
    variables: dict[str, dict[str, str]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        body, _hash, description = line.partition("#")
        name, equals, default = body.partition("=")
        name = name.strip()
        if not name or not name.replace("_", "a").isalnum() or name[0].isdigit():
            raise forms.ValidationError(
                _("Line %(n)d: write name = default value (letters, digits and _ in names)."),
                params={"n": number},
            )
        entry = {"default": default.strip() if equals else ""}
        if description.strip():
            entry["description"] = description.strip()
        variables[name] = entry
    return variables


def _format_variables(variables: dict[str, Any]) -> str:
    lines = []
    for name, entry in (variables or {}).items():
        entry = entry if isinstance(entry, dict) else {}
        line = f"{name} = {entry.get('default', '')}".rstrip()
        if entry.get("description"):
            line += f"  # {entry['description']}"
        lines.append(line)
    return "\n".join(lines)


def _parse_few_shot(text: str) -> list[dict[str, str]]:
    """Blocks of ``User: …`` followed by ``Assistant: …`` (continuation lines allowed)."""
    examples: list[dict[str, str]] = []
    current: dict[str, list[str]] | None = None
    role = None
    for raw in text.splitlines():
        stripped = raw.strip()
        lowered = stripped.lower()
        if lowered.startswith("user:"):
            if current is not None:
                examples.append(current)
            current, role = {"user": [stripped[5:].strip()], "assistant": []}, "user"
        elif lowered.startswith("assistant:") and current is not None:
            current["assistant"].append(stripped[10:].strip())
            role = "assistant"
        elif current is not None and role is not None:
            current[role].append(raw.rstrip())
        elif stripped:
            raise forms.ValidationError(_("Start each example with a line beginning 'User:'."))
    if current is not None:
        examples.append(current)
    result = []
    for example in examples:
        user = "\n".join(example["user"]).strip()
        assistant = "\n".join(example["assistant"]).strip()
        if not user or not assistant:
            raise forms.ValidationError(
                _("Every example needs a 'User:' line and an 'Assistant:' line.")
            )
        result.append({"user": user, "assistant": assistant})
    return result


def _format_few_shot(examples: list[Any]) -> str:
    blocks = []
    for example in examples or []:
        if isinstance(example, dict):
            blocks.append(
                f"User: {example.get('user', '')}\nAssistant: {example.get('assistant', '')}"
            )
    return "\n\n".join(blocks)


def _parse_tool_approval(text: str) -> dict[str, str]:
    approval: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        name, _colon, mode = line.rpartition(":")
        name, mode = name.strip(), mode.strip().lower()
        if not name or mode not in {"ask", "allow"}:
            raise forms.ValidationError(
                _("Line %(n)d: write tool name: ask (or allow)."), params={"n": number}
            )
        approval[name] = mode
    return approval


def config_json(config: dict[str, Any]) -> str:
    return json.dumps(config, ensure_ascii=False, indent=2, sort_keys=False)


class _LabelledChoice(forms.ModelMultipleChoiceField):
    def __init__(self, *args, label_fn=str, **kwargs):
        self._label_fn = label_fn
        super().__init__(*args, **kwargs)

    def label_from_instance(self, obj) -> str:
        return self._label_fn(obj)


class VersionConfigForm(forms.Form):
    """A draft version: its number, changelog and the configuration snapshot."""

    version = forms.CharField(label=_("Version"), max_length=64, validators=[validate_semver])
    changelog = forms.CharField(
        label=_("Changelog"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    agent_type = forms.ChoiceField(label=_("Agent type"), choices=AgentType.choices)
    llm_model = forms.ModelChoiceField(
        label=_("Model"),
        queryset=None,
        required=False,
        empty_label=_("Platform default model"),
        to_field_name="pk",
    )
    temperature = forms.FloatField(label=_("Temperature"), min_value=0, max_value=2)
    max_tokens = forms.IntegerField(label=_("Max tokens"), min_value=1, max_value=1_000_000)
    stream = forms.BooleanField(label=_("Stream tokens"), required=False)
    system_prompt = forms.CharField(
        label=_("System prompt"),
        required=False,
        max_length=50000,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text=_(
            "Use {{ variable }} for persona variables; {{ user_name }}, {{ date }}, "
            "{{ time }}, {{ locale }} and {{ agent_name }} are always available."
        ),
    )
    persona_variables = forms.CharField(
        label=_("Persona variables"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "code"}),
        help_text=_("One per line: name = default value  # description"),
    )
    few_shot = forms.CharField(
        label=_("Few-shot examples"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "class": "code"}),
        help_text=_("Lines starting with 'User:' and 'Assistant:'; a blank line between examples."),
    )
    memory_type = forms.ChoiceField(
        label=_("Memory"), choices=[(value, MEMORY_LABELS[value]) for value in MEMORY_TYPES]
    )
    memory_window = forms.IntegerField(
        label=_("Working memory (messages)"), min_value=1, max_value=500
    )
    memory_compression = forms.BooleanField(label=_("Compress older messages"), required=False)
    builtin_tools = forms.MultipleChoiceField(
        label=_("Built-in tools"),
        required=False,
        choices=[(value, BUILTIN_TOOL_LABELS[value]) for value in BUILTIN_TOOLS],
        widget=forms.CheckboxSelectMultiple,
    )
    skill_versions = _LabelledChoice(
        label=_("Skills"),
        queryset=None,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label_fn=lambda obj: f"{obj.skill.name} {obj.version}",
    )
    mcp_connections = _LabelledChoice(
        label=_("MCP connections"),
        queryset=None,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Every tool of a connection is enabled; narrow them down in the JSON."),
    )
    knowledge_bases = _LabelledChoice(
        label=_("Knowledge bases"),
        queryset=None,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    top_k = forms.IntegerField(label=_("Passages retrieved (top k)"), min_value=1, max_value=50)
    rerank = forms.BooleanField(label=_("Rerank passages"), required=False)
    tool_approval = forms.CharField(
        label=_("Tool approval"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "code"}),
        help_text=_("One per line: tool name: ask (the user confirms each call) or allow."),
    )
    config_json = forms.CharField(
        label=_("Advanced: configuration JSON"),
        required=False,
        widget=forms.Textarea(
            attrs={
                "rows": 18,
                "class": "code",
                "spellcheck": "false",
                "data-msg-edited": _(
                    "The JSON has changed: it will be saved, and the fields above are ignored."
                ),
                "data-msg-invalid": _("Not valid JSON yet:"),
            }
        ),
        help_text=_(
            "Edit the JSON directly for anything the fields above do not offer. When you "
            "change it, the JSON is saved and the fields above are ignored."
        ),
    )
    config_json_original = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, data=None, *, developer, version, **kwargs):
        self.developer = developer
        self.version_obj = version
        self.base_config = normalize_config(copy.deepcopy(version.config or {}))
        if data is None:
            kwargs.setdefault("initial", self.initial_from_config(version, self.base_config))
        super().__init__(data, **kwargs)
        self.fields["llm_model"].queryset = selectors.llm_models_usable_by(developer)
        self.fields["skill_versions"].queryset = selectors.skill_versions_usable_by(
            developer
        ).order_by("skill__name", "version")
        self.fields["mcp_connections"].queryset = selectors.mcp_connections_usable_by(
            developer
        ).order_by("name")
        self.fields["knowledge_bases"].queryset = selectors.knowledge_bases_usable_by(
            developer
        ).order_by("name")
        if not self.is_bound:
            pinned = {
                (str(entry.get("skill_id")), entry.get("version"))
                for entry in self.base_config.get("skills") or []
                if isinstance(entry, dict)
            }
            if pinned:
                self.initial["skill_versions"] = [
                    sv.pk
                    for sv in self.fields["skill_versions"].queryset
                    if (str(sv.skill_id), sv.version) in pinned
                ]

    @staticmethod
    def initial_from_config(version, config: dict[str, Any]) -> dict[str, Any]:
        model = config.get("model") or {}
        memory = config.get("memory") or {}
        knowledge = config.get("knowledge") or {}
        persona = config.get("persona") or {}
        text = config_json(config)
        return {
            "version": version.version,
            "changelog": version.changelog,
            "agent_type": config.get("agent_type"),
            "llm_model": model.get("llm_model_id"),
            "temperature": model.get("temperature"),
            "max_tokens": model.get("max_tokens"),
            "stream": model.get("stream", True),
            "system_prompt": config.get("system_prompt", ""),
            "persona_variables": _format_variables(persona.get("variables") or {}),
            "few_shot": _format_few_shot(persona.get("few_shot") or []),
            "memory_type": memory.get("type"),
            "memory_window": memory.get("window"),
            "memory_compression": memory.get("compression", False),
            "builtin_tools": config.get("builtin_tools") or [],
            "skill_versions": [],  # resolved in __init__ (needs the usable skill versions)
            "mcp_connections": [entry.get("connection_id") for entry in config.get("mcp") or []],
            "knowledge_bases": knowledge.get("knowledge_base_ids") or [],
            "top_k": knowledge.get("top_k"),
            "rerank": knowledge.get("rerank", False),
            "tool_approval": "\n".join(
                f"{name}: {mode}" for name, mode in (config.get("tool_approval") or {}).items()
            ),
            "config_json": text,
            "config_json_original": text,
        }

    def clean_persona_variables(self) -> dict[str, Any]:
        return _parse_variables(self.cleaned_data.get("persona_variables") or "")

    def clean_few_shot(self) -> list[dict[str, str]]:
        return _parse_few_shot(self.cleaned_data.get("few_shot") or "")

    def clean_tool_approval(self) -> dict[str, str]:
        return _parse_tool_approval(self.cleaned_data.get("tool_approval") or "")

    @property
    def json_edited(self) -> bool:
        """Did the developer change the JSON? Compared as data, not text: browsers send
        textarea line breaks as CRLF, and re-indenting changes nothing."""
        edited = self.data.get("config_json") or ""
        original = self.data.get("config_json_original") or ""
        try:
            return json.loads(edited) != json.loads(original)
        except json.JSONDecodeError:
            return edited.strip() != original.strip()

    def full_clean(self) -> None:
        super().full_clean()
        if self.is_bound and self.json_edited:
            # The JSON wins: errors of the (ignored) fields must not block saving it.
            self._errors = {
                key: value
                for key, value in self._errors.items()
                if key in {"version", "changelog", "config_json", "__all__"}
            }

    def clean_config_json(self) -> dict[str, Any] | None:
        if not self.json_edited:
            return None
        try:
            value = json.loads(self.cleaned_data.get("config_json") or "")
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                _("Not valid JSON: %(error)s"), params={"error": str(exc)}
            ) from exc
        if not isinstance(value, dict):
            raise forms.ValidationError(_("The configuration must be a JSON object."))
        return value

    def build_config(self) -> dict[str, Any]:
        """The configuration to save: the edited JSON, or the fields applied on top of the
        version's current configuration (keeping what the fields do not cover)."""
        data = self.cleaned_data
        if data.get("config_json") is not None:
            return data["config_json"]
        config = copy.deepcopy(self.base_config)
        config["agent_type"] = data["agent_type"]
        model = config.setdefault("model", {})
        model["llm_model_id"] = str(data["llm_model"].pk) if data.get("llm_model") else None
        model["temperature"] = data["temperature"]
        model["max_tokens"] = data["max_tokens"]
        model["stream"] = bool(data.get("stream"))
        config["system_prompt"] = data.get("system_prompt") or ""
        config["persona"] = {
            **(config.get("persona") or {}),
            "variables": data.get("persona_variables") or {},
            "few_shot": data.get("few_shot") or [],
        }
        config["memory"] = {
            **(config.get("memory") or {}),
            "type": data["memory_type"],
            "window": data["memory_window"],
            "compression": bool(data.get("memory_compression")),
        }
        config["builtin_tools"] = list(data.get("builtin_tools") or [])
        config["skills"] = [
            {"skill_id": str(sv.skill_id), "version": sv.version}
            for sv in data.get("skill_versions") or []
        ]
        previous_mcp = {
            str(entry.get("connection_id")): entry
            for entry in config.get("mcp") or []
            if isinstance(entry, dict)
        }
        config["mcp"] = [
            previous_mcp.get(
                str(conn.pk),
                {"connection_id": str(conn.pk), "enabled_functions": [], "preset_args": {}},
            )
            for conn in data.get("mcp_connections") or []
        ]
        config["knowledge"] = {
            **(config.get("knowledge") or {}),
            "knowledge_base_ids": [str(kb.pk) for kb in data.get("knowledge_bases") or []],
            "top_k": data["top_k"],
            "rerank": bool(data.get("rerank")),
        }
        config["tool_approval"] = data.get("tool_approval") or {}
        return config
