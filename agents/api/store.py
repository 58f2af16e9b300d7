"""Store API for end users: catalogue, detail, install, ratings, categories, my installs
and notifications. Catalogue reads are public; everything else needs a signed-in user."""

from __future__ import annotations

import django_filters
from django.db.models import F, QuerySet
from django.utils.translation import gettext_lazy as _
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny, IsAuthenticated, IsAuthenticatedOrReadOnly
from rest_framework.request import Request
from rest_framework.response import Response

from agents import selectors, services
from agents.api import serializers as s
from agents.models import Agent, AgentType, Install, Notification, Rating
from agents.search import SearchPaginator, store_search
from agentstore.api.pagination import PagePagination
from agentstore.errors import NotFound


class StoreAgentFilter(django_filters.FilterSet):
    category = django_filters.CharFilter(
        method="filter_category", help_text=_("Category id or slug (includes subcategories).")
    )
    tag = django_filters.CharFilter(field_name="tags__slug", help_text=_("Tag slug."))
    agent_type = django_filters.ChoiceFilter(choices=AgentType.choices)
    min_rating = django_filters.NumberFilter(
        field_name="rating_avg", lookup_expr="gte", min_value=0, max_value=5
    )
    featured = django_filters.BooleanFilter(field_name="is_featured")

    class Meta:
        model = Agent
        fields = ["category", "tag", "agent_type", "min_rating", "featured"]

    def filter_category(self, queryset: QuerySet[Agent], name: str, value: str) -> QuerySet:
        ids = selectors.category_ids_under(value)
        if ids is None:
            return queryset.none()
        return queryset.filter(category_id__in=ids)


SORTS = {
    "popular": [F("install_count").desc(), F("rating_avg").desc()],
    "rating": [F("rating_avg").desc(), F("rating_count").desc()],
    "newest": [F("published_at").desc(nulls_last=True)],
    "name": [F("name").asc()],
}


def _sorted(queryset: QuerySet[Agent], sort_by: str, sort_order: str | None) -> QuerySet:
    keys = SORTS[sort_by]
    if sort_order:
        wanted_desc = sort_order == "desc"
        keys = [
            (F(key.expression.name).desc() if wanted_desc else F(key.expression.name).asc())
            for key in keys
        ]
    return queryset.order_by(*keys, "pk")


class StorePagination(PagePagination):
    # A search page brings its own count (agents.search.SearchPaginator).
    django_paginator_class = SearchPaginator


@extend_schema(
    tags=["store"],
    parameters=[
        OpenApiParameter("q", str, description="Search text"),
        OpenApiParameter("sort_by", str, enum=list(s.StoreQuerySerializer.SORTS)),
        OpenApiParameter("sort_order", str, enum=["asc", "desc"]),
    ],
    responses=s.AgentCardSerializer(many=True),
)
class StoreAgentListView(GenericAPIView):
    """The catalogue: published agents with an approved current version."""

    permission_classes = [AllowAny]
    serializer_class = s.AgentCardSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = StoreAgentFilter
    pagination_class = StorePagination

    def get_queryset(self) -> QuerySet[Agent]:
        return selectors.store_listing()

    def get(self, request: Request) -> Response:
        params = s.StoreQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        q = params.validated_data.get("q", "")
        sort_by = params.validated_data.get("sort_by") or ("relevance" if q else "popular")
        queryset = self.filter_queryset(self.get_queryset())
        if q:
            queryset = store_search(queryset, q)
        if sort_by == "relevance":
            if not q:
                queryset = _sorted(queryset, "popular", None)
        else:
            queryset = _sorted(queryset, sort_by, params.validated_data.get("sort_order"))
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class StoreAgentDetailView(GenericAPIView):
    permission_classes = [AllowAny]
    serializer_class = s.AgentStoreDetailSerializer

    @extend_schema(tags=["store"])
    def get(self, request: Request, ref: str) -> Response:
        agent = selectors.store_agent(ref)
        data = self.get_serializer(agent).data
        install = selectors.install_of(request.user, agent)
        rating = selectors.rating_of(request.user, agent) if install else None
        data["versions"] = s.StoreVersionSerializer(
            selectors.versions_visible_in_store(agent), many=True
        ).data
        data["rating_histogram"] = selectors.rating_histogram(agent)
        data["is_installed"] = install is not None
        data["update_available"] = bool(install and install.update_available)
        data["my_rating"] = s.RatingSerializer(rating).data if rating else None
        return Response(data)


