"""The guarded outbound client refuses internal addresses, after DNS and on redirects."""

from __future__ import annotations

import ipaddress
from urllib.parse import quote

import httpx
import pytest
from django.core.cache import cache

from integrations.outbound import (
    OutboundBlocked,
    OutboundPolicy,
    async_outbound_client,
    blocked_reason,
    check_url,
    outbound_client,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_allowlist_setting():
    # The admin allowlist setting is cached; a value from another test must not leak in.
    from integrations.system_settings import _cache_key

    cache.delete(_cache_key("outbound_allowlist"))
    yield
    cache.delete(_cache_key("outbound_allowlist"))


@pytest.fixture
def no_allowlist(settings):
    settings.OUTBOUND_ALLOWLIST = []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "http://169.254.169.254/latest/meta-data/",
            "Address 169.254.169.254 is not allowed (link-local).",
        ),
        ("http://127.0.0.1:9/", "Address 127.0.0.1 is not allowed (loopback)."),
        (
            "http://localhost:9/",
            "Address 127.0.0.1 (resolved from localhost) is not allowed (loopback).",
        ),
        (
            "http://2130706433/",
            "Address 127.0.0.1 (resolved from 2130706433) is not allowed (loopback).",
        ),
        ("http://0x7f.1/", "Address 127.0.0.1 (resolved from 0x7f.1) is not allowed (loopback)."),
        ("http://[::1]:9/", "Address ::1 is not allowed (loopback)."),
        ("http://[fe80::1]/", "Address fe80::1 is not allowed (link-local)."),
        (
            "http://[::ffff:169.254.169.254]/",
            "Address ::ffff:a9fe:a9fe is not allowed (link-local).",
        ),
        ("http://[fd00::1]/", "Address fd00::1 is not allowed (private)."),
        ("http://10.0.0.5/", "Address 10.0.0.5 is not allowed (private)."),
        ("http://172.16.3.4/", "Address 172.16.3.4 is not allowed (private)."),
        ("http://192.168.1.1/", "Address 192.168.1.1 is not allowed (private)."),
        ("http://0.0.0.0/", "Address 0.0.0.0 is not allowed (unspecified)."),
        ("http://224.0.0.1/", "Address 224.0.0.1 is not allowed (multicast)."),
        ("http://240.0.0.1/", "Address 240.0.0.1 is not allowed (reserved)."),
        ("http://100.64.0.1/", "Address 100.64.0.1 is not allowed (reserved)."),
    ],
)
def test_sync_client_refuses_internal_addresses(no_allowlist, url, message):
    with outbound_client() as client, pytest.raises(OutboundBlocked) as info:
        client.get(url)

    assert str(info.value) == message


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/", "http://localhost:9/", "http://[::1]:9/", "http://2130706433/"],
)
async def test_async_client_refuses_internal_addresses(no_allowlist, url):
    async with async_outbound_client() as client:
        with pytest.raises(OutboundBlocked):
            await client.get(url)


def test_octal_ip_url_is_rejected_before_connecting(no_allowlist):
    with outbound_client() as client, pytest.raises(httpx.InvalidURL):
        client.get("http://0177.0.0.1/")


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("2002:a9fe:a9fe::1", "link-local"),  # 6to4 wrapping 169.254.169.254
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 wrapping 169.254.169.254
        ("64:ff9b::808:808", None),  # NAT64 wrapping 8.8.8.8
        ("255.255.255.255", "reserved"),
        ("::ffff:8.8.8.8", None),
    ],
)
def test_blocked_reason_looks_inside_embedded_ipv4(address, reason):
    assert blocked_reason(ipaddress.ip_address(address)) == reason


def test_non_http_scheme_is_refused(no_allowlist):
    with outbound_client() as client, pytest.raises(OutboundBlocked) as info:
        client.get("ftp://example.com/file")

    assert str(info.value) == "Only http and https URLs are allowed, not 'ftp'."


def test_allowlisted_address_is_reachable(fake_llm):
    with outbound_client() as client:
        response = client.get(f"{fake_llm.base_url}/models")

    assert response.status_code == 200
    assert fake_llm.requests[0].path == "/v1/models"


def test_allowlisted_host_name_is_reachable(fake_llm, settings):
    settings.OUTBOUND_ALLOWLIST = ["localhost"]

    with outbound_client() as client:
        response = client.get(f"http://localhost:{fake_llm.port}/v1/models")

    assert response.status_code == 200


def test_allowlist_cidr_covers_the_network(fake_llm, settings):
    settings.OUTBOUND_ALLOWLIST = ["127.0.0.0/8"]

    with outbound_client() as client:
        response = client.get(f"{fake_llm.base_url}/models")

    assert response.status_code == 200


def test_allowlist_from_system_setting(fake_llm, settings, admin_user):
    from integrations.system_settings import setting_set

    settings.OUTBOUND_ALLOWLIST = []
    setting_set(admin_user, key="outbound_allowlist", value=["127.0.0.1"])

    with outbound_client() as client:
        response = client.get(f"{fake_llm.base_url}/models")

    assert response.status_code == 200


def test_redirect_to_blocked_address_is_refused(fake_llm):
    target = quote("http://169.254.169.254/latest/meta-data/", safe="")

    with outbound_client() as client, pytest.raises(OutboundBlocked) as info:
        client.get(f"{fake_llm.url}/redirect?to={target}")

    assert str(info.value) == "Address 169.254.169.254 is not allowed (link-local)."
    assert [r.path for r in fake_llm.requests] == ["/redirect"]


async def test_async_redirect_to_blocked_address_is_refused(fake_llm):
    # 127.0.0.1 is allowlisted for the fake server; the redirect target is not.
    target = quote("http://10.0.0.1/admin", safe="")

    async with async_outbound_client() as client:
        with pytest.raises(OutboundBlocked) as info:
            await client.get(f"{fake_llm.url}/redirect?to={target}")

    assert str(info.value) == "Address 10.0.0.1 is not allowed (private)."


def test_allowed_redirect_is_followed(fake_llm):
    target = quote(f"{fake_llm.base_url}/models", safe="")

    with outbound_client() as client:
        response = client.get(f"{fake_llm.url}/redirect?to={target}")

    assert response.status_code == 200
    assert [r.path for r in fake_llm.requests] == ["/redirect", "/v1/models"]


def test_redirects_are_capped_at_five(fake_llm):
    url = f"{fake_llm.base_url}/models"
    for _ in range(6):
        url = f"{fake_llm.url}/redirect?to={quote(url, safe='')}"

    with outbound_client() as client, pytest.raises(httpx.TooManyRedirects):
        client.get(url)


def test_check_url_validates_before_saving(no_allowlist):
    with pytest.raises(OutboundBlocked) as info:
        check_url("http://169.254.169.254/")

    assert info.value.reason == "link-local"


def test_check_url_accepts_allowlisted_address():
    policy = OutboundPolicy.from_entries(["127.0.0.1"])

    assert check_url("http://127.0.0.1:8000/x", policy=policy) == [
        ipaddress.ip_address("127.0.0.1")
    ]


def test_clients_always_have_a_timeout():
    with outbound_client(timeout=None) as client:
        assert client.timeout.read == 60.0
        assert client.timeout.connect == 10.0


def test_clients_ignore_environment_proxies(monkeypatch, fake_llm):
    monkeypatch.setenv("HTTP_PROXY", "http://169.254.169.254:3128")

    with outbound_client() as client:
        response = client.get(f"{fake_llm.base_url}/models")

    assert response.status_code == 200
