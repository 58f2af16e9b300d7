"""Account web pages (SPEC §3): register, log in/out, profile, password, API keys, language.

Views are thin: parse a form, call one service (``accounts.services``) or selector, render.
Service errors (``agentstore.errors.DomainError``) are shown as form errors.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views import i18n
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors, services
from accounts.audit import audit_record
from accounts.context_processors import THEME_COOKIE
from accounts.forms import (
    ApiKeyCreateForm,
    LoginForm,
    PasswordChangeForm,
    ProfileForm,
    RegisterForm,
    add_domain_errors,
)
from agentstore.errors import DomainError, NotFound

_BACKEND = "accounts.backends.RoleAwareBackend"
_COOKIE_AGE = 365 * 24 * 3600


def _safe_next(request, default: str = "/") -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def _remember_preferences(response: HttpResponse, *, theme: str, language: str) -> None:
    """Cookies mirror the stored preferences, so the pages keep them after logging out."""
    response.set_cookie(THEME_COOKIE, theme, max_age=_COOKIE_AGE, samesite="Lax")
    if language:
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            language,
            max_age=settings.LANGUAGE_COOKIE_AGE or _COOKIE_AGE,
            path=settings.LANGUAGE_COOKIE_PATH,
            samesite=settings.LANGUAGE_COOKIE_SAMESITE,
        )
    else:
        response.delete_cookie(settings.LANGUAGE_COOKIE_NAME, path=settings.LANGUAGE_COOKIE_PATH)


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True

    def form_valid(self, form):
        response = super().form_valid(form)
        audit_record(
            form.get_user(), action="auth.login", obj=form.get_user(), request=self.request
        )
        return response

    def form_invalid(self, form):
        if not form.has_error("__all__", code="throttled"):
            audit_record(
                None,
                action="auth.login_failed",
                request=self.request,
                via="web",
                detail={"login": form.data.get("username", "")[:150]},
            )
        return super().form_invalid(form)


class LogoutView(auth_views.LogoutView):
    """POST only (Django's LogoutView refuses GET)."""

    def post(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            audit_record(request.user, action="auth.logout", obj=request.user, request=request)
        return super().post(request, *args, **kwargs)


@require_http_methods(["GET", "POST"])
def register(request):
    if request.user.is_authenticated:
        return redirect(_safe_next(request))
    form = RegisterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = services.user_register(
                username=data["username"],
                email=data["email"],
                password=data["password1"],
                display_name=data["display_name"],
                request=request,
            )
        except DomainError as exc:
            add_domain_errors(form, exc, {"password": "password1"})
        else:
            auth_login(request, user, backend=_BACKEND)
            messages.success(request, _("Welcome to AgentStore, %(name)s!") % {"name": user})
            return redirect(_safe_next(request))
    return render(
        request, "accounts/register.html", {"form": form, "next": _safe_next(request, "")}
    )


@login_required
@require_http_methods(["GET", "POST"])
def profile(request):
    user = request.user
    form = ProfileForm.for_user(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.user_update(user, request=request, **form.cleaned_data)
        except DomainError as exc:
            user.refresh_from_db()
            add_domain_errors(form, exc)
        else:
            response = redirect("accounts:profile")
            _remember_preferences(response, theme=user.theme, language=user.language)
            # The confirmation is shown on the next page, in the language just chosen.
            translation.activate(user.language or translation.get_language_from_request(request))
            messages.success(request, _("Your profile was saved."))
            return response
    return render(request, "accounts/profile.html", {"form": form, "section": "profile"})


@login_required
@require_http_methods(["GET", "POST"])
def password_change(request):
    form = PasswordChangeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.user_change_password(
                request.user,
                old_password=form.cleaned_data["old_password"],
                new_password=form.cleaned_data["new_password1"],
                request=request,
            )
        except DomainError as exc:
            add_domain_errors(form, exc, {"new_password": "new_password1"})
        else:
            messages.success(request, _("Your password was changed."))
            return redirect("accounts:profile")
    return render(request, "accounts/password_change.html", {"form": form, "section": "password"})


@login_required
@require_http_methods(["GET", "POST"])
def api_keys(request):
    """List the user's keys; POST creates one and shows its plaintext once, on this response
    only (it is never stored, not even in the session)."""
    form = ApiKeyCreateForm(request.POST or None)
    created = plaintext = None
    if request.method == "POST" and form.is_valid():
        try:
            created, plaintext = services.api_key_create(
                request.user,
                name=form.cleaned_data["name"],
                expires_at=form.expires_at(),
                request=request,
            )
        except DomainError as exc:
            add_domain_errors(form, exc, {"expires_at": "expires_in"})
        else:
            form = ApiKeyCreateForm()
    context = {
        "form": form,
        "keys": selectors.api_key_list(request.user),
        "created": created,
        "plaintext": plaintext,
        "section": "api_keys",
        "api_base": request.build_absolute_uri("/api/v1/"),
    }
    response = render(request, "accounts/api_keys.html", context)
    if plaintext:
        add_never_cache_headers(response)
    return response


@login_required
@require_http_methods(["GET", "POST"])
def api_key_revoke(request, key_id):
    """GET asks for confirmation; POST revokes. Another user's key is a 404."""
    try:
        key = selectors.api_key_get(request.user, key_id=key_id)
        if request.method == "POST":
            services.api_key_revoke(request.user, key_id=key.pk, request=request)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    if request.method == "POST":
        messages.success(request, _("The key “%(name)s” was revoked.") % {"name": key.name})
        return redirect("accounts:api_keys")
    return render(request, "accounts/api_key_revoke.html", {"key": key, "section": "api_keys"})


@require_POST
def set_language(request):
    """Django's language switch (sets the cookie), and for a logged-in user also the stored
    preference, which wins over the cookie on every later request."""
    response = i18n.set_language(request)
    language = request.POST.get(i18n.LANGUAGE_QUERY_PARAMETER, "")
    if request.user.is_authenticated and language in dict(settings.LANGUAGES):
        services.user_update(request.user, language=language, request=request)
    return response
