"""The LLM model and provider-key API: permissions, has_api_key only, no key anywhere."""

from __future__ import annotations

import json
import logging

import pytest
from rest_framework.test import APIClient

from accounts.models import AuditLog, Role
from integrations.models import LLMModel, UserProviderKey
from integrations.tests.factories import (
    LLMModelAccessFactory,
    LLMModelFactory,
    UserProviderKeyFactory,
)

pytestmark = pytest.mark.django_db

SECRET = "sk-live-very-secret-key-0042"


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def admin_client(admin_user) -> APIClient:
    return _client(admin_user)


def _create_payload(**overrides):
    payload = {
        "display_name": "GPT test",
        "provider_type": "openai",
        "model_name": "gpt-4o-mini",
        "api_key": SECRET,
        "price_input_per_1k": "0.15",
        "price_output_per_1k": "0.6",
    }
    payload.update(overrides)
    return payload


# --- listing ----------------------------------------------------------------------------------


def test_list_shows_users_only_the_models_they_may_use(auth_client, other_user):
    open_model = LLMModelFactory(display_name="Open", api_key=SECRET)
    LLMModelAccessFactory(model=LLMModelFactory(display_name="Bob only"), user=other_user)
    LLMModelFactory(display_name="Off", is_active=False)

    response = auth_client.get("/api/v1/llm-models")

    body = response.json()
    assert response.status_code == 200
    assert [item["id"] for item in body["data"]["items"]] == [str(open_model.pk)]
    assert body["data"]["items"][0]["has_api_key"] is True
    assert "base_url" not in body["data"]["items"][0]


def test_list_for_admins_includes_inactive_models_and_access_rules(admin_client, user):
    model = LLMModelFactory(display_name="A", is_active=False)
    LLMModelAccessFactory(model=model, user=user)

    items = admin_client.get("/api/v1/llm-models").json()["data"]["items"]

    assert [(i["display_name"], i["is_active"]) for i in items] == [("A", False)]
    assert items[0]["access_rules"] == [{"role": "", "user": str(user.pk), "allow": True}]


def test_list_needs_authentication(api_client):
    response = api_client.get("/api/v1/llm-models")

    assert (response.status_code, response.json()["code"]) == (401, 40101)


def test_a_model_the_user_may_not_use_is_not_found(auth_client, other_user):
    model = LLMModelFactory()
    LLMModelAccessFactory(model=model, user=other_user)

    response = auth_client.get(f"/api/v1/llm-models/{model.pk}")

    assert (response.status_code, response.json()["code"]) == (404, 40401)


def test_list_takes_a_constant_number_of_queries(admin_client, django_assert_num_queries):
    for _ in range(4):
        LLMModelAccessFactory(model=LLMModelFactory(), role=Role.USER)

    # session-less auth: count + page + access-rule prefetch
    with django_assert_num_queries(3):
        admin_client.get("/api/v1/llm-models")


# --- writes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.USER, Role.DEVELOPER, Role.REVIEWER])
def test_non_admins_cannot_create_models(role):
    from accounts.tests.factories import UserFactory

    response = _client(UserFactory(role=role)).post(
        "/api/v1/llm-models", _create_payload(), format="json"
    )

    assert (response.status_code, response.json()["code"]) == (403, 40301)
    assert LLMModel.objects.count() == 0


def test_admin_creates_a_model_and_sees_only_has_api_key(admin_client):
    response = admin_client.post("/api/v1/llm-models", _create_payload(), format="json")

    body = response.json()
    model = LLMModel.objects.get()
    assert response.status_code == 201
    assert body["data"]["has_api_key"] is True
    assert "api_key" not in body["data"]
    assert SECRET not in response.content.decode()
    assert model.api_key == SECRET
    assert AuditLog.objects.filter(action="llm_model.create", object_id=str(model.pk)).exists()


def test_role_admin_without_superuser_may_manage_models():
    from accounts.tests.factories import UserFactory

    client = _client(UserFactory(role=Role.ADMIN))

    response = client.post("/api/v1/llm-models", _create_payload(), format="json")

    assert response.status_code == 201


