"""The persona check (SPEC §6.5): sample prompts answered by a draft, scored by a judge
model, stored on the version, shown in the portal and to reviewers."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from accounts.models import AuditLog, Role
from accounts.tests.factories import UserFactory
from agents import services
from agents.config import default_config
from agents.models import AgentVersion
from agentstore import dispatch
from agentstore.errors import Conflict, NotFound, ValidationFailed
from chats.persona_check import (
    default_prompts,
    parse_judgment,
    persona_check_execute,
    persona_check_run,
)
from chats.tests.runtime_helpers import demo_model, fake_model
from integrations.llm.demo import heuristic_judgment
from tests.fakes.openai_server import Reply

SYSTEM_PROMPT = "You are {{agent_name}}, a certified personal trainer for {{ audience }}."
RENDERED_PROMPT = "You are Coach, a certified personal trainer for beginners."


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def dan(db):
    return UserFactory(username="dan", role=Role.DEVELOPER)


def _config(llm) -> dict:
    config = default_config("dialog")
    config["model"]["llm_model_id"] = str(llm.pk) if llm is not None else None
    config["system_prompt"] = SYSTEM_PROMPT
    config["persona"] = {
        "variables": {"audience": {"default": "beginners"}},
        "few_shot": [{"user": "Hi", "assistant": "Hi! Ready to train?"}],
    }
    return config


def _draft(developer, llm) -> AgentVersion:
    agent = services.agent_create(developer, data={"name": "Coach", "short_description": "Fit."})
    return services.agent_version_create(
        developer, agent=agent, version="0.1.0", changelog="First.", config=_config(llm)
    )


def _run(developer, version, capture, prompts=None) -> AgentVersion:
    with capture(execute=True):
        persona_check_run(developer, version=version, prompts=prompts)
    return AgentVersion.objects.get(pk=version.pk)


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _text(content) -> str:
    """An OpenAI message's text (AgentScope sends content as a list of text blocks)."""
    return "".join(block["text"] for block in content)


def _page(version) -> str:
    return reverse("portal:version", args=[version.agent_id, version.pk])


def _check_url(version) -> str:
    return reverse("portal:version_persona_check", args=[version.agent_id, version.pk])


# --- with a real provider adapter on the fake server ------------------------------------------


def test_answers_and_judgments_from_the_model_are_stored(
    developer, fake_llm, settings, django_capture_on_commit_callbacks
):
    llm = fake_model(fake_llm, display_name="Fake GPT")
    settings.PERSONA_JUDGE_MODEL_ID = str(llm.pk)
    version = _draft(developer, llm)
    fake_llm.queue(
        Reply(text="Hello, I am Coach, your trainer."),
        Reply(text='{"score": 8, "reason": "Stays in the trainer role."}'),
        Reply(text="Let us stretch first."),
        Reply(text='Sure:\n```json\n{"score": 6.5, "reason": "A bit generic."}\n```'),
    )

    version = _run(developer, version, django_capture_on_commit_callbacks, ["Hi!", "Warm-up?"])

    scores = version.persona_scores
    assert scores["status"] == "done"
    assert scores["items"] == [
        {
            "prompt": "Hi!",
            "answer": "Hello, I am Coach, your trainer.",
            "score": 8,
            "reason": "Stays in the trainer role.",
        },
        {
            "prompt": "Warm-up?",
            "answer": "Let us stretch first.",
            "score": 6.5,
            "reason": "A bit generic.",
        },
    ]
    assert scores["average"] == 7.25
    assert scores["progress"] == {"done": 2, "total": 2}
    assert (scores["model"], scores["judge_model"], scores["judge_heuristic"]) == (
        "Fake GPT",
        "Fake GPT",
        False,
    )
    assert scores["checked_at"] is not None
    assert scores["custom_prompts"] is True


