"""What the model is sent: the conversation path with the memory window, the persona
template rendered safely, few-shot examples."""

from __future__ import annotations

import pytest

from chats.models import ChatMessage
from chats.runtime import persona
from chats.runtime.execute import run_execute
from chats.tests.runtime_helpers import agent_version, chat_run, fake_model

pytestmark = pytest.mark.django_db

HISTORY = [
    ("user", "My name is Ada."),
    ("assistant", "Nice to meet you, Ada."),
    ("user", "I like tea."),
    ("assistant", "Noted."),
]


def sent(fake_llm) -> list[tuple[str, str]]:
    """(role, text) of the messages of the first model call."""
    result = []
    for message in fake_llm.chat_requests[0].body["messages"]:
        content = message["content"]
        text = content if isinstance(content, str) else "".join(c["text"] for c in content)
        result.append((message["role"], text))
    return result


def test_the_whole_path_is_remembered_within_the_window(user, fake_llm):
    version = agent_version(fake_model(fake_llm), agent_type="dialog", system_prompt="Be brief.")
    run = chat_run(user, version, "What do I like?", history=HISTORY)

    run_execute(str(run.pk))

    assert sent(fake_llm) == [("system", "Be brief."), *HISTORY, ("user", "What do I like?")]


def test_the_memory_window_keeps_the_last_messages(user, fake_llm):
    version = agent_version(
        fake_model(fake_llm), agent_type="dialog", system_prompt="Be brief.", memory={"window": 3}
    )
    run = chat_run(user, version, "What do I like?", history=HISTORY)

    run_execute(str(run.pk))

    assert sent(fake_llm) == [
        ("system", "Be brief."),
        ("user", "I like tea."),
        ("assistant", "Noted."),
        ("user", "What do I like?"),
    ]


def test_other_branches_and_failed_answers_are_not_remembered(user, fake_llm):
    version = agent_version(fake_model(fake_llm), agent_type="dialog", system_prompt="Hi.")
    run = chat_run(user, version, "And now?", history=HISTORY[:2])
    first_user = ChatMessage.objects.get(chat=run.chat, content="My name is Ada.")
    answer = ChatMessage.objects.get(chat=run.chat, content="Nice to meet you, Ada.")
    # A sibling branch (an edited first message) and a failed answer on the path.
    ChatMessage.objects.create(chat=run.chat, role="user", content="My name is Bob.")
    ChatMessage.objects.create(
        chat=run.chat, parent=first_user, role="assistant", content="Hello Ada!"
    )
    answer.status = ChatMessage.Status.FAILED
    answer.save(update_fields=["status"])

    run_execute(str(run.pk))

    assert sent(fake_llm) == [
        ("system", "Hi."),
        ("user", "My name is Ada."),
        ("user", "And now?"),
    ]


def test_the_path_is_read_in_one_query_that_skips_the_other_branches(user, fake_llm):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from chats.runtime.builder import conversation_path

    version = agent_version(fake_model(fake_llm), agent_type="dialog", system_prompt="Hi.")
    run = chat_run(user, version, "And now?", history=HISTORY)
    first_user = ChatMessage.objects.get(chat=run.chat, content="My name is Ada.")
    for index in range(30):  # a long abandoned branch below the first message
        ChatMessage.objects.create(
            chat=run.chat, parent=first_user, role="assistant", content=f"Other {index}"
        )

    with CaptureQueriesContext(connection) as queries:
        history, text = conversation_path(run, 20)

    assert len(queries.captured_queries) == 1
    assert "WITH RECURSIVE" in queries.captured_queries[0]["sql"]
    assert history == HISTORY
    assert text == "And now?"
    assert conversation_path(run, 2) == ([HISTORY[-1]], "And now?")


def test_the_persona_template_is_rendered_with_safe_variables(user, fake_llm):
    user.display_name = "Alice {{ agent_name }}"
    user.save(update_fields=["display_name"])
    version = agent_version(
        fake_model(fake_llm),
        agent_type="dialog",
        system_prompt=(
            "You are {{ agent_name }} for {{user_name}} ({{ locale }}). Tone: {{ tone }}. "
            "{{ user.password }} {% load os %} {{ undeclared }}."
        ),
        persona={
            "variables": {"tone": {"default": "formal"}, "topic": {"default": "tea"}},
            "few_shot": [{"user": "Hello", "assistant": "Greetings about {{ topic }}."}],
        },
    )
    run = chat_run(user, version, "Hi")
    run.chat.context = {"variables": {"tone": "casual", "user_name": "Mallory"}}
    run.chat.save(update_fields=["context"])

    run_execute(str(run.pk))

    agent_name = version.agent.name
    assert sent(fake_llm) == [
        (
            "system",
            f"You are {agent_name} for Alice {{{{ agent_name }}}} (en). Tone: casual. "
            "{{ user.password }} {% load os %} .",
        ),
        ("user", "Hello"),
        ("assistant", "Greetings about tea."),
        ("user", "Hi"),
    ]


def test_an_empty_system_prompt_gets_a_default(user, fake_llm):
    version = agent_version(fake_model(fake_llm), agent_type="dialog", system_prompt="")
    run = chat_run(user, version, "Hi")

    run_execute(str(run.pk))

    assert sent(fake_llm)[0] == ("system", f"You are {version.agent.name}, a helpful assistant.")


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hello {{ name }}", "Hello Ada"),
        ("Hello {{name}}!", "Hello Ada!"),
        ("{{ missing }}x", "x"),
        ("{{ name.upper }}", "{{ name.upper }}"),
        ("{{ name|upper }}", "{{ name|upper }}"),
        ("{% for x in y %}{{ name }}{% endfor %}", "{% for x in y %}Ada{% endfor %}"),
        ("{{ trick }}", "{{ name }}"),
        ("", ""),
    ],
)
def test_render_template_only_substitutes_plain_names(template, expected):
    assert persona.render_template(template, {"name": "Ada", "trick": "{{ name }}"}) == expected


def test_persona_overrides_apply_only_to_declared_variables():
    config = {"persona": {"variables": {"tone": {"default": "formal"}}}}
    platform = {"user_name": "alice"}

    variables = persona.persona_variables(
        config, platform=platform, overrides={"tone": "warm", "user_name": "eve", "x": "y"}
    )

    assert variables == {"tone": "warm", "user_name": "alice"}
