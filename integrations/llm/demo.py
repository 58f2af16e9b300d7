"""The offline demo model (SPEC §6.1): deterministic, no network, honest about what it is.

It is an AgentScope ``ChatModelBase`` like the real adapters, so the whole pipeline
(Agent loop, tools, RAG, streaming, storage) runs for real on a machine with no keys.
What it answers, given the conversation the Agent sends it:

1. **Tool results this turn** (the Agent called a tool after the latest user message): it
   answers from them — quoting passages with citations if the result contains passages
   (agentic RAG), else "I called <tool> and it returned: …".
2. **A forced tool** (``tool_choice`` names one, e.g. structured output): it calls it.
3. **A tool named in the latest user message** (one of the tool schemas the Agent passed;
   the name as written, with spaces for underscores, or all of its words; MCP tools also
   by their short name): it calls that tool, with arguments parsed from the message:
   ``key=value`` / ``key: value`` pairs, quoted strings, numbers for integer/number
   parameters, a maths expression for an ``expression``-like parameter, a URL for a
   ``url``-like one, enum values, and otherwise the message text for a required string.
   "use current_time" → ``{}``; "calculate 2+3 with calculator" → ``{"expression": "2+3"}``.
4. **Retrieved passages in its context**: it quotes the best-matching ones (word overlap
   with the question; Chinese by characters) with citation markers ``[1]``, ``[2]``.
5. Otherwise: "I am the offline demo model …; you said: …" plus a short elaboration.

Asked to judge a persona (a message in the format :func:`parse_judge_request` reads, sent
by ``chats.persona_check``), it cannot really judge: it answers ``{"score", "reason"}``
JSON from :func:`heuristic_judgment` — the share of the persona's key words found in the
answer — and says so in the reason. The pages label such scores "demo judge (heuristic)".

It streams in word-sized deltas (``extra_config.token_delay_ms`` or
``settings.DEMO_MODEL_TOKEN_DELAY_MS`` between deltas; 0 under tests) and reports token
usage (about 4 characters per token in, one delta per token out).

The passages format (the runtime renders retrieved chunks with :func:`format_passages`
into a system or user message, or returns it from a retrieval tool)::

    <passages>
    [1] (Employee handbook) Refunds are processed within 14 days.
    [2] (FAQ) ...
    </passages>

Each entry starts at a line beginning with ``[n]``; the optional ``(title)`` follows; an
entry runs until the next ``[m]`` line or the closing tag. Only the last ``<passages>``
block found in the context is used.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from integrations.llm.base import Provider, ProviderConfig, TestRequest, register
from integrations.models import ProviderType

DEMO_DISPLAY_NAME = "Demo model (offline)"
DEMO_MODEL_NAME = "demo"
PASSAGES_OPEN = "<passages>"
PASSAGES_CLOSE = "</passages>"
MAX_QUOTE = 280
_FAILED_STATES = frozenset({"error", "denied", "interrupted"})

# --- passages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Passage:
    number: int
    text: str
    title: str = ""


def format_passages(passages: Iterable[Mapping[str, Any] | str]) -> str:
    """Render retrieved passages (dicts with ``text`` and optional ``title``) as above."""
    lines = [PASSAGES_OPEN]
    for number, passage in enumerate(passages, start=1):
        if isinstance(passage, str):
            text, title = passage, ""
        else:
            text, title = str(passage.get("text", "")), str(passage.get("title") or "")
        text = " ".join(text.split())
        lines.append(f"[{number}] ({title}) {text}" if title else f"[{number}] {text}")
    lines.append(PASSAGES_CLOSE)
    return "\n".join(lines)


_ENTRY = re.compile(r"^\[(\d+)\]\s*(?:\(([^)\n]*)\)\s*)?", re.M)


def parse_passages(text: str) -> list[Passage]:
    """The passages of the last ``<passages>`` block in ``text`` (empty if none)."""
    start = text.rfind(PASSAGES_OPEN)
    if start < 0:
        return []
    end = text.find(PASSAGES_CLOSE, start)
    body = text[start + len(PASSAGES_OPEN) : end if end >= 0 else len(text)]
    matches = list(_ENTRY.finditer(body))
    passages = []
    for index, match in enumerate(matches):
        stop = matches[index + 1].start() if index + 1 < len(matches) else len(body)
        content = " ".join(body[match.end() : stop].split())
        if content:
            passages.append(
                Passage(number=int(match.group(1)), text=content, title=match.group(2) or "")
            )
    return passages


def strip_passages(text: str) -> str:
    return re.sub(
        re.escape(PASSAGES_OPEN) + r".*?(" + re.escape(PASSAGES_CLOSE) + r"|$)",
        " ",
        text,
        flags=re.S,
    ).strip()


# --- reading the conversation --------------------------------------------------------------


@dataclass
class Turn:
    """What the demo model looks at in the messages the Agent sends."""

    user_text: str = ""
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_results: list[tuple[str, str, bool]] = field(default_factory=list)  # name, text, error
    called: set[str] = field(default_factory=set)
    passages: list[Passage] = field(default_factory=list)
    forced_tool: str | None = None
    tools_disabled: bool = False
    require_tool: bool = False
    input_chars: int = 0


def _block_text(block: Any) -> str:
    kind = getattr(block, "type", "")
    if kind == "text":
        return block.text
    if kind == "tool_result":
        output = block.output
        if isinstance(output, str):
            return output
        return "\n".join(getattr(item, "text", "") for item in output)
    if kind == "tool_call":
        return block.input or ""
    if kind == "hint":
        hint = block.hint
        return hint if isinstance(hint, str) else " ".join(getattr(h, "text", "") for h in hint)
    return ""


# AgentScope appends instructions such as the structured-output reminder to the user message.
_REMINDER = re.compile(r"<system-reminder>.*?(</system-reminder>|$)", re.S)


def read_turn(messages: list[Any], tools: list[dict] | None, tool_choice: Any) -> Turn:
    turn = Turn(tools=list(tools or []))
    last_user = max(
        (i for i, m in enumerate(messages) if m.role == "user" and m.get_text_content()),
        default=-1,
    )
    context_text: list[str] = []
    for index, message in enumerate(messages):
        for block in message.content:
            text = _block_text(block)
            turn.input_chars += len(text)
            if message.role in {"system", "user"} and block.type == "text":
                context_text.append(text)
            if index > last_user and block.type == "tool_call":
                turn.called.add(block.name)
            if index > last_user and block.type == "tool_result":
                state = str(getattr(block, "state", ""))
                turn.tool_results.append((block.name, text, state in _FAILED_STATES))
    if last_user >= 0:
        text = _REMINDER.sub(" ", messages[last_user].get_text_content() or "")
        turn.user_text = strip_passages(text).strip()
    turn.passages = parse_passages("\n".join(context_text))
    if tools:
        turn.input_chars += len(json.dumps(tools, ensure_ascii=False))
    mode = getattr(tool_choice, "mode", None) if tool_choice is not None else None
    if mode == "none":
        turn.tools_disabled = True
    elif mode == "required":
        turn.require_tool = True
    elif mode and mode != "auto":
        turn.forced_tool = mode
    return turn


# --- tool selection and arguments ------------------------------------------------------------


def _tool_name(tool: Mapping[str, Any]) -> str:
    return str((tool.get("function") or {}).get("name") or tool.get("name") or "")


def _tool_schema(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = tool.get("function") or tool
    schema = function.get("parameters") or {}
    return schema if isinstance(schema, dict) else {}


def _name_variants(name: str) -> list[str]:
    short = name.rsplit("__", 1)[-1]
    variants = {name, short, name.replace("_", " "), short.replace("_", " ")}
    return sorted((v for v in variants if v), key=len, reverse=True)


def _mention_position(name: str, text: str) -> int | None:
    lowered = text.lower()
    for variant in _name_variants(name):
        match = re.search(r"(?<![\w])" + re.escape(variant.lower()) + r"(?![\w])", lowered)
        if match:
            return match.start()
    words = [w for w in re.split(r"[_\W]+", name.rsplit("__", 1)[-1].lower()) if len(w) > 2]
    if len(words) > 1:
        positions = [re.search(r"\b" + re.escape(w), lowered) for w in words]
        if all(positions):
            return min(p.start() for p in positions if p)
    return None


def find_named_tool(turn: Turn) -> dict[str, Any] | None:
    """The tool the user's message names first (by position), if any."""
    best: tuple[int, dict[str, Any]] | None = None
    for tool in turn.tools:
        name = _tool_name(tool)
        if not name or name in turn.called:
            continue
        position = _mention_position(name, turn.user_text)
        if position is not None and (best is None or position < best[0]):
            best = (position, tool)
    return best[1] if best else None