def test_the_draft_is_asked_with_its_rendered_persona_and_the_judge_sees_it(
    developer, fake_llm, settings, django_capture_on_commit_callbacks
):
    llm = fake_model(fake_llm)
    settings.PERSONA_JUDGE_MODEL_ID = str(llm.pk)
    version = _draft(developer, llm)
    fake_llm.queue(Reply(text="Squats!"), Reply(text='{"score": 9, "reason": "On topic."}'))

    _run(developer, version, django_capture_on_commit_callbacks, ["Best exercise?"])

    answer_call, judge_call = (r.body for r in fake_llm.chat_requests)
    assert [(m["role"], _text(m["content"])) for m in answer_call["messages"]] == [
        ("system", RENDERED_PROMPT),
        ("user", "Hi"),
        ("assistant", "Hi! Ready to train?"),
        ("user", "Best exercise?"),
    ]
    judge_text = _text(judge_call["messages"][-1]["content"])
    assert "<persona>\n" + RENDERED_PROMPT in judge_text
    assert "<user_prompt>\nBest exercise?\n</user_prompt>" in judge_text
    assert "<answer>\nSquats!\n</answer>" in judge_text
    assert judge_call["temperature"] == 0.0


@pytest.mark.parametrize(
    "judge_reply",
    ["I would say it is quite good.", '{"reason": "no score"}', '{"score": "high"}', ""],
)
def test_an_unparseable_judge_reply_gives_a_null_score(
    developer, fake_llm, settings, django_capture_on_commit_callbacks, judge_reply
):
    llm = fake_model(fake_llm)
    settings.PERSONA_JUDGE_MODEL_ID = str(llm.pk)
    version = _draft(developer, llm)
    fake_llm.queue(
        Reply(text="Hello."),
        Reply(text=judge_reply),
        Reply(text="Stretch."),
        Reply(text='{"score": 4, "reason": "Meh."}'),
    )

    version = _run(developer, version, django_capture_on_commit_callbacks, ["Hi", "Warm-up?"])

    first, second = version.persona_scores["items"]
    assert (first["score"], first["reason"]) == (None, "judge reply could not be parsed")
    assert (second["score"], second["reason"]) == (4, "Meh.")
    assert version.persona_scores["average"] == 4
    assert version.persona_scores["status"] == "done"


def test_a_failing_model_call_is_recorded_on_its_prompt(
    developer, fake_llm, settings, django_capture_on_commit_callbacks
):
    llm = fake_model(fake_llm)
    settings.PERSONA_JUDGE_MODEL_ID = str(llm.pk)
    version = _draft(developer, llm)
    fake_llm.queue(Reply(status=400, error_message="bad"))

    version = _run(developer, version, django_capture_on_commit_callbacks, ["Hi"])

    (item,) = version.persona_scores["items"]
    assert item == {
        "prompt": "Hi",
        "answer": "",
        "score": None,
        "reason": "The agent's model failed: HTTP 400 from provider: the request was rejected",
    }
    assert version.persona_scores["average"] is None


def test_the_check_completes_in_the_background_of_an_embedded_server(
    transactional_db, asgi_server, developer, fake_llm, settings
):
    llm = fake_model(fake_llm, is_default=True)
    version = _draft(developer, llm)
    fake_llm.queue(Reply(text="Hi, I am Coach."), Reply(text='{"score": 9, "reason": "In role."}'))

    persona_check_run(developer, version=version, prompts=["Who are you?"])
    dispatch.wait_for_pending(timeout=30)

    scores = AgentVersion.objects.get(pk=version.pk).persona_scores
    assert scores["status"] == "done"
    assert scores["items"] == [
        {"prompt": "Who are you?", "answer": "Hi, I am Coach.", "score": 9, "reason": "In role."}
    ]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"score": 7, "reason": "Good."}', (7, "Good.")),
        ('{"score": 12, "reason": "Too kind."}', (10, "Too kind.")),
        ('{"score": -3}', (0, "No reason given.")),
        ('```json\n{"score": "9", "reason": "In\\n role."}\n```', (9, "In role.")),
        ('Here you go: {"score": 5.55, "reason": "Half."} Thanks', (5.5, "Half.")),
        ('score: 3, reason: "Broken JSON', (3, "No reason given.")),
        ("{'score': 2, 'reason': \"Single quotes\"}", (2, "Single quotes")),
        ("Nothing useful.", (None, "judge reply could not be parsed")),
        ('{"score": true, "reason": "x"}', (None, "judge reply could not be parsed")),
    ],
)
def test_judge_replies_are_parsed_leniently_and_clamped(reply, expected):
    assert parse_judgment(reply) == expected


