"""Forms of the account web pages. They only parse and check input; the writes (and the
rules: unique email, password validators, ...) live in ``accounts.services``, whose
``DomainError`` field details are put back onto the form with :func:`add_domain_errors`."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Theme
from accounts.throttling import LoginThrottle
from agentstore.errors import DomainError, RateLimited

# --- login ----------------------------------------------------------------------------------


class LoginForm(AuthenticationForm):
    """Username or email + password. Every failure shows the same message, so the form does
    not tell which accounts exist (the backend also spends the same time on unknown users)."""

    error_messages = {
        "invalid_login": _("Please enter a correct username or email and password."),
        "inactive": _("Please enter a correct username or email and password."),
    }

    def __init__(self, request=None, *args, **kwargs) -> None:
        super().__init__(request, *args, **kwargs)
        self.fields["username"].label = _("Username or email")
        self.fields["username"].widget.attrs.update({"autocomplete": "username"})
        self.fields["password"].label = _("Password")

    def clean(self):
        # The API login's throttle (same counters): web and API failures add up.
        throttle = LoginThrottle(self.request, self.data.get("username", ""))
        try:
            throttle.check()
        except RateLimited as exc:
            raise ValidationError(exc.message, code="throttled") from exc
        try:
            return super().clean()
        except ValidationError:
            throttle.failed()
            raise


# --- registration, profile, password -----------------------------------------------------------


def add_domain_errors(
    form: forms.Form, exc: DomainError, field_map: dict[str, str] | None = None
) -> None:
    """Show a service's error on the form: field details on their fields (renamed through
    ``field_map``), anything else as a form-wide error."""
    field_map = field_map or {}
    details = exc.details if isinstance(exc.details, dict) else {}
    placed = False
    for name, messages in details.items():
        field = field_map.get(name, name)
        if field not in form.fields:
            continue
        for message in messages if isinstance(messages, list) else [messages]:
            form.add_error(field, str(message))
            placed = True
    if not placed:
        form.add_error(None, exc.message)


class RegisterForm(forms.Form):
    username = forms.CharField(
        label=_("Username"),
        max_length=150,
        help_text=_("Letters, digits and . + - _ only."),
        widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}),
    )
    email = forms.EmailField(
        label=_("Email"), widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )
    display_name = forms.CharField(
        label=_("Display name"),
        max_length=100,
        required=False,
        help_text=_("Shown instead of your username."),
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    password1 = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label=_("Confirm password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password1") and cleaned.get("password1") != cleaned.get("password2"):
            self.add_error("password2", _("The two passwords do not match."))
        return cleaned


def _language_choices() -> list[tuple[str, str]]:
    return [("", _("Follow the browser")), *settings.LANGUAGES]


class ProfileForm(forms.Form):
    display_name = forms.CharField(label=_("Display name"), max_length=100, required=False)
    email = forms.EmailField(
        label=_("Email"), widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )
    avatar_url = forms.URLField(
        label=_("Avatar URL"),
        max_length=500,
        required=False,
        assume_scheme="https",
        help_text=_("A link to a square image (https://…)."),
    )
    theme = forms.ChoiceField(label=_("Theme"), choices=Theme.choices)
    language = forms.ChoiceField(label=_("Language"), choices=_language_choices, required=False)

    @classmethod
    def for_user(cls, user, data=None) -> ProfileForm:
        initial = {name: getattr(user, name) for name in cls.base_fields}
        return cls(data=data, initial=initial)


class PasswordChangeForm(forms.Form):
    old_password = forms.CharField(
        label=_("Current password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )
    new_password1 = forms.CharField(
        label=_("New password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    new_password2 = forms.CharField(
        label=_("Confirm new password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("new_password1") and cleaned.get("new_password1") != cleaned.get(
            "new_password2"
        ):
            self.add_error("new_password2", _("The two passwords do not match."))
        return cleaned


# --- API keys ---------------------------------------------------------------------------------

_EXPIRY_DAYS = {"": None, "30": 30, "90": 90, "365": 365}


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(
        label=_("Name"),
        max_length=100,
        help_text=_("What the key is for, e.g. “laptop script”."),
    )
    expires_in = forms.ChoiceField(
        label=_("Expires"),
        required=False,
        choices=[
            ("", _("Never")),
            ("30", _("In 30 days")),
            ("90", _("In 90 days")),
            ("365", _("In one year")),
        ],
    )

    def expires_at(self):
        days = _EXPIRY_DAYS[self.cleaned_data.get("expires_in") or ""]
        return None if days is None else timezone.now() + timedelta(days=days)