_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")
_EXPRESSION = re.compile(
    r"\(?\s*-?\d+(?:\.\d+)?(?:\s*(?:[-+*/^%]|\*\*)\s*\(?\s*-?\d+(?:\.\d+)?\s*\)?)+\)?"
)
_URL = re.compile(r"https?://[^\s'\"<>]+")
_QUOTED = re.compile(r"\"([^\"]*)\"|'([^']*)'|“([^”]*)”")
_FILLER = r"(?:please\s+)?(?:use|using|call|run|invoke|with|via|the)?\s*(?:the\s+)?"


def _coerce(value: str, prop: Mapping[str, Any]) -> Any:
    kind = prop.get("type")
    value = value.strip().strip(",;.")
    if kind == "integer":
        try:
            return int(float(value))
        except ValueError:
            return value
    if kind == "number":
        try:
            return float(value) if "." in value else int(value)
        except ValueError:
            return value
    if kind == "boolean":
        return value.lower() in {"1", "true", "yes", "on"}
    if kind in {"array", "object"}:
        try:
            return json.loads(value)
        except ValueError:
            return [value] if kind == "array" else {}
    return value


def _free_text(message: str, tool_name: str) -> str:
    text = message
    for variant in _name_variants(tool_name):
        text = re.sub(_FILLER + re.escape(variant) + r"(?:\s+tool)?", " ", text, flags=re.I)
    return " ".join(text.split()).strip(" ,.;:!?")


