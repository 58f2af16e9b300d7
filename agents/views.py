"""The store website (SPEC §4.2): home, categories, search, agent detail, My agents.

Views are thin: they parse input, call one selector or service, render. Services raise
domain errors; the pages show them as messages. Anything not in the store is a 404.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from agents import selectors, services, web_selectors
from agents.forms import SORT_ORDERING, RatingForm, ReplyForm, StoreSearchForm
from agents.models import Rating
from agents.rendering import render_markdown
from agents.search import SearchPaginator, store_search
from agentstore.errors import DomainError, NotFound

PAGE_SIZE = 24
REVIEWS_PAGE_SIZE = 10
VERSIONS_PAGE_SIZE = 10
RECOMMENDATIONS = 5


def _page(request: HttpRequest, queryset, size: int, param: str = "page"):
    # Like Paginator; a search's page brings its own count.
    return SearchPaginator(queryset, size).get_page(request.GET.get(param))


def _store_agent_or_404(id_or_slug: str):
    try:
        return selectors.store_agent(id_or_slug)
    except NotFound as exc:
        raise Http404 from exc


def _show_error(request: HttpRequest, exc: DomainError) -> None:
    details = exc.details if isinstance(exc.details, dict) else {}
    texts = [str(message) for values in details.values() for message in (values or [])]
    messages.error(request, " ".join(texts) if texts else exc.message)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    tree = selectors.category_tree()
    return render(
        request,
        "store/home.html",
        {
            "nav_active": "store",
            "rows": web_selectors.home_rows(),
            "categories": web_selectors.root_categories(tree),
        },
    )


def _search_form(request: HttpRequest, **kwargs) -> StoreSearchForm:
    """The filter form; without a chosen sort it shows the one applied (best match for a
    search, most installed otherwise)."""
    data = request.GET.copy()
    if not data.get("sort"):
        data["sort"] = "relevance" if data.get("q", "").strip() else "popular"
    return StoreSearchForm(data, **kwargs)


def _filtered(form: StoreSearchForm, *, category=None):
    """The store queryset with the form's filters, search ranking and sort applied."""
    data = form.cleaned_data if form.is_valid() else {}
    queryset = web_selectors.store_cards()
    if category is not None:
        queryset = queryset.filter(category_id__in=selectors.category_descendant_ids(category))
    if data.get("tag"):
        queryset = queryset.filter(tags__slug=data["tag"])
    if data.get("type"):
        queryset = queryset.filter(agent_type=data["type"])
    if data.get("min_rating"):
        queryset = queryset.filter(rating_avg__gte=int(data["min_rating"]))
    sort = data.get("sort") or ""
    q = data.get("q") or ""
    if q:
        queryset = store_search(queryset, q)
        if sort and sort != "relevance":
            queryset = queryset.order_by(*SORT_ORDERING[sort])
    else:
        queryset = queryset.order_by(*SORT_ORDERING.get(sort, SORT_ORDERING["popular"]))
    return queryset


@require_GET
def search(request: HttpRequest) -> HttpResponse:
    tree = selectors.category_tree()
    form = _search_form(request, categories=web_selectors.flat_categories(tree))
    category = None
    if form.is_valid() and form.cleaned_data.get("category"):
        category = web_selectors.category_by_slug(form.cleaned_data["category"])
    if category is None and form.is_valid() and form.cleaned_data.get("category"):
        results = web_selectors.store_cards().none()
    else:
        results = _filtered(form, category=category)
    return render(
        request,
        "store/search.html",
        {
            "nav_active": "store",
            "form": form,
            "q": form.cleaned_data.get("q", "") if form.is_valid() else "",
            "page_obj": _page(request, results, PAGE_SIZE),
            "tags": web_selectors.popular_tags(),
            "active_tag": form.cleaned_data.get("tag", "") if form.is_valid() else "",
        },
    )


@require_GET
def category_detail(request: HttpRequest, slug: str) -> HttpResponse:
    category = web_selectors.category_by_slug(slug)
    if category is None:
        raise Http404
    form = _search_form(request)
    results = _filtered(form, category=category)
    return render(
        request,
        "store/category.html",
        {
            "nav_active": "store",
            "category": category,
            "path": web_selectors.category_path(category),
            "children": category.children.order_by("ordering", "name"),
            "form": form,
            "page_obj": _page(request, results, PAGE_SIZE),
        },
    )


