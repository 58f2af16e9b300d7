"""Page-number pagination and ``sort_by`` / ``sort_order`` in the SPEC §10 shape."""

from __future__ import annotations

import pytest

from accounts.models import User

pytestmark = [pytest.mark.urls("agentstore.tests.urls_for_tests"), pytest.mark.django_db]

USERS = "/api/v1/users/"


@pytest.fixture
def many_users(user):
    # alice (the authenticated user) + 104 others = 105 rows.
    User.objects.bulk_create(
        User(username=f"u{n:03}", email=f"u{n:03}@example.com") for n in range(104)
    )


@pytest.fixture
def three_users(user, other_user, developer):
    return [user, other_user, developer]


def usernames(response) -> list[str]:
    return [item["username"] for item in response.json()["data"]["items"]]


def test_list_is_paginated_in_the_envelope(auth_client, three_users, django_assert_num_queries):
    with django_assert_num_queries(2):  # count + page
        response = auth_client.get(USERS, {"sort_by": "username", "sort_order": "asc"})

    assert response.status_code == 200
    assert response.json() == {
        "code": 0,
        "message": "success",
        "data": {
            "items": [{"username": "alice"}, {"username": "bob"}, {"username": "dora"}],
            "total": 3,
            "page": 1,
            "page_size": 20,
            "pages": 1,
        },
    }


def test_page_size_and_page_select_a_slice(auth_client, many_users):
    response = auth_client.get(
        USERS, {"page": 3, "page_size": 10, "sort_by": "username", "sort_order": "asc"}
    )

    data = response.json()["data"]
    assert usernames(response) == [f"u{n:03}" for n in range(19, 29)]
    assert {k: v for k, v in data.items() if k != "items"} == {
        "total": 105,
        "page": 3,
        "page_size": 10,
        "pages": 11,
    }


def test_page_size_above_100_is_capped_at_100(auth_client, many_users):
    response = auth_client.get(USERS, {"page_size": 500})

    data = response.json()["data"]
    assert len(data["items"]) == 100
    assert data["page_size"] == 100
    assert data["pages"] == 2


@pytest.mark.parametrize("page_size", ["0", "-5", "lots"])
def test_unusable_page_size_falls_back_to_the_default(auth_client, many_users, page_size):
    response = auth_client.get(USERS, {"page_size": page_size})

    assert response.json()["data"]["page_size"] == 20


@pytest.mark.parametrize("page", ["99", "0", "abc"])
def test_page_out_of_range_is_40401(auth_client, three_users, page):
    response = auth_client.get(USERS, {"page": page})

    assert response.status_code == 404
    assert response.json() == {"code": 40401, "message": "Not found.", "details": None}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["dora", "bob", "alice"]),  # the view's default_sort, newest first
        ({"sort_by": "username", "sort_order": "asc"}, ["alice", "bob", "dora"]),
        ({"sort_by": "username", "sort_order": "desc"}, ["dora", "bob", "alice"]),
        ({"sort_by": "username", "sort_order": "ASC"}, ["alice", "bob", "dora"]),
        ({"sort_by": "username"}, ["dora", "bob", "alice"]),  # desc unless asked
        ({"sort_by": "joined", "sort_order": "asc"}, ["alice", "bob", "dora"]),
        ({"sort_by": "joined", "sort_order": "desc"}, ["dora", "bob", "alice"]),
    ],
)
def test_sort_by_and_sort_order(auth_client, three_users, params, expected):
    response = auth_client.get(USERS, params)

    assert response.status_code == 200
    assert usernames(response) == expected


def test_unknown_sort_field_is_40003_naming_the_allowed_ones(auth_client, three_users):
    response = auth_client.get(USERS, {"sort_by": "password"})

    assert response.status_code == 400
    assert response.json() == {
        "code": 40003,
        "message": "Cannot sort by 'password'. Allowed: joined, username.",
        "details": None,
    }


def test_unknown_sort_order_is_40003(auth_client, three_users):
    response = auth_client.get(USERS, {"sort_by": "username", "sort_order": "sideways"})

    assert response.status_code == 400
    assert response.json() == {
        "code": 40003,
        "message": "sort_order must be 'asc' or 'desc'.",
        "details": None,
    }