def tool_arguments(tool: Mapping[str, Any], message: str) -> dict[str, Any]:
    """Arguments for ``tool`` parsed from ``message`` (see the module docstring)."""
    schema = _tool_schema(tool)
    properties: dict[str, Any] = schema.get("properties") or {}
    required = [name for name in schema.get("required") or [] if name in properties]
    args: dict[str, Any] = {}
    names = "|".join(re.escape(name) for name in sorted(properties, key=len, reverse=True))
    if names:
        pair = re.compile(r"(?<![\w])(" + names + r")\s*[=:]\s*(\"[^\"]*\"|'[^']*'|[^\s,;]+)", re.I)
        for match in pair.finditer(message):
            key = next(p for p in properties if p.lower() == match.group(1).lower())
            raw = match.group(2)
            if raw[:1] in {'"', "'"}:
                raw = raw[1:-1]
            args[key] = _coerce(raw, properties[key])
    quoted = [next(g for g in m.groups() if g is not None) for m in _QUOTED.finditer(message)]
    numbers = _NUMBER.findall(_QUOTED.sub(" ", message))
    expression = _EXPRESSION.search(message)
    url = _URL.search(message)
    free = _free_text(message, _tool_name(tool))
    for name in required:
        if name in args:
            continue
        prop = properties[name] or {}
        kind = prop.get("type", "string")
        lowered = name.lower()
        if prop.get("enum"):
            found = [v for v in prop["enum"] if str(v).lower() in message.lower()]
            args[name] = found[0] if found else prop["enum"][0]
        elif kind in {"integer", "number"}:
            if numbers:
                args[name] = _coerce(numbers.pop(0), prop)
        elif kind == "boolean":
            args[name] = False
        elif kind in {"array", "object"}:
            args[name] = [] if kind == "array" else {}
        elif any(hint in lowered for hint in ("expression", "expr", "formula", "math")) and (
            expression
        ):
            args[name] = " ".join(expression.group(0).split())
        elif any(hint in lowered for hint in ("url", "link", "uri")) and url:
            args[name] = url.group(0).rstrip(".,;")
        elif quoted:
            args[name] = quoted.pop(0)
        else:
            args[name] = free
    return args


