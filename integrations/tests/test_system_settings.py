from __future__ import annotations

import pytest
from django.core.cache import cache

from accounts.models import AuditLog, Role
from accounts.tests.factories import UserFactory
from agentstore.errors import NotFound, PermissionDenied, ValidationFailed
from integrations.models import SystemSetting
from integrations.system_settings import _cache_key, setting_delete, setting_get, setting_set

SECRET = "smtp-pass-7f3c"


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db
def test_setting_get_returns_default_when_missing():
    assert setting_get("max-sessions-per-user", 200) == 200


@pytest.mark.django_db
def test_setting_set_then_get_returns_the_value(admin_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        setting_set(admin_user, key="max-sessions-per-user", value=50)

    assert setting_get("max-sessions-per-user", 200) == 50
    assert SystemSetting.objects.get(key="max-sessions-per-user").updated_by == admin_user


@pytest.mark.django_db
def test_setting_get_is_cached(admin_user, django_assert_num_queries):
    setting_set(admin_user, key="max-sessions-per-user", value=50)
    setting_get("max-sessions-per-user")

    with django_assert_num_queries(0):
        assert setting_get("max-sessions-per-user") == 50


@pytest.mark.django_db
def test_a_missing_setting_is_cached_too(django_assert_num_queries):
    setting_get("nothing-here")

    with django_assert_num_queries(0):
        assert setting_get("nothing-here", "fallback") == "fallback"


@pytest.mark.django_db
def test_setting_set_invalidates_the_cache(admin_user, django_capture_on_commit_callbacks):
    setting_set(admin_user, key="max-sessions-per-user", value=50)
    assert setting_get("max-sessions-per-user") == 50

    with django_capture_on_commit_callbacks(execute=True):
        setting_set(admin_user, key="max-sessions-per-user", value=80)

    assert setting_get("max-sessions-per-user") == 80


@pytest.mark.django_db
def test_setting_set_writes_the_audit_log(admin_user, rf):
    request = rf.post("/admin/", REMOTE_ADDR="10.1.2.3")

    setting = setting_set(admin_user, key="max-sessions-per-user", value=50, request=request)

    entry = AuditLog.objects.get(action="system_setting.set")
    assert entry.actor == admin_user
    assert entry.object_id == str(setting.pk)
    assert entry.ip == "10.1.2.3"
    assert entry.detail == {
        "key": "max-sessions-per-user",
        "created": True,
        "encrypted": False,
        "value": 50,
    }


@pytest.mark.django_db
def test_secret_setting_returns_plaintext_but_is_never_cached_or_audited_as_such(admin_user):
    setting_set(admin_user, key="smtp-password", value=SECRET, is_secret=True)

    value = setting_get("smtp-password")

    entry = AuditLog.objects.get(action="system_setting.set")
    assert value == SECRET
    assert SECRET not in str(cache.get(_cache_key("smtp-password")))
    assert cache.get(_cache_key("smtp-password"))["token"].startswith("enc:v1:")
    assert entry.detail == {
        "key": "smtp-password",
        "created": True,
        "encrypted": True,
        "change": "set",
    }
    assert SystemSetting.objects.get(key="smtp-password").value is None


@pytest.mark.django_db
def test_clearing_a_secret_setting_falls_back_to_default(admin_user):
    setting_set(admin_user, key="smtp-password", value=SECRET, is_secret=True)

    setting_set(admin_user, key="smtp-password", value="")

    assert setting_get("smtp-password", "none") == "none"
    assert AuditLog.objects.filter(action="system_setting.set").first().detail["change"] == (
        "cleared"
    )


@pytest.mark.django_db
def test_secret_setting_rejects_non_text(admin_user):
    with pytest.raises(ValidationFailed) as excinfo:
        setting_set(admin_user, key="smtp-password", value={"a": 1}, is_secret=True)

    assert excinfo.value.details == {"value": ["A secret value must be text."]}
    assert SystemSetting.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["has space", "", "ünïcode", "x" * 101])
def test_setting_set_rejects_bad_keys(admin_user, key):
    with pytest.raises(ValidationFailed) as excinfo:
        setting_set(admin_user, key=key, value=1)

    assert list(excinfo.value.details) == ["key"]


@pytest.mark.django_db
@pytest.mark.parametrize("fixture", ["user", "developer", "reviewer"])
def test_only_admins_may_change_settings(request, fixture):
    actor = request.getfixturevalue(fixture)

    with pytest.raises(PermissionDenied):
        setting_set(actor, key="max-sessions-per-user", value=1)

    assert SystemSetting.objects.count() == 0


@pytest.mark.django_db
def test_admin_role_without_superuser_may_change_settings():
    admin = UserFactory(username="root", role=Role.ADMIN)

    setting_set(admin, key="max-sessions-per-user", value=3)

    assert setting_get("max-sessions-per-user") == 3


@pytest.mark.django_db
def test_system_actor_may_change_settings():
    setting_set(None, key="max-sessions-per-user", value=7)

    entry = AuditLog.objects.get(action="system_setting.set")
    assert entry.actor_label == "system"
    assert setting_get("max-sessions-per-user") == 7