class StoreInstallView(GenericAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = s.InstallSerializer

    @extend_schema(tags=["store"], request=None)
    def post(self, request: Request, ref: str) -> Response:
        agent = selectors.store_agent(ref)
        install = services.agent_install(request.user, agent=agent, request=request)
        install.agent = selectors.store_agent(agent.pk)  # fresh counters
        return Response(self.get_serializer(install).data, status=status.HTTP_201_CREATED)

    @extend_schema(tags=["store"], request=None, responses={200: None})
    def delete(self, request: Request, ref: str) -> Response:
        agent = selectors.agent_for_uninstall(request.user, ref)
        services.agent_uninstall(request.user, agent=agent, request=request)
        return Response(None)


class StoreRatingsView(GenericAPIView):
    queryset = Rating.objects.none()  # for the schema generator only
    permission_classes = [IsAuthenticatedOrReadOnly]
    serializer_class = s.RatingSerializer

    @extend_schema(tags=["store"], responses=s.RatingSerializer(many=True))
    def get(self, request: Request, ref: str) -> Response:
        agent = selectors.store_agent(ref)
        page = self.paginate_queryset(selectors.ratings_for_agent(agent))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(tags=["store"], request=s.RatingWriteSerializer)
    def post(self, request: Request, ref: str) -> Response:
        agent = selectors.store_agent(ref)
        body = s.RatingWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        rating = services.rating_submit(
            request.user,
            agent=agent,
            stars=body.validated_data["rating"],
            text=body.validated_data["text"],
            request=request,
        )
        return Response(self.get_serializer(rating).data, status=status.HTTP_201_CREATED)

    @extend_schema(tags=["store"], request=s.RatingUpdateSerializer)
    def put(self, request: Request, ref: str) -> Response:
        agent = selectors.store_agent(ref)
        body = s.RatingUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        rating = services.rating_update(
            request.user,
            agent=agent,
            stars=body.validated_data.get("rating"),
            text=body.validated_data.get("text"),
            request=request,
        )
        return Response(self.get_serializer(rating).data)


class StoreRatingReplyView(GenericAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = s.RatingSerializer

    @extend_schema(tags=["store"], request=s.ReplySerializer)
    def post(self, request: Request, ref: str, rating_id: int) -> Response:
        agent = selectors.store_agent(ref)
        rating = (
            Rating.objects.select_related("user", "agent").filter(agent=agent, pk=rating_id).first()
        )
        if rating is None:
            raise NotFound()
        body = s.ReplySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        rating = services.rating_reply(
            request.user, rating=rating, reply=body.validated_data["reply"], request=request
        )
        return Response(self.get_serializer(rating).data)


class StoreCategoriesView(GenericAPIView):
    permission_classes = [AllowAny]
    pagination_class = None

    @extend_schema(tags=["store"], responses={200: {"type": "array", "items": {"type": "object"}}})
    def get(self, request: Request) -> Response:
        return Response(selectors.category_tree())


class MyInstallsView(GenericAPIView):
    queryset = Install.objects.none()  # for the schema generator only
    permission_classes = [IsAuthenticated]
    serializer_class = s.InstallSerializer

    @extend_schema(tags=["store"], responses=s.InstallSerializer(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(selectors.installs_for(request.user))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class NotificationListView(GenericAPIView):
    queryset = Notification.objects.none()  # for the schema generator only
    permission_classes = [IsAuthenticated]
    serializer_class = s.NotificationSerializer

    @extend_schema(
        tags=["notifications"],
        parameters=[OpenApiParameter("unread", bool)],
        responses=s.NotificationSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        unread = request.query_params.get("unread", "").lower() in {"1", "true", "yes"}
        page = self.paginate_queryset(selectors.notifications_for(request.user, unread_only=unread))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class NotificationReadView(GenericAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = s.NotificationSerializer

    @extend_schema(tags=["notifications"], request=None)
    def post(self, request: Request, notification_id: str) -> Response:
        notification = services.notification_mark_read(
            request.user, notification_id=notification_id
        )
        return Response(self.get_serializer(notification).data)


class NotificationReadAllView(GenericAPIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        tags=["notifications"],
        request=None,
        responses={200: {"type": "object", "properties": {"marked": {"type": "integer"}}}},
    )
    def post(self, request: Request) -> Response:
        return Response({"marked": services.notifications_mark_all_read(request.user)})
