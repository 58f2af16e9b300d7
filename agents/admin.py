"""Django admin for the store (SPEC §4.4): the review queue with check results, a config
diff and approve/reject, plus categories, featured agents, ratings, installs and notices.

Every review decision goes through ``agents.services`` (rules, notifications, audit log).
Versions are read-only here: a configuration never changes once submitted.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts.audit import audit_record
from agents import selectors, services
from agents.models import Agent, AgentVersion, Category, Install, Notification, Rating, Tag
from agents.review_diff import render_diff_html
from agentstore.errors import DomainError

REVIEW_PERM = "agents.review_agentversion"
_STATUS_COLOURS = {"pass": "#116329", "warn": "#9a6700", "fail": "#cf222e", "skipped": "#6e7781"}


def can_review(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_active and user.is_staff and user.has_perm(REVIEW_PERM))


class ReviewNoteForm(forms.Form):
    note = forms.CharField(
        label=_("Note to the developer"),
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        max_length=2000,
        required=False,
    )


class ReviewStatusFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [c for c in AgentVersion.Status.choices if c[0] != AgentVersion.Status.DRAFT]

    def queryset(self, request, queryset):
        return queryset.filter(status=self.value()) if self.value() else queryset


@admin.register(AgentVersion)
class AgentVersionAdmin(admin.ModelAdmin):
    """The review queue: submitted versions first (oldest submission first)."""

    change_form_template = "admin/agents/agentversion/change_form.html"
    list_display = [
        "agent",
        "version",
        "status",
        "check_status",
        "submitted_at",
        "developer",
        "reviewer",
        "reviewed_at",
    ]
    list_filter = [ReviewStatusFilter, "check_status"]
    search_fields = ["agent__name", "agent__slug", "version"]
    list_select_related = ["agent__developer", "reviewer"]
    actions = ["approve_selected", "reject_selected", "rerun_checks"]
    readonly_fields = [
        "agent",
        "version",
        "status",
        "is_current",
        "changelog",
        "submitted_at",
        "submitted_by",
        "reviewer",
        "reviewed_at",
        "review_note",
        "check_status",
        "check_results_table",
        "persona_scores_panel",
        "config_diff",
        "created_at",
    ]
    fieldsets = [
        (None, {"fields": ["agent", "version", "status", "is_current", "changelog"]}),
        (
            _("Review"),
            {
                "fields": [
                    "submitted_at",
                    "submitted_by",
                    "reviewer",
                    "reviewed_at",
                    "review_note",
                ]
            },
        ),
        (
            _("Automated checks"),
            {"fields": ["check_status", "check_results_table", "persona_scores_panel"]},
        ),
        (_("Configuration"), {"fields": ["config_diff"]}),
    ]

    def get_queryset(self, request):
        # Drafts are the developer's business; the queue's own ordering puts pending
        # submissions first.
        return selectors.review_queue()

    def get_ordering(self, request):
        return []

    def has_view_permission(self, request, obj=None):
        return can_review(request) or super().has_view_permission(request, obj)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("developer"))
    def developer(self, obj: AgentVersion):
        return obj.agent.developer

    @admin.display(description=_("check results"))
    def check_results_table(self, obj: AgentVersion) -> str:
        if not obj.check_results:
            return _("No results yet (status: %(s)s).") % {"s": obj.get_check_status_display()}
        rows = format_html_join(
            "",
            '<tr><td>{}</td><td style="color:{};font-weight:bold">{}</td><td>{}{}</td></tr>',
            (
                (
                    result.get("name", ""),
                    _STATUS_COLOURS.get(result.get("status"), "inherit"),
                    result.get("status", ""),
                    result.get("message", ""),
                    _details(result.get("details")),
                )
                for result in obj.check_results
            ),
        )
        return format_html(
            "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            _("Check"),
            _("Result"),
            _("Message"),
            rows,
        )

    @admin.display(description=_("persona check"))
    def persona_scores_panel(self, obj: AgentVersion) -> str:
        # The check lives in chats (it runs models); agents imports it only lazily.
        from chats.persona_check import persona_check_summary

        return render_to_string(
            "admin/agents/agentversion/_persona_scores.html",
            {"persona": persona_check_summary(obj)},
        )

    @admin.display(description=_("configuration (diff against the current version)"))
    def config_diff(self, obj: AgentVersion) -> str:
        current = obj.agent.current_version
        if current is None or current.pk == obj.pk:
            label = _("(first version)") if current is None else _("(this is the current version)")
            return format_html(
                "<p>{}</p>{}",
                label,
                render_diff_html(None, obj.config, from_label="", to_label=obj.version),
            )
        return render_diff_html(
            current.config, obj.config, from_label=current.version, to_label=obj.version
        )

    # --- decision views -------------------------------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/decide/",
                self.admin_site.admin_view(self.decide_view),
                name="{}_{}_decide".format(*info),
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "review_form": ReviewNoteForm(),
            "can_decide": can_review(request),
            "decide_url": reverse(
                f"admin:{self.opts.app_label}_{self.opts.model_name}_decide", args=[object_id]
            ),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def decide_view(self, request: HttpRequest, object_id: str):
        if request.method != "POST":
            return HttpResponseRedirect(
                reverse(
                    f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[object_id]
                )
            )
        if not can_review(request):
            raise DjangoPermissionDenied
        version = get_object_or_404(AgentVersion.objects.select_related("agent"), pk=object_id)
        form = ReviewNoteForm(request.POST)
        note = form.cleaned_data["note"] if form.is_valid() else ""
        decision = request.POST.get("decision")
        try:
            if decision == "approve":
                services.review_approve(request.user, version=version, note=note, request=request)
                self.message_user(
                    request,
                    _("%(version)s approved and published.") % {"version": version},
                    messages.SUCCESS,
                )
            elif decision == "reject":
                services.review_reject(request.user, version=version, note=note, request=request)
                self.message_user(
                    request, _("%(version)s rejected.") % {"version": version}, messages.WARNING
                )
            else:
                self.message_user(request, _("Choose approve or reject."), messages.ERROR)
        except DomainError as exc:
            self.message_user(request, _describe(exc), messages.ERROR)
        return HttpResponseRedirect(
            reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[object_id])
        )

    # --- bulk actions ---------------------------------------------------------------------

    @admin.action(description=_("Approve selected submissions"))
    def approve_selected(self, request, queryset):
        self._decide_many(request, queryset, services.review_approve, note="")

    @admin.action(description=_("Reject selected submissions (asks for a note)"))
    def reject_selected(self, request, queryset):
        if "apply" in request.POST:
            form = ReviewNoteForm(request.POST)
            if form.is_valid() and form.cleaned_data["note"].strip():
                self._decide_many(
                    request, queryset, services.review_reject, note=form.cleaned_data["note"]
                )
                return None
            self.message_user(request, _("A note is required to reject."), messages.ERROR)
        else:
            form = ReviewNoteForm()
        return TemplateResponse(
            request,
            "admin/agents/agentversion/reject_selected.html",
            {
                **self.admin_site.each_context(request),
                "title": _("Reject submissions"),
                "opts": self.opts,
                "queryset": queryset,
                "form": form,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )

    @admin.action(description=_("Run the automated checks again"))
    def rerun_checks(self, request, queryset):
        self._decide_many(request, queryset, services.review_rerun_checks)

    def _decide_many(self, request, queryset, service, **kwargs) -> None:
        if not can_review(request):
            raise DjangoPermissionDenied
        done, failed = 0, []
        for version in queryset.select_related("agent"):
            try:
                service(request.user, version=version, request=request, **kwargs)
                done += 1
            except DomainError as exc:
                failed.append(f"{version}: {_describe(exc)}")
        if done:
            self.message_user(
                request,
                ngettext("%(n)d version done.", "%(n)d versions done.", done) % {"n": done},
                messages.SUCCESS,
            )
        for message in failed:
            self.message_user(request, message, messages.ERROR)


def _details(details) -> str:
    if isinstance(details, dict):
        # Facts such as the smoke run's answer excerpt and duration; nested data (the MCP
        # fingerprints) stays in the API's check results.
        facts = [(key, value) for key, value in details.items() if isinstance(value, str | int)]
        if not facts:
            return ""
        return format_html(
            "<ul>{}</ul>", format_html_join("", "<li><code>{}</code> {}</li>", facts)
        )
    if not details or not isinstance(details, list):
        return ""
    return format_html(
        "<ul>{}</ul>",
        format_html_join(
            "",
            "<li><code>{}</code> {}</li>",
            (
                (item.get("path", item.get("skill", "")), item.get("message", ""))
                for item in details
                if isinstance(item, dict)
            ),
        ),
    )


def _describe(exc: DomainError) -> str:
    if exc.details:
        return f"{exc.message} {exc.details}"
    return exc.message


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["tree_name", "slug", "parent", "ordering", "icon"]
    list_editable = ["ordering"]
    list_select_related = ["parent"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    ordering = ["parent__ordering", "ordering", "name"]

    @admin.display(description=_("name"))
    def tree_name(self, obj: Category) -> str:
        return f"{obj.parent.name} › {obj.name}" if obj.parent_id else obj.name


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "slug"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


class AgentVersionInline(admin.TabularInline):
    model = AgentVersion
    fields = ["version", "status", "is_current", "check_status", "submitted_at", "reviewed_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["-created_at"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    """Listings: admins curate (featured, category, tags, texts); counters and versions are
    read-only because services keep them consistent."""

    list_display = [
        "name",
        "developer",
        "status",
        "agent_type",
        "is_featured",
        "is_builtin",
        "current_version",
        "install_count",
        "rating_avg",
        "rating_count",
        "published_at",
    ]
    list_editable = ["is_featured"]
    list_filter = ["status", "is_featured", "is_builtin", "agent_type", "category"]
    list_select_related = ["developer", "current_version"]
    search_fields = ["name", "slug", "developer__username", "developer__email"]
    autocomplete_fields = ["tags"]
    readonly_fields = [
        "slug",
        "developer",
        "status",
        "agent_type",
        "current_version",
        "is_builtin",
        "install_count",
        "rating_avg",
        "rating_count",
        "rating_sum",
        "published_at",
        "created_at",
        "updated_at",
    ]
    fields = [
        "name",
        "slug",
        "developer",
        "status",
        "is_featured",
        "is_builtin",
        "category",
        "tags",
        "icon",
        "short_description",
        "description",
        "mode",
        "agent_type",
        "current_version",
        "install_count",
        "rating_avg",
        "rating_count",
        "rating_sum",
        "published_at",
        "created_at",
        "updated_at",
    ]
    inlines = [AgentVersionInline]

    def has_add_permission(self, request):
        return False  # agents are created by developers in the portal or the API

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        audit_record(
            request.user,
            action="agent.admin_update",
            obj=obj,
            request=request,
            detail={"fields": sorted(form.changed_data)},
        )


@admin.register(Rating)
class RatingAdmin(admin.ModelAdmin):
    list_display = ["agent", "user", "stars", "created_at", "replied_at"]
    list_filter = ["stars"]
    list_select_related = ["agent", "user"]
    search_fields = ["agent__name", "user__username", "text"]
    readonly_fields = ["agent", "user", "stars", "text", "developer_reply", "replied_at",
                       "created_at", "updated_at"]  # fmt: skip

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        # Deleting would skip the rating counters; moderation comes with its own service.
        return False


@admin.register(Install)
class InstallAdmin(admin.ModelAdmin):
    list_display = ["agent", "user", "installed_at", "last_used_at", "usage_count"]
    list_select_related = ["agent", "user"]
    search_fields = ["agent__name", "user__username"]
    readonly_fields = ["agent", "user", "installed_at", "first_used_at", "last_used_at",
                       "usage_count", "seen_version"]  # fmt: skip

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # uninstalling goes through the service (install counter)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["user", "kind", "agent", "created_at", "read_at"]
    list_filter = ["kind"]
    list_select_related = ["user", "agent"]
    search_fields = ["user__username", "message"]
    readonly_fields = ["user", "kind", "agent", "version", "message", "data", "read_at",
                       "created_at"]  # fmt: skip

    def has_add_permission(self, request):
        return False
