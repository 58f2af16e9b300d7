from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from integrations.fields import has_secret
from integrations.models import (
    LLMModel,
    LLMModelAccess,
    MCPConnection,
    Skill,
    SkillVersion,
    SystemSetting,
    UserProviderKey,
)
from integrations.system_settings import setting_delete, setting_set


class SystemSettingForm(forms.ModelForm):
    class Meta:
        model = SystemSetting
        fields = ["key", "description", "is_secret", "value", "secret_value"]
        help_texts = {
            "value": _("JSON. Used when the setting is not secret."),
            "secret_value": _(
                "Write-only: the stored value is never shown. Leave empty to keep it."
            ),
        }


@admin.register(SystemSetting)
class SystemSettingAdmin(admin.ModelAdmin):
    """Writes go through the audited service, which also invalidates the cache."""

    form = SystemSettingForm
    list_display = ["key", "shown_value", "is_secret", "updated_at", "updated_by"]
    list_filter = ["is_secret"]
    search_fields = ["key", "description"]
    readonly_fields = ["secret_status", "updated_at", "updated_by"]
    list_select_related = ["updated_by"]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "key"] if obj is not None else fields

    @admin.display(description=_("value"))
    def shown_value(self, obj: SystemSetting) -> str:
        if obj.is_secret:
            return self.secret_status(obj)
        return str(obj.value)

    @admin.display(description=_("secret value"))
    def secret_status(self, obj: SystemSetting) -> str:
        return str(_("set") if has_secret(obj.secret_value) else _("not set"))

    def save_model(self, request, obj, form, change):
        saved = setting_set(
            request.user,
            key=obj.key,
            value=obj.secret_value if obj.is_secret else obj.value,
            description=obj.description,
            is_secret=obj.is_secret,
            request=request,
        )
        obj.pk = saved.pk
        obj.updated_at = saved.updated_at
        obj.updated_by = saved.updated_by

    def delete_model(self, request, obj):
        setting_delete(request.user, key=obj.key, request=request)

    def delete_queryset(self, request, queryset):
        for key in queryset.values_list("key", flat=True):
            setting_delete(request.user, key=key, request=request)


# --- LLM models (SPEC §6.1) -------------------------------------------------------------------


def _is_llm_admin(request) -> bool:
    from integrations.selectors import is_llm_admin

    return is_llm_admin(request.user)


class LLMModelAccessInline(admin.TabularInline):
    model = LLMModelAccess
    extra = 0
    fields = ["role", "user", "allow"]
    raw_id_fields = ["user"]
    verbose_name_plural = _("access rules (none: every user may use the model)")


