"""Claiming a run on PostgreSQL is one prepared statement that also loads everything the
first model call needs (``chats.runtime.claim_sql``): the run, its agent, version, user and
chat, the version's LLM model and the user's own key for that provider."""

from __future__ import annotations

import pytest
from django.db import connection

from chats.models import Run
from chats.runtime.builder import build_chat_model_sync, prepare
from chats.runtime.execute import Outcome, claim_run
from chats.tests.runtime_helpers import agent_version, chat_run, fake_model, oneoff_run
from integrations.outbound import current_policy
from integrations.tests.factories import UserProviderKeyFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_a_claim_loads_the_run_and_what_its_model_call_needs(
    user, fake_llm, django_assert_num_queries
):
    UserProviderKeyFactory(user=user, provider_type="custom", api_key="sk-users-own-key")
    llm = fake_model(fake_llm)
    version = agent_version(llm, agent_type="dialog")
    run = oneoff_run(user, version, "Hello?")
    current_policy()  # the outbound allowlist setting, cached like any warm process has it

    with django_assert_num_queries(0):  # the claim itself bypasses Django's cursor
        claim = claim_run(str(run.pk))
        ctx = prepare(claim.run)
        model = build_chat_model_sync(ctx)

    assert claim.outcome == Outcome.CLAIMED
    loaded = claim.run
    assert (loaded.status, loaded.attempt) == (Run.Status.RUNNING, 1)
    assert loaded.started_at is not None
    assert loaded.heartbeat_at == loaded.started_at
    assert (loaded.agent.pk, loaded.agent_version.pk, loaded.user.pk) == (
        version.agent_id,
        version.pk,
        user.pk,
    )
    assert loaded.agent_version.config == version.config  # JSON decoded as the ORM does
    assert (ctx.llm_model.pk, ctx.llm_model.api_key) == (llm.pk, llm.api_key)  # decrypted
    assert ctx.own_key.api_key == "sk-users-own-key"
    assert model.client.headers["Authorization"] == "Bearer sk-users-own-key"
    stored = Run.objects.get(pk=run.pk)
    assert (stored.status, stored.attempt) == (Run.Status.RUNNING, 1)
    # psycopg prepared it on this connection: the next claim skips parsing and planning.
    assert connection.connection._prepared._names


def test_a_second_delivery_finds_the_run_taken(user, fake_llm):
    version = agent_version(fake_model(fake_llm), agent_type="dialog")
    run = oneoff_run(user, version, "Hello?")

    assert claim_run(str(run.pk)).outcome == Outcome.CLAIMED
    assert claim_run(str(run.pk)).outcome == Outcome.BUSY  # running, fresh heartbeat
    assert Run.objects.get(pk=run.pk).attempt == 1


def test_a_chat_run_comes_with_its_chat_and_without_a_key_the_model_key_is_used(user, fake_llm):
    llm = fake_model(fake_llm, api_key="sk-the-models-key")
    version = agent_version(llm, agent_type="dialog")
    run = chat_run(user, version, "Hello?")

    claim = claim_run(str(run.pk))
    ctx = prepare(claim.run)

    assert claim.run.chat.pk == run.chat_id
    assert ctx.own_key is None  # loaded: the user has no key of their own
    assert build_chat_model_sync(ctx).client.headers["Authorization"] == "Bearer sk-the-models-key"


def test_a_version_naming_no_model_falls_back_to_the_default(user, fake_llm):
    default = fake_model(fake_llm, is_default=True)
    version = agent_version(None, agent_type="dialog")
    run = oneoff_run(user, version, "Hello?")

    ctx = prepare(claim_run(str(run.pk)).run)

    assert ctx.llm_model.pk == default.pk