@require_GET
def agent_detail(request: HttpRequest, slug: str) -> HttpResponse:
    agent = _store_agent_or_404(slug)
    install = selectors.install_of(request.user, agent)
    update_seen = None
    if install is not None and install.seen_version_id != agent.current_version_id:
        # Opening the page is seeing the new version: the "update" badge goes away.
        update_seen = agent.current_version
        services.install_mark_seen(request.user, agent=agent)
    my_rating = selectors.rating_of(request.user, agent) if install else None
    histogram = selectors.rating_histogram(agent)
    is_developer = selectors.agent_role(request.user, agent) is not None
    rating_form = RatingForm(
        initial={"stars": my_rating.stars, "text": my_rating.text} if my_rating else None
    )
    return render(
        request,
        "store/detail.html",
        {
            "nav_active": "store",
            "agent": agent,
            "description_html": render_markdown(agent.description),
            "install": install,
            "update_seen": update_seen,
            "my_rating": my_rating,
            "rating_form": rating_form,
            "histogram": [(stars, histogram[stars]) for stars in range(5, 0, -1)],
            "rating_total": sum(histogram.values()),
            "reviews": _page(request, selectors.ratings_for_agent(agent), REVIEWS_PAGE_SIZE),
            "versions": _page(
                request,
                selectors.versions_visible_in_store(agent),
                VERSIONS_PAGE_SIZE,
                "versions_page",
            ),
            "recommendations": selectors.also_installed(agent, limit=RECOMMENDATIONS),
            "is_agent_developer": is_developer,
            "can_duplicate": request.user.has_perm("agents.add_agent"),
            "chat_url": f"/chats/new?agent={agent.pk}",
        },
    )


def _back_to(agent) -> HttpResponse:
    return redirect("store:agent", slug=agent.slug)


@login_required
@require_POST
def agent_install(request: HttpRequest, slug: str) -> HttpResponse:
    agent = _store_agent_or_404(slug)
    try:
        services.agent_install(request.user, agent=agent, request=request)
    except DomainError as exc:
        _show_error(request, exc)
    else:
        messages.success(request, _("%(name)s is installed.") % {"name": agent.name})
    return _back_to(agent)


@login_required
@require_POST
def agent_uninstall(request: HttpRequest, slug: str) -> HttpResponse:
    agent = _store_agent_or_404(slug)
    try:
        services.agent_uninstall(request.user, agent=agent, request=request)
    except DomainError as exc:
        _show_error(request, exc)
    else:
        messages.success(request, _("%(name)s was uninstalled.") % {"name": agent.name})
    if request.POST.get("next") == "my-agents":
        return redirect("store:my_agents")
    return _back_to(agent)


@login_required
@require_POST
def agent_rate(request: HttpRequest, slug: str) -> HttpResponse:
    agent = _store_agent_or_404(slug)
    form = RatingForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose 1 to 5 stars."))
        return _back_to(agent)
    stars, text = form.cleaned_data["stars"], form.cleaned_data["text"]
    try:
        if selectors.rating_of(request.user, agent) is None:
            services.rating_submit(
                request.user, agent=agent, stars=stars, text=text, request=request
            )
        else:
            services.rating_update(
                request.user, agent=agent, stars=stars, text=text, request=request
            )
    except DomainError as exc:
        _show_error(request, exc)
    else:
        messages.success(request, _("Thank you for your review."))
    return redirect(reverse("store:agent", kwargs={"slug": agent.slug}) + "#reviews")


@login_required
@require_POST
def review_reply(request: HttpRequest, slug: str, rating_id: int) -> HttpResponse:
    agent = _store_agent_or_404(slug)
    rating = Rating.objects.select_related("agent").filter(pk=rating_id, agent=agent).first()
    if rating is None:
        raise Http404
    form = ReplyForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("The reply is too long."))
        return _back_to(agent)
    try:
        services.rating_reply(
            request.user, rating=rating, reply=form.cleaned_data["reply"], request=request
        )
    except DomainError as exc:
        _show_error(request, exc)
    else:
        messages.success(request, _("Your reply is published."))
    return redirect(reverse("store:agent", kwargs={"slug": agent.slug}) + f"#review-{rating.pk}")


@login_required
@require_GET
def my_agents(request: HttpRequest) -> HttpResponse:
    notifications = selectors.notifications_for(request.user)
    return render(
        request,
        "store/my_agents.html",
        {
            "nav_active": "my-agents",
            "page_obj": _page(
                request, selectors.installs_for(request.user).prefetch_related(None), 20
            ),
            "notifications": _page(request, notifications, 10, "notifications_page"),
            "unread_count": notifications.filter(read_at__isnull=True).count(),
        },
    )


@login_required
@require_POST
def notifications_read(request: HttpRequest) -> HttpResponse:
    services.notifications_mark_all_read(request.user)
    return redirect("store:my_agents")