def test_create_validates_type_dependent_fields(admin_client):
    response = admin_client.post(
        "/api/v1/llm-models",
        _create_payload(provider_type="azure_openai", base_url=""),
        format="json",
    )

    body = response.json()
    assert (response.status_code, body["code"]) == (400, 40002)
    assert set(body["details"]) == {"base_url", "extra_config"}


def test_create_rejects_unknown_fields(admin_client):
    response = admin_client.post(
        "/api/v1/llm-models", _create_payload(api_kee="typo"), format="json"
    )

    assert (response.status_code, response.json()["details"]) == (
        400,
        {"api_kee": ["Unknown field."]},
    )


def test_making_a_model_default_unsets_the_previous_default(admin_client):
    old = LLMModelFactory(is_default=True)

    response = admin_client.post(
        "/api/v1/llm-models", _create_payload(is_default=True), format="json"
    )

    old.refresh_from_db()
    assert response.json()["data"]["is_default"] is True
    assert old.is_default is False


def test_patch_without_api_key_keeps_the_key(admin_client):
    model = LLMModelFactory(api_key=SECRET)

    response = admin_client.patch(
        f"/api/v1/llm-models/{model.pk}", {"display_name": "Renamed"}, format="json"
    )

    model.refresh_from_db()
    assert response.status_code == 200
    assert (model.display_name, model.api_key) == ("Renamed", SECRET)


def test_patch_with_empty_api_key_clears_it(admin_client):
    model = LLMModelFactory(api_key=SECRET)

    response = admin_client.patch(f"/api/v1/llm-models/{model.pk}", {"api_key": ""}, format="json")

    model.refresh_from_db()
    assert response.json()["data"]["has_api_key"] is False
    assert model.api_key == ""


def test_put_replaces_the_model_and_its_access_rules(admin_client, user):
    model = LLMModelFactory(display_name="Old")
    LLMModelAccessFactory(model=model, role=Role.DEVELOPER)

    response = admin_client.put(
        f"/api/v1/llm-models/{model.pk}",
        _create_payload(display_name="New", access_rules=[{"user": str(user.pk)}]),
        format="json",
    )

    data = response.json()["data"]
    assert response.status_code == 200
    assert (data["display_name"], data["access_rules"]) == (
        "New",
        [{"role": "", "user": str(user.pk), "allow": True}],
    )


def test_access_rule_needs_a_role_or_a_user(admin_client):
    response = admin_client.post(
        "/api/v1/llm-models",
        _create_payload(access_rules=[{"allow": True}]),
        format="json",
    )

    assert (response.status_code, response.json()["code"]) == (400, 40002)


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_non_admins_cannot_change_models(auth_client, method):
    model = LLMModelFactory(display_name="Keep")

    response = getattr(auth_client, method)(
        f"/api/v1/llm-models/{model.pk}", {"display_name": "X"}, format="json"
    )

    model.refresh_from_db()
    assert (response.status_code, response.json()["code"]) == (403, 40301)
    assert model.display_name == "Keep"


def test_admin_deletes_an_unused_model(admin_client):
    model = LLMModelFactory()

    response = admin_client.delete(f"/api/v1/llm-models/{model.pk}")

    assert response.json() == {"code": 0, "message": "success", "data": None}
    assert LLMModel.objects.count() == 0


def test_deleting_the_default_model_is_a_conflict(admin_client):
    model = LLMModelFactory(is_default=True)

    response = admin_client.delete(f"/api/v1/llm-models/{model.pk}")

    assert (response.status_code, response.json()["code"]) == (409, 40901)
    assert LLMModel.objects.count() == 1


def test_deleting_a_model_agents_use_is_a_conflict(admin_client):
    from agents.tests.factories import AgentVersionFactory

    model = LLMModelFactory()
    AgentVersionFactory(config={"model": {"llm_model_id": str(model.pk)}})

    response = admin_client.delete(f"/api/v1/llm-models/{model.pk}")

    assert (response.status_code, response.json()["code"]) == (409, 40901)
    assert response.json()["message"] == (
        "1 agent versions use this model: deactivate it instead of deleting it."
    )


# --- secrets never leak -------------------------------------------------------------------------


