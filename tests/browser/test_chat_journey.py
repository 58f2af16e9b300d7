"""The chat journey in a real browser against the real ASGI server (SPEC §5): install an
agent, open a new chat, watch an answer stream in, stop a long answer, edit a message into a
second branch and switch between branches, export the chat as Markdown; and the phone
layout, where the chat list is a drawer.

Runs in embedded mode (answers on the server's own loop) with the offline demo model,
slowed to one word every ``WORD_DELAY_MS`` so streaming and stopping can be seen.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from accounts.tests.factories import PASSWORD, UserFactory
from agents.tests.factories import InstallFactory
from chats.models import Chat, ChatMessage
from chats.tests.runtime_helpers import agent_version, demo_model

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 812}
WORD_DELAY_MS = 90
# The demo model repeats what it was told (up to 200 characters): a long question makes a
# long answer.
LONG_QUESTION = " ".join(["Please describe the weather in great detail for every city."] * 3)
ANSWER_WITH_CODE = """Here is the **sum**:

```python
def add(a, b):
    return a + b
```

See [the docs](https://example.com/docs)."""


def _demo_agent():
    llm = demo_model(extra_config={"token_delay_ms": WORD_DELAY_MS})
    version = agent_version(llm)
    agent = version.agent
    agent.name = "Demo helper"
    agent.save(update_fields=["name"])
    return agent


def _log_in(page, server, username: str) -> None:
    page.goto(server.url_for("/accounts/login/"))
    page.get_by_label("Username or email").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(server.url_for("/"))


def _squash(text: str) -> str:
    return " ".join(text.split())


def _answers(page):
    return page.locator(".msg-assistant:not(.msg-system-error)")


def _watch_stream(page, answer, *, until: str, timeout: float = 30.0) -> list[str]:
    """Texts of ``answer`` seen while it streams, until it contains ``until``."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = _squash(answer.locator(".msg-body").inner_text())
        if not seen or seen[-1] != text:
            seen.append(text)
        if until in text:
            return seen
        page.wait_for_timeout(40)
    raise AssertionError(f"the answer never showed {until!r}; last seen: {seen[-1:]}")


def test_chat_journey_stream_stop_edit_branches_export(live_server_asgi, page, tmp_path):
    server = live_server_asgi
    UserFactory(username="carol", display_name="Carol")
    agent = _demo_agent()

    # Install the agent and open a new chat from its store page.
    _log_in(page, server, "carol")
    page.goto(server.url_for(f"/agents/{agent.slug}/"))
    page.get_by_role("button", name="Install", exact=True).click()
    page.locator("[data-chat-link]").first.click()
    page.wait_for_url(re.compile(r"/chats/[0-9a-f-]{36}/$"))
    chat = Chat.objects.get(user__username="carol")
    assert page.locator("[data-chat-version]").inner_text() == "v1.0.0"
    composer = page.get_by_label("Message", exact=True)

    # 1. The answer streams in: partial text first, then the whole answer.
    composer.fill("Hello there, agent")
    page.get_by_role("button", name="Send").click()
    answer = _answers(page).nth(0)
    seen = _watch_stream(page, answer, until="Connect a real model")
    final = _squash(answer.locator(".msg-body").inner_text())
    partial = [text for text in seen if text and "Connect a real model" not in text]
    assert partial, seen
    assert all(final.startswith(text) for text in partial[-3:]), (partial[-3:], final)
    page.locator(".chat-panel:not(.is-running)").wait_for()
    assert page.locator(".msg-user .msg-body").nth(0).inner_text() == "Hello there, agent"
    page.screenshot(path=str(tmp_path / "desktop-light-answered.png"))

    # The socket drops while an answer streams: the page reconnects, resumes the run from
    # the last event it saw, and ends with exactly the stored answer.
    composer.fill("Tell me about reconnecting")
    page.get_by_role("button", name="Send").click()
    resumed = _answers(page).nth(1)
    _watch_stream(page, resumed, until="offline demo")
    page.evaluate("window.AgentStore.chats[0].ws.close()")
    page.get_by_role("status").filter(has_text="Reconnecting…").wait_for()
    _watch_stream(page, resumed, until="Connect a real model")
    page.locator(".chat-panel:not(.is-running)").wait_for()
    page.get_by_role("status").filter(has_text="Reconnecting…").wait_for(state="hidden")
    stored = ChatMessage.objects.get(chat=chat, role="assistant", parent__content__contains="recon")
    assert _squash(resumed.locator(".msg-body").inner_text()) == _squash(stored.content)

    # 2. Stop a long answer: it is marked stopped and keeps what was written so far.
    composer.fill(LONG_QUESTION)
    page.get_by_role("button", name="Send").click()
    stop = page.get_by_role("button", name="Stop")
    long_answer = _answers(page).nth(2)
    _watch_stream(page, long_answer, until="You said")
    stop.click()
    long_answer.locator(".msg-flag.stopped").wait_for()
    kept = _squash(long_answer.locator(".msg-body").inner_text())
    assert kept.startswith("I am the offline demo model")
    assert "That is" not in kept
    stored = ChatMessage.objects.get(chat=chat, role="assistant", metadata__cancelled=True)
    assert _squash(stored.content) == kept
    assert not stop.is_visible()

    # 3. Edit the first message: a second branch, answered anew.
    first_question = page.locator(".msg-user").nth(0)
    first_question.get_by_role("button", name="Edit").click()
    editor = first_question.get_by_label("Edit message")
    editor.fill("Hello again, agent")
    first_question.get_by_role("button", name="Save and send").click()
    page.locator(".msg-user[data-id] .branch-switch").wait_for()
    _watch_stream(page, _answers(page).nth(0), until="Connect a real model")
    page.locator(".chat-panel:not(.is-running) .branch-switch").wait_for()
    switcher = page.locator(".msg-user").nth(0).locator(".branch-switch")
    assert _squash(switcher.inner_text()) == "< 2/2 >"
    assert page.locator(".msg-user").count() == 1
    assert page.locator(".msg-user .msg-body").nth(0).inner_text() == "Hello again, agent"

    # Switch back to the first branch: the stopped exchange is there again.
    switcher.get_by_role("button", name="Previous version").click()
    page.locator(".msg-user").nth(1).wait_for()
    assert _squash(page.locator(".msg-user .branch-switch").nth(0).inner_text()) == "< 1/2 >"
    assert [_squash(t) for t in page.locator(".msg-user .msg-body").all_inner_texts()] == [
        "Hello there, agent",
        "Tell me about reconnecting",
        _squash(LONG_QUESTION),
    ]
    assert page.locator(".msg-flag.stopped").count() == 1
    page.screenshot(path=str(tmp_path / "desktop-light-branches.png"), full_page=True)

    # 4. Export: a Markdown file with the messages and the agent version.
    page.get_by_text("Export", exact=True).click()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export Markdown").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".md")
    exported = Path(download.path()).read_text(encoding="utf-8")
    assert "Hello there, agent" in exported
    assert _squash(LONG_QUESTION) in _squash(exported)
    assert "1.0.0" in exported
    assert "Hello again, agent" not in exported  # the branch on screen only

    # Dark theme, same thread.
    chat.user.theme = "dark"
    chat.user.save(update_fields=["theme"])
    page.reload()
    page.locator(".msg-flag.stopped").wait_for()
    assert page.locator("html").get_attribute("data-theme") == "dark"
    page.screenshot(path=str(tmp_path / "desktop-dark.png"), full_page=True)


def test_phone_layout_puts_the_chat_list_in_a_drawer(live_server_asgi, new_page, tmp_path):
    server = live_server_asgi
    user = UserFactory(username="dave", display_name="Dave")
    agent = _demo_agent()
    InstallFactory(user=user, agent=agent)
    chats = [
        Chat.objects.create(
            user=user, agent=agent, agent_version=agent.current_version, title=title
        )
        for title in ("Weekend plans", "Tax questions")
    ]
    question = ChatMessage.objects.create(chat=chats[0], role="user", content="Add 2 and 3")
    ChatMessage.objects.create(
        chat=chats[0],
        parent=question,
        role="assistant",
        content=ANSWER_WITH_CODE,
        agent_version=agent.current_version,
    )
    page = new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    _log_in(page, server, "dave")
    page.goto(server.url_for(f"/chats/{chats[0].pk}/"))

    sidebar = page.get_by_role("complementary", name="Your chats")
    toggle = page.locator(".chat-head").get_by_role("button", name="Chats")
    assert not sidebar.is_visible()
    assert page.get_by_label("Message", exact=True).is_visible()
    page.locator(".msg-assistant .highlight").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") == PHONE["width"]
    page.screenshot(path=str(tmp_path / "phone-chat.png"))

    toggle.click()
    assert sidebar.is_visible()
    assert toggle.get_attribute("aria-expanded") == "true"
    page.screenshot(path=str(tmp_path / "phone-drawer.png"), animations="disabled")
    sidebar.get_by_role("link", name=re.compile("Tax questions")).click()
    page.wait_for_url(server.url_for(f"/chats/{chats[1].pk}/"))
    assert page.locator("[data-chat-title]").inner_text() == "Tax questions"

    user.theme = "dark"
    user.save(update_fields=["theme"])
    page.reload()
    page.get_by_text("Send a message to start chatting with Demo helper.").wait_for()
    page.screenshot(path=str(tmp_path / "phone-dark.png"))
    assert page.evaluate("document.documentElement.scrollWidth") == PHONE["width"]


def test_stored_answers_show_highlighted_code_tool_calls_and_errors(
    live_server_asgi, page, tmp_path
):
    user = UserFactory(username="erin", display_name="Erin")
    agent = _demo_agent()
    version = agent.current_version
    chat = Chat.objects.create(user=user, agent=agent, agent_version=version, title="Sums")
    question = ChatMessage.objects.create(chat=chat, role="user", content="Add 2 and 3")
    first_answer = ChatMessage.objects.create(
        chat=chat,
        parent=question,
        role="assistant",
        content=ANSWER_WITH_CODE,
        agent_version=version,
        metadata={
            "tool_calls": [
                {
                    "id": "call-1",
                    "name": "calculator",
                    "input": {"expression": "2+3"},
                    "output": "5",
                    "status": "completed",
                    "duration_ms": 12,
                }
            ]
        },
    )
    second = ChatMessage.objects.create(
        chat=chat, parent=first_answer, role="user", content="And now 4 and 5?"
    )
    ChatMessage.objects.create(
        chat=chat,
        parent=second,
        role="assistant",
        content="",
        status=ChatMessage.Status.FAILED,
        message_type=ChatMessage.MessageType.ERROR,
        agent_version=version,
        metadata={"error": {"code": "provider_unavailable", "message": "The model is offline."}},
    )
    _log_in(page, live_server_asgi, "erin")
    page.goto(live_server_asgi.url_for(f"/chats/{chat.pk}/"))

    answer = _answers(page).nth(0)
    answer.locator(".highlight").wait_for()
    assert answer.locator(".highlight .k").first.inner_text() == "def"
    assert answer.locator(".msg-body strong").inner_text() == "sum"
    link = answer.locator(".msg-body a")
    assert (link.get_attribute("href"), link.get_attribute("rel")) == (
        "https://example.com/docs",
        "noopener noreferrer nofollow",
    )
    tool = answer.locator("details.tool-call")
    assert _squash(tool.locator("summary").inner_text()) == "TOOL calculator Done · 12 ms"
    assert not tool.locator("pre").first.is_visible()
    tool.locator("summary").click()
    assert tool.locator("pre").all_inner_texts() == ['{\n  "expression": "2+3"\n}', "5"]
    failed = _answers(page).nth(1)
    assert failed.get_by_role("alert").inner_text() == "The model is offline."
    assert failed.locator(".msg-flag.failed").inner_text() == "Failed"

    # A frame the server refuses is answered with an error shown in the thread.
    page.wait_for_function("(c => c.ws && c.ws.readyState === 1)(window.AgentStore.chats[0])")
    page.evaluate("window.AgentStore.chats[0].send({type: 'send_message', content: '   '})")
    refusal = page.locator(".msg-system-error")
    refusal.wait_for()
    assert refusal.inner_text() == "content: Write a message first. (40002)"
    page.screenshot(path=str(tmp_path / "stored-light.png"))
    page.locator("[data-thread]").evaluate("e => e.scrollTo(0, e.scrollHeight)")
    page.screenshot(path=str(tmp_path / "stored-light-bottom.png"))
    # Light and dark themes colour the code differently (Pygments classes, theme CSS).
    light = answer.locator(".highlight .k").first.evaluate("e => getComputedStyle(e).color")
    page.evaluate("document.documentElement.setAttribute('data-theme', 'dark')")
    dark = answer.locator(".highlight .k").first.evaluate("e => getComputedStyle(e).color")
    assert light != dark
    page.screenshot(path=str(tmp_path / "stored-dark.png"), animations="disabled")

    # Regenerate the failed answer: a second answer beside it, with a branch switcher.
    failed.get_by_role("button", name="Regenerate").click()
    _watch_stream(page, _answers(page).nth(1), until="Connect a real model")
    page.locator(".chat-panel:not(.is-running) .msg-assistant .branch-switch").wait_for()
    switcher = _answers(page).nth(1).locator(".branch-switch")
    assert _squash(switcher.inner_text()) == "< 2/2 >"
    assert page.locator(".msg-flag.failed").count() == 0
    assert page.locator(".msg-system-error").count() == 0


def test_developer_test_chat_answers_from_the_draft(live_server_asgi, page, tmp_path):
    from accounts.models import Role
    from chats.tests.runtime_helpers import draft_version

    developer = UserFactory(username="dora", display_name="Dora", role=Role.DEVELOPER)
    llm = demo_model(extra_config={"token_delay_ms": 5})
    agent = agent_version(llm, developer=developer).agent
    draft = draft_version(agent, llm)
    _log_in(page, live_server_asgi, "dora")
    page.goto(live_server_asgi.url_for(f"/portal/agents/{agent.pk}/versions/{draft.pk}/"))

    panel = page.locator("#test-chat")
    panel.get_by_role("button", name="Start a test chat").click()
    page.wait_for_url(re.compile(r"#test-chat$"))
    chat = Chat.objects.get(user=developer)
    assert (chat.is_test, chat.agent_version_id) == (True, draft.pk)
    assert panel.locator("[data-chat-version]").inner_text() == "v9.9.9"
    panel.get_by_label("Message", exact=True).fill("Does the draft work?")
    panel.get_by_role("button", name="Send").click()
    answer = panel.locator(".msg-assistant")
    _watch_stream(page, answer, until="Connect a real model")
    panel.locator(".chat-panel:not(.is-running)").wait_for()
    assert answer.locator(".version-badge").inner_text() == "v9.9.9"
    assert ChatMessage.objects.get(chat=chat, role="assistant").agent_version_id == draft.pk
    panel.screenshot(path=str(tmp_path / "test-chat-panel.png"))
    page.screenshot(path=str(tmp_path / "portal-version.png"), full_page=True)


def test_sidebar_searches_renames_archives_and_deletes_chats(live_server_asgi, page, tmp_path):
    user = UserFactory(username="finn", display_name="Finn")
    agent = _demo_agent()
    version = agent.current_version
    trip, tax, old = (
        Chat.objects.create(user=user, agent=agent, agent_version=version, title=title)
        for title in ("Trip to Hangzhou", "Tax questions", "Old notes")
    )
    _log_in(page, live_server_asgi, "finn")
    page.goto(live_server_asgi.url_for(f"/chats/{trip.pk}/"))
    sidebar = page.get_by_role("complementary", name="Your chats")
    items = sidebar.locator("[data-chat-item]:visible .chat-link-title")
    assert sorted(items.all_inner_texts()) == ["Old notes", "Tax questions", "Trip to Hangzhou"]

    sidebar.get_by_label("Search chats").fill("tax")
    assert items.all_inner_texts() == ["Tax questions"]
    sidebar.get_by_label("Search chats").fill("")

    def item(chat):
        return sidebar.locator(f'[data-chat-item][data-id="{chat.pk}"]')

    item(tax).get_by_label("Actions for Tax questions").click()
    item(tax).get_by_role("button", name="Rename").click()
    item(tax).get_by_label("Chat title").fill("Taxes 2026")
    item(tax).get_by_role("button", name="Save").click()
    item(tax).locator(".chat-link-title", has_text="Taxes 2026").wait_for()
    assert item(tax).locator(".chat-link-title").inner_text() == "Taxes 2026"

    item(old).get_by_label("Actions for Old notes").click()
    item(old).get_by_role("button", name="Archive").click()
    item(old).wait_for(state="detached")

    page.once("dialog", lambda dialog: dialog.accept())
    item(trip).get_by_label("Actions for Trip to Hangzhou").click()
    item(trip).get_by_role("button", name="Delete").click()
    page.wait_for_url(live_server_asgi.url_for("/chats/"))

    statuses = dict(Chat.objects.filter(user=user).values_list("title", "status"))
    assert statuses == {
        "Taxes 2026": "active",
        "Old notes": "archived",
        "Trip to Hangzhou": "deleted",
    }
    page.get_by_role("link", name="Archived").click()
    assert items.all_inner_texts() == ["Old notes"]
    page.screenshot(path=str(tmp_path / "index-archived.png"))
