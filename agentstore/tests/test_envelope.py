"""The SPEC §10 envelope: success wrapping, every error code with its HTTP status."""

from __future__ import annotations

import logging

import pytest

pytestmark = [pytest.mark.urls("agentstore.tests.urls_for_tests"), pytest.mark.django_db]

ECHO = "/api/v1/echo/"


@pytest.mark.parametrize(
    ("kind", "status", "body"),
    [
        ("bad_request", 400, {"code": 40001, "message": "Bad thing.", "details": None}),
        (
            "validation",
            400,
            {"code": 40002, "message": "Nope.", "details": {"name": ["Too short."]}},
        ),
        (
            "authentication",
            401,
            {"code": 40101, "message": "Authentication failed.", "details": None},
        ),
        (
            "permission",
            403,
            {
                "code": 40301,
                "message": "You do not have permission to do this.",
                "details": None,
            },
        ),
        ("not_found", 404, {"code": 40401, "message": "No such agent.", "details": None}),
        ("conflict", 409, {"code": 40901, "message": "Already installed.", "details": None}),
        ("upstream", 502, {"code": 50201, "message": "Provider timed out.", "details": None}),
        ("domain", 500, {"code": 50001, "message": "Internal error.", "details": None}),
        ("custom_code", 400, {"code": 40017, "message": "Odd.", "details": None}),
        ("http404", 404, {"code": 40401, "message": "Not found.", "details": None}),
        (
            "django_permission",
            403,
            {
                "code": 40301,
                "message": "You do not have permission to do this.",
                "details": None,
            },
        ),
        ("drf_not_found", 404, {"code": 40401, "message": "Not found.", "details": None}),
    ],
)
def test_errors_are_enveloped_with_their_code_and_matching_status(auth_client, kind, status, body):
    response = auth_client.get(f"/api/v1/raise/{kind}/")

    assert response.status_code == status
    assert response.json() == body
    assert "Retry-After" not in response


@pytest.mark.parametrize(
    ("kind", "message", "retry_after"),
    [
        ("rate_limited", "Too many requests.", 30),
        ("drf_throttled", "Too many requests; try again in 12 s.", 12),
    ],
)
def test_rate_limits_carry_retry_after_in_body_and_header(auth_client, kind, message, retry_after):
    response = auth_client.get(f"/api/v1/raise/{kind}/")

    assert response.status_code == 429
    assert response["Retry-After"] == str(retry_after)
    assert response.json() == {
        "code": 42901,
        "message": message,
        "details": {"retry_after": retry_after},
    }


def test_unexpected_exception_is_a_logged_50001_without_internals(auth_client, caplog):
    with caplog.at_level(logging.ERROR, logger="agentstore.api.envelope"):
        response = auth_client.get("/api/v1/raise/crash/")

    [record] = [r for r in caplog.records if r.name == "agentstore.api.envelope"]
    assert response.status_code == 500
    assert response.json() == {"code": 50001, "message": "Internal server error.", "details": None}
    assert record.getMessage() == "unhandled error in RaiseView"
    assert record.exc_info[0] is RuntimeError


def test_success_is_wrapped_in_code_zero(auth_client):
    response = auth_client.post(ECHO, {"name": "abc", "count": 2}, format="json")

    assert response.status_code == 200
    assert response.json() == {"code": 0, "message": "success", "data": {"name": "abc", "count": 2}}


def test_delete_answers_200_with_null_data(auth_client):
    response = auth_client.delete(ECHO)

    assert response.status_code == 200
    assert response.json() == {"code": 0, "message": "success", "data": None}


def test_malformed_json_is_40001(auth_client):
    response = auth_client.post(ECHO, data='{"name": ', content_type="application/json")

    body = response.json()
    assert response.status_code == 400
    assert body["code"] == 40001
    assert body["message"].startswith("Malformed request body: JSON parse error")
    assert body["details"] is None


@pytest.mark.parametrize(
    ("payload", "details"),
    [
        (
            {"name": "toolong", "count": 0},
            {
                "name": ["Ensure this field has no more than 5 characters."],
                "count": ["Ensure this value is greater than or equal to 1."],
            },
        ),
        ({}, {"name": ["This field is required."], "count": ["This field is required."]}),
        ({"name": "abc", "count": 1, "colour": "red"}, {"colour": ["Unknown field."]}),
        ([1, 2], {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}),
    ],
)
def test_invalid_input_is_40002_with_field_details(auth_client, payload, details):
    response = auth_client.post(ECHO, payload, format="json")

    assert response.status_code == 400
    assert response.json() == {"code": 40002, "message": "Validation failed.", "details": details}


def test_unsupported_media_type_is_41501(auth_client):
    response = auth_client.post(ECHO, data="name=abc", content_type="text/plain")

    assert response.status_code == 415
    assert response.json() == {
        "code": 41501,
        "message": 'Unsupported media type "text/plain" in request.',
        "details": None,
    }


def test_wrong_method_is_40501(auth_client):
    response = auth_client.get(ECHO)

    assert response.status_code == 405
    assert response.json() == {
        "code": 40501,
        "message": 'Method "GET" not allowed.',
        "details": None,
    }


def test_missing_credentials_are_40101_with_a_challenge(api_client):
    response = api_client.get("/api/v1/users/")

    assert response.status_code == 401
    assert response["WWW-Authenticate"]
    assert response.json() == {
        "code": 40101,
        "message": "Authentication credentials were not provided.",
        "details": None,
    }


def test_invalid_token_is_40102(api_client):
    response = api_client.get("/api/v1/users/", headers={"Authorization": "Bearer not-a-token"})

    body = response.json()
    assert response.status_code == 401
    assert body["code"] == 40102
    assert body["details"] is None