# --- composing the answer ---------------------------------------------------------------------

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_STOPWORDS = frozenset(
    "the and for are was were what when where which who why how does did can could should "  # noqa: SIM905
    "would will with from that this these those have has had not you your about into there "
    "their they them then than also just any all some more most such use using please tell "
    "give show explain".split()
)


def _is_chinese(text: str) -> bool:
    return bool(_CJK.search(text))


def _terms(text: str) -> set[str]:
    lowered = text.lower()
    words = {w for w in re.findall(r"[a-z0-9]+", lowered) if len(w) > 2 and w not in _STOPWORDS}
    chars = _CJK.findall(lowered)
    words |= set(chars)
    words |= {a + b for a, b in zip(chars, chars[1:], strict=False)}
    return words


def _best_sentence(passage: Passage, query: set[str]) -> str:
    sentences = [s.strip() for s in re.split(r"(?<=[.!?。！？])\s*", passage.text) if s.strip()]
    if not sentences:
        return passage.text[:MAX_QUOTE]
    best = max(sentences, key=lambda s: (len(_terms(s) & query), -sentences.index(s)))
    return best if len(best) <= MAX_QUOTE else best[: MAX_QUOTE - 1] + "…"


def cite(passages: list[Passage], question: str) -> str:
    """Quote the best one or two passages with their citation markers."""
    query = _terms(question)
    scored = sorted(
        ((len(_terms(p.text) & query), -i, p) for i, p in enumerate(passages)),
        key=lambda item: (item[0], item[1]),
        reverse=True,
    )
    chosen = [p for score, _i, p in scored[:2] if score > 0]
    zh = _is_chinese(question)
    if chosen:
        header = "根据检索到的资料：" if zh else "Here is what the retrieved passages say:"
    else:
        chosen = passages[:1]
        header = (
            "检索到的资料中没有明确的答案，最接近的是："
            if zh
            else "None of the retrieved passages answers this clearly; the closest one says:"
        )
    quotes = [f"> {_best_sentence(p, query)} [{p.number}]" for p in chosen]
    footer = (
        "（演示模型：我引用检索到的段落，而不是自己生成答案。）"
        if zh
        else "(Demo model: I quote the retrieved passages instead of writing my own answer.)"
    )
    return "\n\n".join([header, *quotes, footer])


def _answer_from_tools(turn: Turn) -> str:
    for _name, text, _error in turn.tool_results:
        passages = parse_passages(text)
        if passages:
            return cite(passages, turn.user_text)
    zh = _is_chinese(turn.user_text)
    lines = []
    for name, text, error in turn.tool_results:
        output = " ".join(text.split())
        if len(output) > 500:
            output = output[:499] + "…"
        if error:
            lines.append(
                f"工具 {name} 出错：{output}" if zh else f"The {name} tool failed: {output}"
            )
        else:
            lines.append(
                f"我调用了 {name}，结果是：{output}"
                if zh
                else f"I called {name} and it returned: {output}"
            )
    return "\n\n".join(lines)


def _default_answer(turn: Turn) -> str:
    said = " ".join(turn.user_text.split())
    if len(said) > 200:
        said = said[:199] + "…"
    tools = [_tool_name(t) for t in turn.tools if _tool_name(t)]
    if _is_chinese(said):
        text = (
            f"我是离线演示模型，不会真正理解语言，但可以在没有任何 API 密钥的情况下演示本产品。"
            f"你说：“{said}”。这条消息有 {len(said)} 个字符。"
        )
        if tools:
            text += f"在消息中提到工具名即可让我调用它：{'、'.join(tools)}。"
        return text
    words = len(said.split())
    text = (
        "I am the offline demo model: I do not really understand language, but I show how "
        f"this product works without any API key. You said: “{said}”. That is {words} "
        f"word{'s' if words != 1 else ''}."
    )
    if tools:
        text += f" Name one of my tools in your message and I will call it: {', '.join(tools)}."
    else:
        text += " Connect a real model in the admin to get real answers."
    return text