# --- offline, with the demo model --------------------------------------------------------------


def test_the_demo_model_checks_offline_with_a_heuristic_judge(
    developer, django_capture_on_commit_callbacks
):
    demo_model(is_default=True)
    version = _draft(developer, None)

    first = _run(developer, version, django_capture_on_commit_callbacks).persona_scores
    second = _run(developer, version, django_capture_on_commit_callbacks).persona_scores

    assert first["status"] == "done"
    assert first["judge_heuristic"] is True
    assert first["judge_model"] == "Demo model (offline)"
    assert [item["prompt"] for item in first["items"]] == default_prompts(agent_name="Coach")
    assert [item["score"] for item in first["items"]] == [1, 1, 0, 0]
    assert first["average"] == 0.5
    assert first["items"][0]["reason"] == (
        "Demo judge (heuristic, not a real evaluation): the answer uses 1 of the persona's "
        "key words (coach)."
    )
    assert [item["reason"] for item in first["items"]] == [
        item["reason"] for item in second["items"]
    ]
    assert all(item["reason"].startswith("Demo judge (heuristic") for item in first["items"])
    assert all(item["answer"].startswith("I am the offline demo model") for item in first["items"])
    assert [item["answer"] for item in first["items"]] == [
        item["answer"] for item in second["items"]
    ]
    assert first["check_id"] != second["check_id"]


def test_the_demo_heuristic_counts_the_personas_key_words_in_the_answer():
    judgment = heuristic_judgment(
        "You are Coach, a certified personal trainer.", "As your coach and trainer: rest."
    )

    assert judgment == {
        "score": 5,
        "reason": "Demo judge (heuristic, not a real evaluation): the answer uses 2 of the "
        "persona's key words (coach, trainer).",
    }


# --- rules ------------------------------------------------------------------------------------


def test_another_developer_cannot_run_a_check_on_my_draft(developer, dan):
    demo_model(is_default=True)
    version = _draft(developer, None)

    with pytest.raises(NotFound):
        persona_check_run(dan, version=version)
    response = _login(dan).post(_check_url(version), {"prompts": ""})
    fragment = _login(dan).get(_check_url(version))

    assert (response.status_code, fragment.status_code) == (404, 404)
    assert AgentVersion.objects.get(pk=version.pk).persona_scores == {}


def test_a_collaborator_can_run_a_check(developer, dan, django_capture_on_commit_callbacks):
    demo_model(is_default=True)
    version = _draft(developer, None)
    services.agent_add_collaborator(developer, agent=version.agent, user=dan)

    version = _run(dan, version, django_capture_on_commit_callbacks, ["Hi"])

    assert version.persona_scores["status"] == "done"
    assert version.persona_scores["requested_by"] == str(dan.pk)


def test_only_drafts_can_be_checked_and_submitting_keeps_the_last_result(
    developer, django_capture_on_commit_callbacks
):
    demo_model(is_default=True)
    version = _draft(developer, None)
    checked = _run(developer, version, django_capture_on_commit_callbacks, ["Hi"]).persona_scores
    with django_capture_on_commit_callbacks(execute=True):
        services.agent_version_submit(developer, version=version)

    with pytest.raises(Conflict):
        persona_check_run(developer, version=AgentVersion.objects.get(pk=version.pk))

    assert AgentVersion.objects.get(pk=version.pk).persona_scores == checked


def test_a_second_check_waits_for_the_first(developer):
    demo_model(is_default=True)
    version = _draft(developer, None)
    persona_check_run(developer, version=version)  # on-commit work never runs here

    with pytest.raises(Conflict):
        persona_check_run(developer, version=version)


def test_a_superseded_check_stores_nothing(developer, django_capture_on_commit_callbacks):
    demo_model(is_default=True)
    version = _draft(developer, None)
    old = persona_check_run(developer, version=version, prompts=["Old"])
    AgentVersion.objects.filter(pk=version.pk).update(persona_scores={})
    newer = _run(developer, version, django_capture_on_commit_callbacks, ["New"]).persona_scores

    assert persona_check_execute(str(version.pk), old["check_id"]) == "noop"
    assert AgentVersion.objects.get(pk=version.pk).persona_scores == newer


