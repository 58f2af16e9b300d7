"""``EncryptedTextField``: a text column that holds only ciphertext (SPEC §6.2).

The Python value is always the plaintext ``str`` (or ``None`` / ``""``, which are stored
as they are); the database only ever sees ``enc:v1:...`` tokens (see
:mod:`integrations.secrets`). Filters may only test emptiness (``isnull``, ``= ""``):
every encryption uses a fresh nonce, so comparing with a value could never match.

Forms get a write-only input: the current value is never rendered, an empty submission
keeps the stored secret, and a "clear" checkbox removes it. Serialization (``dumpdata``)
writes ciphertext, never plaintext.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import lookups
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from integrations import secrets

MASK = "••••••••"


def has_secret(value: str | None) -> bool:
    return bool(value)


def mask(value: str | None) -> str:
    """What a page may show for a secret: a fixed-length mask when set, else ``""``.

    The mask reveals neither the length nor any character of the secret.
    """
    return MASK if value else ""


class SecretInput(forms.PasswordInput):
    """A password input that never renders the value, plus a "clear" checkbox."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs={"autocomplete": "new-password", **(attrs or {})})
        self.render_value = False

    def clear_name(self, name: str) -> str:
        return f"{name}-clear"

    def render(self, name, value, attrs=None, renderer=None):
        html = super().render(name, None, attrs, renderer)
        checkbox = forms.CheckboxInput().render(
            self.clear_name(name), False, {"id": f"id_{self.clear_name(name)}"}, renderer
        )
        label = _("Clear the stored value")
        return format_html(
            '{} <label for="id_{}">{} {}</label>', html, self.clear_name(name), checkbox, label
        )

    def value_from_datadict(self, data, files, name):
        if forms.CheckboxInput().value_from_datadict(data, files, self.clear_name(name)):
            return False
        return super().value_from_datadict(data, files, name)

    def value_omitted_from_data(self, data, files, name):
        return name not in data and self.clear_name(name) not in data


class SecretFormField(forms.CharField):
    """Cleans to ``None`` (keep the stored value), ``False`` (clear it) or the new secret."""

    widget = SecretInput

    def to_python(self, value):
        if value is False:
            return False
        value = super().to_python(value)
        return value or None

    def validate(self, value):
        if value is False:
            return
        super().validate(value)

    def has_changed(self, initial, data):
        # Any submitted value or a clear request is a change; an empty input is not.
        return data is False or bool(data)


class EmptyOnlyExact(lookups.Exact):
    """Every encryption uses a fresh nonce, so only "is it empty" is a meaningful filter."""

    def get_prep_lookup(self):
        if self.rhs not in ("", None) and not hasattr(self.rhs, "resolve_expression"):
            raise TypeError(
                "An encrypted field can only be compared with '' (filter on another column)."
            )
        return super().get_prep_lookup()


class EncryptedTextField(models.TextField):
    description = _("Encrypted text")

    def get_lookup(self, lookup_name):
        # Other lookups would compare ciphertexts and silently never match.
        return {"exact": EmptyOnlyExact, "isnull": lookups.IsNull}.get(lookup_name)

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        if secrets.is_encrypted(value):
            return secrets.decrypt(value)
        # A column converted from plain text keeps working until rotate_secrets runs.
        return value

    def to_python(self, value):
        if value is None or value == "":
            return value
        if isinstance(value, str) and secrets.is_encrypted(value):
            try:
                return secrets.decrypt(value)
            except secrets.SecretDecryptionError as exc:
                raise ValidationError(str(exc), code="undecryptable") from None
        return str(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return secrets.encrypt(value)

    def value_to_string(self, obj):
        # dumpdata/exports carry ciphertext; to_python() decrypts it again on loaddata.
        value = self.value_from_object(obj)
        return secrets.encrypt(value) if value else value

    def formfield(self, **kwargs):
        defaults = {"form_class": SecretFormField, "widget": SecretInput}
        defaults.update(kwargs)
        # The admin passes its own Textarea widget for TextFields; a secret never gets one.
        defaults["widget"] = SecretInput
        return super().formfield(**defaults)

    def save_form_data(self, instance, data):
        if data is None:
            return  # blank input: keep the stored secret
        setattr(instance, self.attname, "" if data is False else data)


def encrypted_fields() -> list[tuple[type[models.Model], EncryptedTextField]]:
    """Every EncryptedTextField of every installed model with its own table."""
    from django.apps import apps

    return [
        (model, field)
        for model in apps.get_models()
        if model._meta.managed and not model._meta.proxy
        for field in model._meta.local_concrete_fields
        if isinstance(field, EncryptedTextField)
    ]