@pytest.mark.django_db
def test_setting_delete_removes_audits_and_invalidates(
    admin_user, django_capture_on_commit_callbacks
):
    setting_set(admin_user, key="max-sessions-per-user", value=50)
    setting_get("max-sessions-per-user")

    with django_capture_on_commit_callbacks(execute=True):
        setting_delete(admin_user, key="max-sessions-per-user")

    assert setting_get("max-sessions-per-user", 200) == 200
    assert AuditLog.objects.filter(action="system_setting.delete").count() == 1


@pytest.mark.django_db
def test_setting_delete_of_missing_key_is_not_found(admin_user):
    with pytest.raises(NotFound):
        setting_delete(admin_user, key="nope")


@pytest.mark.django_db
def test_admin_changelist_shows_set_not_the_secret(client, admin_user):
    setting_set(admin_user, key="smtp-password", value=SECRET, is_secret=True)
    client.force_login(admin_user)

    response = client.get("/admin/integrations/systemsetting/")

    html = response.content.decode()
    assert response.status_code == 200
    assert SECRET not in html
    assert "smtp-password" in html
    assert ">set<" in html


@pytest.mark.django_db
def test_admin_change_form_never_shows_the_secret(client, admin_user):
    setting = setting_set(admin_user, key="smtp-password", value=SECRET, is_secret=True)
    client.force_login(admin_user)

    response = client.get(f"/admin/integrations/systemsetting/{setting.pk}/change/")

    html = response.content.decode()
    assert response.status_code == 200
    assert SECRET not in html
    assert 'type="password"' in html


@pytest.mark.django_db
def test_admin_edit_with_empty_secret_keeps_it_and_audits(client, admin_user):
    setting = setting_set(admin_user, key="smtp-password", value=SECRET, is_secret=True)
    client.force_login(admin_user)

    response = client.post(
        f"/admin/integrations/systemsetting/{setting.pk}/change/",
        {"description": "Outgoing mail", "is_secret": "on", "value": "null", "secret_value": ""},
    )

    assert response.status_code == 302
    assert setting_get("smtp-password") == SECRET
    assert SystemSetting.objects.get(key="smtp-password").description == "Outgoing mail"
    assert AuditLog.objects.filter(action="system_setting.set").count() == 2


@pytest.mark.django_db
def test_admin_add_goes_through_the_service(client, admin_user):
    client.force_login(admin_user)

    response = client.post(
        "/admin/integrations/systemsetting/add/",
        {"key": "max-sessions-per-user", "description": "", "value": "25", "secret_value": ""},
    )

    assert response.status_code == 302
    assert setting_get("max-sessions-per-user") == 25
    assert AuditLog.objects.get(action="system_setting.set").actor == admin_user


# --- the per-process memo -------------------------------------------------------------------


class _CountingCache:
    """Counts reads of the shared cache (what the memo saves)."""

    def __init__(self, monkeypatch) -> None:
        from integrations import system_settings

        self.reads = 0
        real = system_settings.cache.get

        def get(*args, **kwargs):
            self.reads += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(system_settings.cache, "get", get)


@pytest.mark.django_db
def test_a_process_remembers_a_setting_for_a_moment(admin_user, monkeypatch, settings):
    settings.SYSTEM_SETTINGS_MEMO = 60
    setting_set(admin_user, key="max-sessions-per-user", value=50)
    counting = _CountingCache(monkeypatch)

    assert [setting_get("max-sessions-per-user") for _ in range(5)] == [50] * 5
    assert counting.reads == 1


@pytest.mark.django_db
def test_the_memo_can_be_turned_off(admin_user, monkeypatch, settings):
    settings.SYSTEM_SETTINGS_MEMO = 0
    setting_set(admin_user, key="max-sessions-per-user", value=50)
    counting = _CountingCache(monkeypatch)

    for _ in range(3):
        setting_get("max-sessions-per-user")

    assert counting.reads == 3


@pytest.mark.django_db
def test_a_change_in_this_process_is_seen_at_once(
    admin_user, settings, django_capture_on_commit_callbacks
):
    settings.SYSTEM_SETTINGS_MEMO = 60
    setting_set(admin_user, key="max-sessions-per-user", value=50)
    assert setting_get("max-sessions-per-user") == 50

    with django_capture_on_commit_callbacks(execute=True):
        setting_set(admin_user, key="max-sessions-per-user", value=80)
    assert setting_get("max-sessions-per-user") == 80

    # A row written directly (the admin's model form, a data migration) forgets it too.
    row = SystemSetting.objects.get(key="max-sessions-per-user")
    row.value = 90
    row.save()
    cache.clear()
    assert setting_get("max-sessions-per-user") == 90
    row.delete()
    cache.clear()
    assert setting_get("max-sessions-per-user", 7) == 7


@pytest.mark.django_db
def test_another_process_change_is_seen_once_the_memo_expires(admin_user, settings):
    import time

    settings.SYSTEM_SETTINGS_MEMO = 0.2
    setting_set(admin_user, key="max-sessions-per-user", value=50)
    assert setting_get("max-sessions-per-user") == 50
    # Another process changes it: the shared cache is invalidated, this process's memo
    # is not (no signal reaches us).
    SystemSetting.objects.filter(key="max-sessions-per-user").update(value=60)
    cache.clear()
    assert setting_get("max-sessions-per-user") == 50

    time.sleep(0.25)
    assert setting_get("max-sessions-per-user") == 60
