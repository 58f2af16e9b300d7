from __future__ import annotations

import base64
import json

import pytest
from django.core import serializers
from django.core.exceptions import FieldError
from django.db import connection
from django.forms import modelform_factory

from integrations import secrets
from integrations.fields import EncryptedTextField, SecretInput, encrypted_fields, mask
from integrations.models import SystemSetting

SECRET = "sk-test-3f9a 密钥"


def _stored(key: str) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_value FROM integrations_systemsetting WHERE key = %s", [key])
        return cursor.fetchone()[0]


def _store_raw(key: str, raw: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE integrations_systemsetting SET secret_value = %s WHERE key = %s", [raw, key]
        )


@pytest.mark.django_db
def test_the_database_holds_ciphertext_and_the_model_plaintext():
    setting = SystemSetting.objects.create(key="smtp-password", is_secret=True, secret_value=SECRET)

    stored = _stored("smtp-password")
    loaded = SystemSetting.objects.get(key="smtp-password")

    assert stored.startswith("enc:v1:fernet:derived:")
    assert SECRET not in stored
    assert setting.secret_value == SECRET
    assert loaded.secret_value == SECRET
    assert secrets.decrypt(stored) == SECRET


@pytest.mark.django_db
def test_values_queries_also_decrypt():
    SystemSetting.objects.create(key="token", is_secret=True, secret_value=SECRET)

    values = list(SystemSetting.objects.values_list("secret_value", flat=True))

    assert values == [SECRET]


@pytest.mark.django_db
def test_empty_secret_is_stored_empty():
    SystemSetting.objects.create(key="empty", is_secret=True, secret_value="")

    assert _stored("empty") == ""
    assert SystemSetting.objects.get(key="empty").secret_value == ""


@pytest.mark.django_db
def test_saving_again_keeps_the_plaintext_value_and_re_encrypts():
    setting = SystemSetting.objects.create(key="api", is_secret=True, secret_value=SECRET)
    first = _stored("api")

    setting.save()
    setting.refresh_from_db()

    assert setting.secret_value == SECRET
    assert _stored("api") != first
    assert secrets.decrypt(_stored("api")) == SECRET


@pytest.mark.django_db
def test_a_plaintext_column_value_is_read_as_is_until_rotated():
    SystemSetting.objects.create(key="old", is_secret=True, secret_value="x")
    _store_raw("old", "legacy-plain")

    assert SystemSetting.objects.get(key="old").secret_value == "legacy-plain"


@pytest.mark.django_db
def test_tampered_ciphertext_in_the_database_raises_on_load():
    SystemSetting.objects.create(key="api", is_secret=True, secret_value=SECRET)
    head, payload = _stored("api").rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(payload))
    raw[20] ^= 0xFF
    _store_raw("api", f"{head}:{base64.urlsafe_b64encode(bytes(raw)).decode()}")

    with pytest.raises(secrets.SecretDecryptionError):
        SystemSetting.objects.get(key="api")


def test_deconstruct_points_at_the_field_class():
    field = EncryptedTextField(blank=True, default="")
    field.set_attributes_from_name("token")

    name, path, args, kwargs = field.deconstruct()

    assert (name, path, args, kwargs) == (
        "token",
        "integrations.fields.EncryptedTextField",
        [],
        {"blank": True, "default": ""},
    )


@pytest.mark.django_db
def test_serialized_data_carries_ciphertext_and_loads_back():
    SystemSetting.objects.create(key="api", is_secret=True, secret_value=SECRET)

    dumped = serializers.serialize("json", SystemSetting.objects.all())
    SystemSetting.objects.all().delete()
    for obj in serializers.deserialize("json", dumped):
        obj.save()

    field_value = json.loads(dumped)[0]["fields"]["secret_value"]
    assert SECRET not in dumped
    assert secrets.decrypt(field_value) == SECRET
    assert SystemSetting.objects.get(key="api").secret_value == SECRET


@pytest.mark.parametrize(("value", "expected"), [(SECRET, "••••••••"), ("x", "••••••••"), ("", "")])
def test_mask_reveals_neither_content_nor_length(value, expected):
    assert mask(value) == expected


def test_mask_of_none_is_empty():
    assert mask(None) == ""


SettingForm = modelform_factory(SystemSetting, fields=["key", "is_secret", "secret_value"])


@pytest.mark.django_db
def test_form_never_renders_the_stored_secret():
    setting = SystemSetting.objects.create(key="api", is_secret=True, secret_value=SECRET)

    html = str(SettingForm(instance=setting))

    assert SECRET not in html
    assert isinstance(SettingForm.base_fields["secret_value"].widget, SecretInput)
    assert 'name="secret_value-clear"' in html


@pytest.mark.django_db
def test_form_with_empty_secret_input_keeps_the_stored_secret():
    setting = SystemSetting.objects.create(key="api", is_secret=True, secret_value=SECRET)

    form = SettingForm({"key": "api", "is_secret": "on", "secret_value": ""}, instance=setting)
    form.save()

    assert form.has_changed() is False
    assert SystemSetting.objects.get(key="api").secret_value == SECRET


@pytest.mark.django_db
def test_form_with_a_new_secret_replaces_it():
    setting = SystemSetting.objects.create(key="api", is_secret=True, secret_value=SECRET)

    form = SettingForm({"key": "api", "is_secret": "on", "secret_value": "new"}, instance=setting)
    form.save()

    assert form.changed_data == ["secret_value"]
    assert SystemSetting.objects.get(key="api").secret_value == "new"


@pytest.mark.django_db
def test_form_clear_checkbox_removes_the_secret():
    setting = SystemSetting.objects.create(key="api", is_secret=True, secret_value=SECRET)
    data = {"key": "api", "is_secret": "on", "secret_value": "", "secret_value-clear": "on"}

    form = SettingForm(data, instance=setting)
    form.save()

    assert SystemSetting.objects.get(key="api").secret_value == ""
    assert _stored("api") == ""


def test_encrypted_fields_finds_the_system_setting_field():
    found = {(model._meta.label, field.name) for model, field in encrypted_fields()}

    assert ("integrations.SystemSetting", "secret_value") in found


@pytest.mark.django_db
def test_filtering_on_emptiness_works():
    SystemSetting.objects.create(key="set", is_secret=True, secret_value=SECRET)
    SystemSetting.objects.create(key="unset", is_secret=True, secret_value="")

    assert list(SystemSetting.objects.filter(secret_value="").values_list("key", flat=True)) == [
        "unset"
    ]
    assert list(SystemSetting.objects.exclude(secret_value="").values_list("key", flat=True)) == [
        "set"
    ]
    assert SystemSetting.objects.filter(secret_value__isnull=True).count() == 0


@pytest.mark.django_db
def test_filtering_on_a_secret_value_is_refused_instead_of_never_matching():
    with pytest.raises(TypeError, match="An encrypted field can only be compared with ''"):
        SystemSetting.objects.filter(secret_value=SECRET).count()


def test_other_lookups_are_unsupported():
    with pytest.raises(FieldError, match="Unsupported lookup 'icontains'"):
        SystemSetting.objects.filter(secret_value__icontains="sk")