@pytest.mark.parametrize(
    ("prompts", "message"),
    [
        (["a", "b", "c", "d", "e", "f"], "Give at most 5 prompts (one per line)."),
        (["x" * 1001], "Each prompt can have at most 1000 characters."),
    ],
)
def test_too_many_or_too_long_prompts_are_refused(developer, prompts, message):
    demo_model(is_default=True)
    version = _draft(developer, None)

    with pytest.raises(ValidationFailed) as caught:
        persona_check_run(developer, version=version, prompts=prompts)

    assert caught.value.details == {"prompts": [message]}


def test_without_a_judge_model_the_check_does_not_start(developer):
    version = _draft(developer, None)

    with pytest.raises(ValidationFailed) as caught:
        persona_check_run(developer, version=version)

    assert caught.value.message == (
        "No default model is configured; ask an administrator to set one."
    )


def test_starting_and_finishing_a_check_are_audited(developer, django_capture_on_commit_callbacks):
    demo_model(is_default=True)
    version = _draft(developer, None)

    scores = _run(developer, version, django_capture_on_commit_callbacks, ["Hi"]).persona_scores

    logs = AuditLog.objects.filter(object_id=str(version.pk), action__startswith="agent_version.p")
    assert sorted(logs.values_list("action", "actor__username")) == [
        ("agent_version.persona_check", "dora"),
        ("agent_version.persona_check_finish", "dora"),
    ]
    finish = logs.get(action="agent_version.persona_check_finish")
    assert finish.detail["average"] == scores["average"]


# --- pages ------------------------------------------------------------------------------------


def test_the_portal_panel_offers_the_check_on_a_draft(developer):
    demo_model(is_default=True)
    version = _draft(developer, None)

    response = _login(developer).get(_page(version))

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="persona-check"' in html
    assert "Run persona check" in html
    assert "No persona check has run for this version." in html


def test_running_from_the_portal_shows_scores(developer, django_capture_on_commit_callbacks):
    demo_model(is_default=True)
    version = _draft(developer, None)
    client = _login(developer)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(_check_url(version), {"prompts": "Hi coach\nWhat now?"})
    page = client.get(_page(version)).content.decode()

    scores = AgentVersion.objects.get(pk=version.pk).persona_scores
    assert response.status_code == 302
    assert response["Location"] == _page(version) + "#persona-check"
    assert [item["prompt"] for item in scores["items"]] == ["Hi coach", "What now?"]
    assert "demo judge (heuristic)" in page
    assert f"{scores['average']} / 10" in page
    assert "What now?" in page
    assert "data-active" not in page


def test_the_panel_fragment_is_polled_while_a_check_is_pending(developer):
    demo_model(is_default=True)
    version = _draft(developer, None)
    persona_check_run(developer, version=version)

    response = _login(developer).get(_check_url(version))

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section class="card" id="persona-check"')
    assert "data-active" in html
    assert "0 of 4 prompts checked." in html


def test_a_result_is_marked_out_of_date_when_the_draft_changes(
    developer, django_capture_on_commit_callbacks
):
    demo_model(is_default=True)
    version = _draft(developer, None)
    _run(developer, version, django_capture_on_commit_callbacks, ["Hi"])
    config = {**_config(None), "system_prompt": "You are a pirate."}
    services.agent_version_update(developer, version=version, data={"config": config})

    html = _login(developer).get(_page(version)).content.decode()

    assert "The configuration changed after this check; run it again." in html


def test_reviewers_see_the_scores_in_the_admin(
    developer, reviewer, fake_llm, settings, django_capture_on_commit_callbacks
):
    llm = fake_model(fake_llm, is_default=True)
    version = _draft(developer, llm)
    fake_llm.queue(Reply(text="Hi, I am Coach."), Reply(text='{"score": 9, "reason": "In role."}'))
    _run(developer, version, django_capture_on_commit_callbacks, ["Who are you?"])
    with django_capture_on_commit_callbacks(execute=True):
        services.agent_version_submit(developer, version=version)
    settings.LANGUAGE_CODE = "en"

    response = _login(reviewer).get(reverse("admin:agents_agentversion_change", args=[version.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert "data-persona-scores" in html
    assert "Average score: 9 / 10" in html
    assert "Who are you?" in html
    assert "In role." in html