@dataclass
class DemoReply:
    text: str = ""
    tool_name: str | None = None
    tool_args: dict[str, Any] = field(default_factory=dict)


def plan_reply(turn: Turn) -> DemoReply:
    judged = parse_judge_request(turn.user_text)
    if judged is not None:
        return DemoReply(text=json.dumps(heuristic_judgment(*judged), ensure_ascii=False))
    if turn.forced_tool and turn.forced_tool not in turn.called:
        tool = next((t for t in turn.tools if _tool_name(t) == turn.forced_tool), None)
        if tool is not None:
            return DemoReply(
                tool_name=turn.forced_tool, tool_args=tool_arguments(tool, turn.user_text)
            )
    if turn.tool_results:
        return DemoReply(text=_answer_from_tools(turn))
    if not turn.tools_disabled:
        tool = find_named_tool(turn)
        if tool is None and turn.require_tool and turn.tools:
            tool = turn.tools[0]
        if tool is not None:
            return DemoReply(
                tool_name=_tool_name(tool), tool_args=tool_arguments(tool, turn.user_text)
            )
    if turn.passages:
        return DemoReply(text=cite(turn.passages, turn.user_text))
    return DemoReply(text=_default_answer(turn))


# --- the persona judge (a heuristic: the demo model cannot judge) -----------------------------

JUDGE_OPEN, JUDGE_CLOSE = "<persona_consistency_check>", "</persona_consistency_check>"
PERSONA_OPEN, PERSONA_CLOSE = "<persona>", "</persona>"
PROMPT_OPEN, PROMPT_CLOSE = "<user_prompt>", "</user_prompt>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
JUDGE_KEY_WORDS = 8  # this many shared key words (or all of a shorter persona's) score 10
# Labels of the request's example turns, not words of the persona.
_JUDGE_LABELS = frozenset({"example", "turns", "user", "assistant"})


def _between(text: str, opening: str, closing: str) -> str | None:
    start = text.find(opening)
    end = text.find(closing, start + len(opening)) if start >= 0 else -1
    return text[start + len(opening) : end].strip() if end >= 0 else None


def parse_judge_request(text: str) -> tuple[str, str] | None:
    """``(persona, answer)`` from a persona-judge request, or None for any other message."""
    if JUDGE_OPEN not in text:
        return None
    persona = _between(text, PERSONA_OPEN, PERSONA_CLOSE)
    answer = _between(text, ANSWER_OPEN, ANSWER_CLOSE)
    if persona is None or answer is None:
        return None
    return persona, answer


def heuristic_judgment(persona: str, answer: str) -> dict[str, Any]:
    """A deterministic stand-in for a judge: 10 × the share of the persona's key words
    (up to :data:`JUDGE_KEY_WORDS`) that the answer uses, with an honest reason."""
    key_words = _terms(persona) - _JUDGE_LABELS
    shared = sorted(key_words & _terms(answer))
    target = min(len(key_words), JUDGE_KEY_WORDS)
    score = round(10 * min(1.0, len(shared) / target)) if target else 0
    zh = _is_chinese(persona)
    if shared:
        listed = ("、" if zh else ", ").join(shared[:5])
        reason = (
            "演示评审（启发式，并非真正的评估）："
            f"回答用到了人设中的 {len(shared)} 个关键词（{listed}）。"
            if zh
            else f"Demo judge (heuristic, not a real evaluation): the answer uses {len(shared)} "
            f"of the persona's key words ({listed})."
        )
    else:
        reason = (
            "演示评审（启发式，并非真正的评估）：回答没有用到人设中的关键词。"
            if zh
            else "Demo judge (heuristic, not a real evaluation): the answer uses none of the "
            "persona's key words."
        )
    return {"score": score, "reason": reason}


def split_deltas(text: str) -> list[str]:
    """Word-sized pieces (each CJK character on its own), whitespace kept: joins back exactly."""
    return re.findall(r"[\u3400-\u9fff\uf900-\ufaff]|[^\s\u3400-\u9fff\uf900-\ufaff]+\s*|\s+", text)


# --- the AgentScope model ------------------------------------------------------------------


