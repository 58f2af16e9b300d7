"""Page-number pagination in the SPEC §10 shape: items, total, page, page_size, pages."""

from __future__ import annotations

import math
from typing import Any

from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response


class PagePagination(PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_paginated_response(self, data: list[Any]) -> Response:
        total = self.page.paginator.count
        size = self.page.paginator.per_page
        return Response(
            {
                "items": data,
                "total": total,
                "page": self.page.number,
                "page_size": size,
                "pages": math.ceil(total / size) if size else 0,
            }
        )

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {
            "type": "object",
            "required": ["items", "total", "page", "page_size", "pages"],
            "properties": {
                "items": schema,
                "total": {"type": "integer"},
                "page": {"type": "integer"},
                "page_size": {"type": "integer", "maximum": self.max_page_size},
                "pages": {"type": "integer"},
            },
        }