def test_the_key_is_in_no_response_audit_row_or_log_line(admin_client, auth_client, caplog):
    caplog.set_level(logging.DEBUG)

    created = admin_client.post("/api/v1/llm-models", _create_payload(), format="json")
    model_id = created.json()["data"]["id"]
    responses = [
        created,
        admin_client.get("/api/v1/llm-models"),
        admin_client.get(f"/api/v1/llm-models/{model_id}"),
        admin_client.patch(f"/api/v1/llm-models/{model_id}", {"api_key": SECRET}, format="json"),
        auth_client.get("/api/v1/llm-models"),
        auth_client.put(
            "/api/v1/users/me/provider-keys/openai", {"api_key": SECRET}, format="json"
        ),
        auth_client.get("/api/v1/users/me/provider-keys"),
        auth_client.get("/api/v1/users/me/provider-keys/openai"),
    ]

    assert [r.status_code for r in responses] == [201, 200, 200, 200, 200, 200, 200, 200]
    assert all(SECRET not in r.content.decode() for r in responses)
    assert SECRET not in json.dumps(list(AuditLog.objects.values_list("detail", flat=True)))
    assert SECRET not in caplog.text


# --- users' own provider keys -----------------------------------------------------------------


def test_user_stores_their_own_key_and_sees_has_api_key(auth_client, user):
    response = auth_client.put(
        "/api/v1/users/me/provider-keys/openai",
        {"api_key": SECRET, "base_url": "https://proxy.example.com/v1"},
        format="json",
    )

    data = response.json()["data"]
    assert (data["provider_type"], data["has_api_key"], data["base_url"]) == (
        "openai",
        True,
        "https://proxy.example.com/v1",
    )
    assert UserProviderKey.objects.get(user=user).api_key == SECRET


def test_putting_a_key_again_replaces_it(auth_client, user):
    UserProviderKeyFactory(user=user, api_key="sk-old")

    auth_client.put("/api/v1/users/me/provider-keys/openai", {"api_key": "sk-new"}, format="json")

    assert list(UserProviderKey.objects.values_list("provider_type", flat=True)) == ["openai"]
    assert UserProviderKey.objects.get(user=user).api_key == "sk-new"


def test_users_see_only_their_own_provider_keys(auth_client, user, other_user):
    UserProviderKeyFactory(user=user, provider_type="openai")
    UserProviderKeyFactory(user=other_user, provider_type="anthropic")

    listed = auth_client.get("/api/v1/users/me/provider-keys").json()["data"]
    other = auth_client.get("/api/v1/users/me/provider-keys/anthropic")

    assert [k["provider_type"] for k in listed] == ["openai"]
    assert (other.status_code, other.json()["code"]) == (404, 40401)


def test_deleting_a_provider_key_touches_only_ones_own(auth_client, user, other_user):
    UserProviderKeyFactory(user=other_user, provider_type="openai")

    missing = auth_client.delete("/api/v1/users/me/provider-keys/openai")
    UserProviderKeyFactory(user=user, provider_type="openai")
    deleted = auth_client.delete("/api/v1/users/me/provider-keys/openai")

    assert (missing.status_code, deleted.status_code) == (404, 200)
    assert list(UserProviderKey.objects.values_list("user__username", flat=True)) == ["bob"]


@pytest.mark.parametrize(
    ("provider_type", "payload", "field"),
    [
        ("demo", {"api_key": "sk-x"}, "provider_type"),
        ("nonsense", {"api_key": "sk-x"}, "provider_type"),
        ("openai", {"api_key": "sk-x", "base_url": "file:///etc/passwd"}, "base_url"),
    ],
)
def test_invalid_provider_keys_are_refused(auth_client, provider_type, payload, field):
    response = auth_client.put(
        f"/api/v1/users/me/provider-keys/{provider_type}", payload, format="json"
    )

    assert (response.status_code, list(response.json()["details"])) == (400, [field])


def test_provider_key_needs_a_key(auth_client):
    response = auth_client.put("/api/v1/users/me/provider-keys/openai", {}, format="json")

    assert (response.status_code, list(response.json()["details"])) == (400, ["api_key"])