@functools.cache
def demo_chat_model_class() -> type:
    from typing import Literal

    from agentscope.credential import CredentialBase
    from agentscope.formatter import OpenAIChatFormatter
    from agentscope.message import TextBlock, ToolCallBlock
    from agentscope.model import ChatModelBase, ChatResponse, ChatUsage
    from pydantic import BaseModel

    class DemoCredential(CredentialBase):
        type: Literal["demo_credential"] = "demo_credential"

        @classmethod
        def get_chat_model_class(cls) -> type:
            return DemoChatModel

    class DemoChatModel(ChatModelBase):
        """The offline demo model (see the module docstring)."""

        class Parameters(BaseModel):
            max_tokens: int | None = None
            temperature: float | None = None
            token_delay: float = 0.0

        def __init__(
            self,
            model: str = DEMO_MODEL_NAME,
            parameters: DemoChatModel.Parameters | None = None,
            stream: bool = True,
            context_size: int = 32768,
        ) -> None:
            super().__init__(
                credential=DemoCredential(),
                model=model,
                parameters=parameters or self.Parameters(),
                stream=stream,
                max_retries=0,
                context_size=context_size,
            )
            # The Agent reads formatter.supported_input_media_types.
            self.formatter = OpenAIChatFormatter()

        async def _call_api(
            self,
            model_name: str,
            messages: list[Any],
            tools: list[dict] | None = None,
            tool_choice: Any = None,
            **kwargs: Any,
        ) -> Any:
            turn = read_turn(messages, tools, tool_choice)
            reply = plan_reply(turn)
            pieces = split_deltas(reply.text)
            if self.parameters.max_tokens:
                pieces = pieces[: self.parameters.max_tokens]
            arguments = json.dumps(reply.tool_args, ensure_ascii=False)
            usage = ChatUsage(
                input_tokens=max(1, math.ceil(turn.input_chars / 4)),
                output_tokens=len(pieces)
                + (math.ceil(len(arguments) / 4) if reply.tool_name else 0),
                time=0.0,
            )
            call_id = f"call_{uuid.uuid4().hex[:16]}"
            if not self.stream:
                content: list[Any] = []
                if pieces:
                    content.append(TextBlock(text="".join(pieces)))
                if reply.tool_name:
                    content.append(ToolCallBlock(id=call_id, name=reply.tool_name, input=arguments))
                return ChatResponse(content=content, is_last=True, usage=usage)
            return self._stream(pieces, reply.tool_name, arguments, call_id, usage)

        async def _stream(self, pieces, tool_name, arguments, call_id, usage):
            delay = self.parameters.token_delay
            text_id = uuid.uuid4().hex
            for piece in pieces:
                if delay:
                    await asyncio.sleep(delay)
                yield ChatResponse(content=[TextBlock(text=piece, id=text_id)], is_last=False)
            if tool_name:
                middle = max(1, len(arguments) // 2)
                for part in (arguments[:middle], arguments[middle:]):
                    yield ChatResponse(
                        content=[ToolCallBlock(id=call_id, name=tool_name, input=part)],
                        is_last=False,
                    )
            yield ChatResponse(content=[], is_last=False, usage=usage)

    return DemoChatModel


def _token_delay(config: ProviderConfig) -> float:
    configured = config.extra_config.get("token_delay_ms")
    if configured is None:
        default = 0 if getattr(settings, "TESTING", False) else 15
        configured = getattr(settings, "DEMO_MODEL_TOKEN_DELAY_MS", default)
    try:
        return max(0.0, float(configured) / 1000)
    except (TypeError, ValueError):
        return 0.0


@register
class DemoProvider(Provider):
    provider_type = ProviderType.DEMO
    needs_key = False

    def build(self, config: ProviderConfig) -> Any:
        cls = demo_chat_model_class()
        return cls(
            model=config.model_name or DEMO_MODEL_NAME,
            parameters=cls.Parameters(
                max_tokens=config.max_tokens,
                temperature=config.temperature,
                token_delay=_token_delay(config),
            ),
            stream=config.stream,
            context_size=config.context_size or 32768,
        )

    def test_request(self, config: ProviderConfig) -> TestRequest | None:
        return None  # nothing to reach: the demo model always works
