"""Django admin for accounts: users and roles, per-user permission overrides, the audit log,
API keys and refresh tokens (SPEC §3, §4.4). Writes go through ``accounts.services`` so
they follow the same rules and leave audit rows; keys and tokens are read-only here."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts import services
from accounts.models import ApiKey, AuditLog, PermissionOverride, RefreshToken, Role, User
from accounts.selectors import is_admin
from agentstore.errors import DomainError


def _via_admin(request):
    # audit_record reads request.auth_via: writes made here are recorded as "admin".
    request.auth_via = "admin"
    return request


class UserCreationAdminForm(AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ("username", "email", "display_name", "role")


class UserChangeAdminForm(UserChangeForm):
    class Meta(UserChangeForm.Meta):
        model = User
        fields = "__all__"

    def clean(self):
        cleaned = super().clean()
        instance = self.instance
        if instance.pk and instance.role == Role.ADMIN:
            demoted = cleaned.get("role", Role.ADMIN) != Role.ADMIN
            deactivated = cleaned.get("is_active", True) is False
            others = User.objects.filter(role=Role.ADMIN, is_active=True).exclude(pk=instance.pk)
            if (demoted or deactivated) and not others.exists():
                raise forms.ValidationError(
                    _("This is the last active admin: keep the admin role and the account active.")
                )
        return cleaned


class PermissionOverrideInline(admin.TabularInline):
    model = PermissionOverride
    extra = 0
    fields = ("permission", "effect", "created_at")
    readonly_fields = ("created_at",)
    verbose_name = _("permission grant or revoke")
    verbose_name_plural = _("permission grants and revokes (on top of the role)")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "permission":
            kwargs["queryset"] = db_field.remote_field.model.objects.select_related("content_type")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserChangeAdminForm
    add_form = UserCreationAdminForm
    inlines = [PermissionOverrideInline]
    list_display = ("username", "email", "display_name", "role", "is_active", "last_login")
    list_filter = ("role", "is_active", "theme", "language")
    search_fields = ("username", "email", "display_name")
    ordering = ("username",)
    readonly_fields = ("id", "is_staff", "is_superuser", "last_login", "date_joined")
    fieldsets = (
        (None, {"fields": ("id", "username", "password")}),
        (_("Profile"), {"fields": ("email", "display_name", "avatar_url")}),
        (
            _("Role and status"),
            {
                "fields": ("role", "is_active", "is_staff", "is_superuser"),
                "description": _(
                    "The role decides the permissions; staff and superuser follow it."
                ),
            },
        ),
        (_("Preferences"), {"fields": ("theme", "language")}),
        (_("Important dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": (
                    "username",
                    "email",
                    "display_name",
                    "role",
                    "usable_password",
                    "password1",
                    "password2",
                ),
            },
        ),
    )

    def save_model(self, request, obj, form, change):
        _via_admin(request)
        services.admin_user_save_form(
            request.user,
            user=obj,
            role=form.cleaned_data.get("role", obj.role),
            changed_fields=form.changed_data,
            created=not change,
            request=request,
        )

    def save_formset(self, request, form, formset, change):
        if formset.model is not PermissionOverride:
            super().save_formset(request, form, formset, change)
            return
        grants, revokes = [], []
        for inline_form in formset.forms:
            data = getattr(inline_form, "cleaned_data", None) or {}
            if not data.get("permission") or data.get("DELETE"):
                continue
            perm = data["permission"]
            name = f"{perm.content_type.app_label}.{perm.codename}"
            (grants if data["effect"] == PermissionOverride.Effect.GRANT else revokes).append(name)
        if formset.has_changed():
            _via_admin(request)
            services.admin_user_update(
                request.user, user=form.instance, grants=grants, revokes=revokes, request=request
            )
        # The admin's change message reads these; the service did the writes.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def user_change_password(self, request, id, form_url=""):
        user = self.get_object(request, unquote(id))
        before = user.password if user is not None else None
        response = super().user_change_password(request, id, form_url)
        if user is not None and request.method == "POST":
            user.refresh_from_db(fields=["password"])
            if user.password != before:
                _via_admin(request)
                services.user_password_set_by_admin(request.user, user=user, request=request)
        return response

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.pk == request.user.pk:
            return False  # nobody deletes their own account here
        return super().has_delete_permission(request, obj)

    def delete_model(self, request, obj):
        _via_admin(request)
        try:
            services.admin_user_delete(request.user, user=obj, request=request)
        except DomainError as exc:
            messages.error(request, exc.message)

    def delete_queryset(self, request, queryset):
        for user in queryset:
            self.delete_model(request, user)


class _ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AuditLog)
class AuditLogAdmin(_ReadOnlyAdmin):
    list_display = (
        "created_at",
        "actor_label",
        "via",
        "action",
        "object_type",
        "object_id",
        "ip",
        "api_key_prefix",
    )
    list_filter = ("action", "via", "object_type", "created_at")
    search_fields = ("actor_label", "action", "object_id", "ip", "request_id", "api_key_prefix")
    date_hierarchy = "created_at"
    list_select_related = ("actor",)
    fields = (
        "created_at",
        "actor",
        "actor_label",
        "via",
        "api_key_prefix",
        "action",
        "object_type",
        "object_id",
        "ip",
        "request_id",
        "detail",
    )
    readonly_fields = fields


@admin.register(ApiKey)
class ApiKeyAdmin(_ReadOnlyAdmin):
    list_display = (
        "name",
        "prefix",
        "user",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("name", "prefix", "user__username", "user__email")
    list_select_related = ("user",)
    fields = (
        "id",
        "user",
        "name",
        "prefix",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    readonly_fields = fields
    actions = ["revoke_keys"]

    def has_revoke_permission(self, request) -> bool:
        return is_admin(request.user)

    @admin.action(description=_("Revoke selected API keys"), permissions=["revoke"])
    def revoke_keys(self, request, queryset):
        _via_admin(request)
        revoked = sum(
            services.api_key_revoke_by_admin(request.user, key=key, request=request)
            for key in queryset
        )
        self.message_user(
            request,
            ngettext("%(n)d API key revoked.", "%(n)d API keys revoked.", revoked) % {"n": revoked},
            messages.SUCCESS,
        )


@admin.register(RefreshToken)
class RefreshTokenAdmin(_ReadOnlyAdmin):
    list_display = ("user", "family", "created_at", "expires_at", "rotated_at", "revoked_at", "ip")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("user__username", "user__email", "family")
    list_select_related = ("user",)
    fields = ("user", "family", "created_at", "expires_at", "rotated_at", "revoked_at", "ip")
    readonly_fields = fields
