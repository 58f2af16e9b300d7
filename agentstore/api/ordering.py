"""``sort_by`` / ``sort_order`` query parameters (SPEC §10).

A view lists what may be sorted on in ``sort_fields`` (public name → model field) and
may set ``default_sort``; anything else is a 40001 error rather than silently ignored.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils.translation import gettext as _
from rest_framework.filters import BaseFilterBackend
from rest_framework.request import Request

from agentstore.errors import BadRequest


class SortByFilter(BaseFilterBackend):
    def filter_queryset(self, request: Request, queryset: QuerySet, view) -> QuerySet:
        fields: dict[str, str] = getattr(view, "sort_fields", {})
        sort_by = request.query_params.get("sort_by") or getattr(view, "default_sort", "")
        sort_order = request.query_params.get("sort_order", "").lower() or getattr(
            view, "default_sort_order", "desc"
        )
        if not sort_by:
            # Pagination needs a stable order; fall back to the primary key.
            return queryset if queryset.ordered else queryset.order_by("pk")
        if sort_by not in fields:
            raise BadRequest(
                _("Cannot sort by '%(field)s'. Allowed: %(allowed)s.")
                % {"field": sort_by, "allowed": ", ".join(sorted(fields)) or "-"},
                code=40003,
            )
        if sort_order not in {"asc", "desc"}:
            raise BadRequest(_("sort_order must be 'asc' or 'desc'."), code=40003)
        column = fields[sort_by]
        prefix = "-" if sort_order == "desc" else ""
        return queryset.order_by(f"{prefix}{column}", f"{prefix}pk")

    def get_schema_operation_parameters(self, view) -> list[dict]:
        fields = sorted(getattr(view, "sort_fields", {}))
        if not fields:
            return []
        return [
            {
                "name": "sort_by",
                "required": False,
                "in": "query",
                "schema": {"type": "string", "enum": fields},
            },
            {
                "name": "sort_order",
                "required": False,
                "in": "query",
                "schema": {"type": "string", "enum": ["asc", "desc"]},
            },
        ]
