"""Account API serializers: validate input and represent output, no side effects.

Nothing here ever exposes a password hash, an API key hash or a refresh token hash.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import ApiKey, Role, Theme, User
from accounts.selectors import user_permission_overrides
from agentstore.api.serializers import StrictSerializer

PASSWORD_MAX = 128
LANGUAGE_CHOICES = [("", "")] + [(code, name) for code, name in settings.LANGUAGES]


def _password_field(**kwargs) -> serializers.CharField:
    return serializers.CharField(
        max_length=PASSWORD_MAX,
        write_only=True,
        trim_whitespace=False,
        style={"input_type": "password"},
        **kwargs,
    )


# --- output -----------------------------------------------------------------------------------


class UserSerializer(serializers.ModelSerializer):
    """The caller's own profile."""

    created_at = serializers.DateTimeField(source="date_joined", read_only=True)

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "email",
            "display_name",
            "avatar_url",
            "role",
            "theme",
            "language",
            "created_at",
            "last_login",
        ]
        read_only_fields = fields


class AdminUserSerializer(UserSerializer):
    """A user as an admin sees it, with per-user permission overrides."""

    grants = serializers.SerializerMethodField()
    revokes = serializers.SerializerMethodField()

    class Meta(UserSerializer.Meta):
        fields = [
            *UserSerializer.Meta.fields,
            "is_active",
            "is_staff",
            "is_superuser",
            "grants",
            "revokes",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_grants(self, obj: User) -> list[str]:
        return user_permission_overrides(obj)[0]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_revokes(self, obj: User) -> list[str]:
        return user_permission_overrides(obj)[1]


class TokenPairSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    refresh_token = serializers.CharField()
    token_type = serializers.CharField()
    expires_in = serializers.IntegerField(help_text="Access token lifetime in seconds.")
    user = UserSerializer()


class ApiKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "expires_at"]
        read_only_fields = fields


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.SerializerMethodField(help_text="The key itself; shown only this once.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR)
    def get_key(self, obj: ApiKey) -> str:
        return self.context["raw_key"]


# --- input ------------------------------------------------------------------------------------


class RegisterSerializer(StrictSerializer):
    username = serializers.CharField(max_length=150)
    email = serializers.EmailField(max_length=254)
    password = _password_field()
    display_name = serializers.CharField(max_length=100, required=False, allow_blank=True)


class LoginSerializer(StrictSerializer):
    username = serializers.CharField(max_length=254, help_text="Username or email address.")
    password = _password_field()


class RefreshTokenSerializer(StrictSerializer):
    refresh_token = serializers.CharField(max_length=200, trim_whitespace=True)


class UserUpdateSerializer(StrictSerializer):
    display_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    avatar_url = serializers.URLField(max_length=500, required=False, allow_blank=True)
    theme = serializers.ChoiceField(choices=Theme.choices, required=False)
    language = serializers.ChoiceField(choices=LANGUAGE_CHOICES, required=False)
    email = serializers.EmailField(max_length=254, required=False)


class PasswordChangeSerializer(StrictSerializer):
    old_password = _password_field()
    new_password = _password_field()


class ApiKeyCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class AdminUserCreateSerializer(StrictSerializer):
    username = serializers.CharField(max_length=150)
    email = serializers.EmailField(max_length=254)
    password = _password_field()
    display_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    role = serializers.ChoiceField(choices=Role.choices, required=False, default=Role.USER)
    is_active = serializers.BooleanField(required=False, default=True)


class AdminUserUpdateSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    is_active = serializers.BooleanField(required=False)
    display_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    email = serializers.EmailField(max_length=254, required=False)
    grants = serializers.ListField(
        child=serializers.CharField(max_length=200),
        max_length=500,
        required=False,
        help_text='Permissions granted on top of the role, as "app_label.codename".',
    )
    revokes = serializers.ListField(
        child=serializers.CharField(max_length=200),
        max_length=500,
        required=False,
        help_text="Permissions the role gives that this user must not have.",
    )