@admin.register(LLMModel)
class LLMModelAdmin(admin.ModelAdmin):
    """Writes go through the audited services; the API key input is write-only."""

    list_display = [
        "display_name",
        "provider_type",
        "model_name",
        "is_active",
        "is_default",
        "key_status",
        "updated_at",
    ]
    list_filter = ["provider_type", "is_active", "is_default"]
    search_fields = ["display_name", "model_name"]
    readonly_fields = ["key_status", "created_at", "updated_at"]
    inlines = [LLMModelAccessInline]
    actions = ["test_connection"]
    fieldsets = [
        (
            None,
            {"fields": ["display_name", "provider_type", "model_name", "is_active", "is_default"]},
        ),
        (
            _("Endpoint and key"),
            {"fields": ["base_url", "api_key", "key_status", "extra_config"]},
        ),
        (
            _("Limits and pricing"),
            {
                "fields": [
                    "max_tokens",
                    "default_temperature",
                    "rate_limit_rpm",
                    "price_input_per_1k",
                    "price_output_per_1k",
                    "supports_tools",
                    "supports_streaming",
                ]
            },
        ),
        (None, {"fields": ["created_at", "updated_at"]}),
    ]

    def has_module_permission(self, request) -> bool:
        return _is_llm_admin(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return _is_llm_admin(request)

    has_add_permission = has_view_permission
    has_change_permission = has_view_permission
    has_delete_permission = has_view_permission

    @admin.display(description=_("API key"))
    def key_status(self, obj: LLMModel) -> str:
        return str(_("set") if has_secret(obj.api_key) else _("not set"))

    def save_model(self, request, obj, form, change):
        from integrations.services import LLM_MODEL_FIELDS, llm_model_create, llm_model_update

        if change:
            changes = {f: getattr(obj, f) for f in form.changed_data if f in LLM_MODEL_FIELDS}
            api_key = obj.api_key if "api_key" in form.changed_data else None
            saved = llm_model_update(
                request.user, model=obj, api_key=api_key, request=request, **changes
            )
        else:
            fields = {f: getattr(obj, f) for f in LLM_MODEL_FIELDS}
            saved = llm_model_create(
                request.user, api_key=obj.api_key or "", request=request, **fields
            )
        obj.pk = saved.pk
        obj._state.adding = False
        obj.is_default = saved.is_default

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if any(formset.has_changed() for formset in formsets):
            from accounts.audit import audit_record

            audit_record(
                request.user,
                action="llm_model.access_rules",
                obj=form.instance,
                request=request,
                detail={"rules": form.instance.access_rules.count()},
            )

    def get_deleted_objects(self, objs, request):
        from integrations.services import llm_model_delete_refusal

        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Listed as "protected", the admin refuses the deletion and shows why.
        refusals = [f"{obj}: {reason}" for obj in objs if (reason := llm_model_delete_refusal(obj))]
        return deleted, counts, perms_needed, [*protected, *refusals]

    def delete_model(self, request, obj):
        from integrations.services import llm_model_delete

        llm_model_delete(request.user, model=obj, request=request)

    def delete_queryset(self, request, queryset):
        from integrations.services import llm_model_delete

        for model in queryset:
            llm_model_delete(request.user, model=model, request=request)

    def _report_test(self, request, model: LLMModel) -> None:
        from integrations.services import llm_model_test

        result = llm_model_test(request.user, model=model, request=request)
        if result["success"]:
            self.message_user(
                request,
                _("%(model)s: connection OK in %(ms)s ms. %(detail)s")
                % {"model": model, "ms": result["latency_ms"], "detail": result["detail"]},
                messages.SUCCESS,
            )
        else:
            self.message_user(
                request,
                _("%(model)s: connection failed: %(error)s")
                % {"model": model, "error": result["error"]},
                messages.ERROR,
            )

    @admin.action(description=_("Test connection"))
    def test_connection(self, request, queryset):
        for model in queryset:
            self._report_test(request, model)

    def _after_save(self, request, obj, response):
        if "_test_connection" in request.POST:
            self._report_test(request, LLMModel.objects.get(pk=obj.pk))
            from django.http import HttpResponseRedirect
            from django.urls import reverse

            return HttpResponseRedirect(
                reverse("admin:integrations_llmmodel_change", args=[obj.pk])
            )
        return response

    def response_add(self, request, obj, post_url_continue=None):
        return self._after_save(request, obj, super().response_add(request, obj, post_url_continue))

    def response_change(self, request, obj):
        return self._after_save(request, obj, super().response_change(request, obj))


@admin.register(UserProviderKey)
class UserProviderKeyAdmin(admin.ModelAdmin):
    """Users' own keys: who has one for which provider; the key is never shown or set here."""

    list_display = ["user", "provider_type", "key_status", "base_url", "updated_at"]
    list_filter = ["provider_type"]
    search_fields = ["user__username", "user__email"]
    fields = ["user", "provider_type", "key_status", "base_url", "created_at", "updated_at"]
    readonly_fields = fields
    list_select_related = ["user"]

    def has_module_permission(self, request) -> bool:
        return _is_llm_admin(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return _is_llm_admin(request)

    has_delete_permission = has_view_permission

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description=_("API key"))
    def key_status(self, obj: UserProviderKey) -> str:
        return str(_("set") if has_secret(obj.api_key) else _("not set"))


# --- skills and MCP connections (minimal; their features come with later issues) ----------


class SkillVersionInline(admin.TabularInline):
    model = SkillVersion
    fields = ["version", "created_at"]
    readonly_fields = ["version", "created_at"]
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Skill)
class SkillAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "kind", "status", "is_public", "updated_at"]
    list_filter = ["kind", "status", "is_public"]
    list_select_related = ["owner"]
    search_fields = ["name", "slug", "owner__username"]
    readonly_fields = ["owner", "created_at", "updated_at"]
    inlines = [SkillVersionInline]


@admin.register(SkillVersion)
class SkillVersionAdmin(admin.ModelAdmin):
    list_display = ["skill", "version", "created_at"]
    list_select_related = ["skill"]
    search_fields = ["skill__name", "version"]
    readonly_fields = ["skill", "version", "manifest", "analysis", "created_at"]

    def has_add_permission(self, request):
        return False


@admin.register(MCPConnection)
class MCPConnectionAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "transport", "is_active", "is_public", "status",
                    "last_checked_at"]  # fmt: skip
    list_filter = ["transport", "is_active", "is_public", "status"]
    list_select_related = ["owner"]
    search_fields = ["name", "url", "owner__username"]
    readonly_fields = ["owner", "tools", "tools_fingerprint", "status", "last_checked_at",
                       "created_at", "updated_at"]  # fmt: skip
