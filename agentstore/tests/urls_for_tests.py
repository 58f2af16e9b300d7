"""Throwaway API views for the envelope, pagination and sorting tests.

Used with ``@pytest.mark.urls("agentstore.tests.urls_for_tests")``; never part of the
real URL configuration.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.urls import path
from rest_framework import exceptions as drf_exceptions
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from agentstore import errors
from agentstore.api.serializers import StrictSerializer

RAISES = {
    "bad_request": lambda: errors.BadRequest("Bad thing."),
    "validation": lambda: errors.ValidationFailed("Nope.", details={"name": ["Too short."]}),
    "authentication": lambda: errors.AuthenticationFailed(),
    "permission": lambda: errors.PermissionDenied(),
    "not_found": lambda: errors.NotFound("No such agent."),
    "conflict": lambda: errors.Conflict("Already installed."),
    "rate_limited": lambda: errors.RateLimited(retry_after=30),
    "upstream": lambda: errors.UpstreamError("Provider timed out."),
    "domain": lambda: errors.DomainError(),
    "custom_code": lambda: errors.BadRequest("Odd.", code=40017),
    "http404": lambda: Http404("gone"),
    "django_permission": lambda: DjangoPermissionDenied(),
    "drf_throttled": lambda: drf_exceptions.Throttled(wait=12),
    "drf_not_found": lambda: drf_exceptions.NotFound(),
    "crash": lambda: RuntimeError("secret internals"),
}


class UserItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["username"]


class UserListView(generics.ListAPIView):
    queryset = User.objects.filter(is_active=True)  # not the built-in agents' system account
    serializer_class = UserItemSerializer
    sort_fields = {"username": "username", "joined": "date_joined"}
    default_sort = "joined"


class RaiseView(APIView):
    def get(self, request, kind: str):
        raise RAISES[kind]()


class EchoSerializer(StrictSerializer):
    name = serializers.CharField(max_length=5)
    count = serializers.IntegerField(min_value=1)


class EchoView(APIView):
    def post(self, request):
        serializer = EchoSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(serializer.validated_data)

    def delete(self, request):
        return Response(None)


urlpatterns = [
    path("api/v1/users/", UserListView.as_view()),
    path("api/v1/raise/<str:kind>/", RaiseView.as_view()),
    path("api/v1/echo/", EchoView.as_view()),
]
