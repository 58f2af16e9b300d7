"""The guarded outbound HTTP client: every outbound call of the product goes through it.

Provider calls and connection tests now, MCP connections and webhooks later, use
:func:`outbound_client` / :func:`async_outbound_client` (httpx clients), so that a URL an
admin, developer or user typed cannot reach the machine's own services or the cloud
metadata endpoint (server-side request forgery).

What is refused
    Loopback, link-local (169.254.0.0/16 incl. the metadata address 169.254.169.254,
    fe80::/10), private (10/8, 172.16/12, 192.168/16, fc00::/7), unspecified, multicast,
    reserved and other non-global addresses, including IPv4 addresses embedded in IPv6
    (``::ffff:a.b.c.d``, 6to4, Teredo, NAT64); schemes other than http/https; Unix sockets.
    ``settings.OUTBOUND_ALLOWLIST`` (and the system setting ``outbound_allowlist``, a list
    or comma-separated string) lists host names (``ollama.internal``, ``*.corp.example``),
    IP addresses or CIDR networks that are allowed anyway.

How the check cannot be bypassed
    The check is not done on the URL text (``http://2130706433/``, ``http://0x7f.1/`` and
    friends are just other spellings of 127.0.0.1) but where the connection is made: the
    httpx transport's connection pool gets a wrapped *network backend* whose
    ``connect_tcp(host, port)`` resolves ``host`` itself, refuses if ANY resolved address is
    disallowed, and then opens the TCP connection to one of exactly those vetted IP
    addresses. The connection therefore goes to the address that was checked (no second
    DNS lookup, so DNS rebinding between check and connect is impossible), while TLS still
    uses the URL's host name for SNI and certificate verification (httpcore takes those
    from the request, not from the socket). Because every new connection goes through the
    backend, each redirect hop (httpx follows at most 5) is checked the same way, and so is
    a pooled keep-alive connection's first use. Proxies from the environment are ignored
    (``trust_env=False``): a proxy would make the address check meaningless.

Timeouts are always set (a ``None`` timeout is replaced by the default).
"""

from __future__ import annotations

import functools
import importlib
import ipaddress
import logging
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
from django.conf import settings
from django.core.exceptions import SynchronousOnlyOperation
from django.db import DatabaseError
from django.utils.translation import gettext as _

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=30.0, pool=10.0)
MAX_REDIRECTS = 5
ALLOWED_SCHEMES = frozenset({"http", "https"})
SYSTEM_SETTING_KEY = "outbound_allowlist"

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class OutboundBlocked(Exception):
    """The destination is not allowed. The message names the address and why."""

    def __init__(self, message: str, *, address: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.address = address
        self.reason = reason


# --- address classification ------------------------------------------------------------------


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def blocked_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be contacted (``"loopback"``, ``"link-local"``, …), or None."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            # The packet ends up at the IPv4 address (a mapped socket, 6to4, Teredo, NAT64).
            return blocked_reason(embedded)
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "reserved"
    return None


# --- the policy ---------------------------------------------------------------------------------


def _split_entries(raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = raw.replace("\n", ",").split(",")
    if not isinstance(raw, Iterable):
        return []
    return [str(item).strip() for item in raw if str(item).strip()]


def _normalize_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


@dataclass(frozen=True)
class OutboundPolicy:
    """The allowlist in force for one client: host names/patterns and IP networks."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()
    entries: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> OutboundPolicy:
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        kept: list[str] = []
        for entry in entries:
            text = _normalize_host(str(entry))
            if not text:
                continue
            kept.append(text)
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                hosts.add(text)
        return cls(hosts=frozenset(hosts), networks=tuple(networks), entries=tuple(kept))

    def host_allowed(self, host: str) -> bool:
        host = _normalize_host(host)
        if host in self.hosts:
            return True
        return any(
            pattern.startswith("*.") and host.endswith(pattern[1:]) for pattern in self.hosts
        )

    def address_allowed(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.networks)

    def vet(self, host: str, addresses: Iterable[IPAddress]) -> list[IPAddress]:
        """The addresses, if every one of them may be contacted; else OutboundBlocked."""
        vetted = list(dict.fromkeys(addresses))
        if not vetted:
            raise OutboundBlocked(
                _("%(host)s did not resolve to any address.") % {"host": host}, address=host
            )
        if self.host_allowed(host):
            return vetted
        for ip in vetted:
            reason = blocked_reason(ip)
            if reason is None or self.address_allowed(ip):
                continue
            if _literal_ip(host) == ip:
                message = _("Address %(ip)s is not allowed (%(reason)s).")
            else:
                message = _("Address %(ip)s (resolved from %(host)s) is not allowed (%(reason)s).")
            raise OutboundBlocked(
                message % {"ip": ip, "host": host, "reason": reason},
                address=str(ip),
                reason=reason,
            )
        return vetted


def _system_allowlist() -> list[str]:
    try:
        from integrations.system_settings import setting_get
    except ImportError:  # pragma: no cover - the system settings module is optional
        return []
    try:
        return _split_entries(setting_get(SYSTEM_SETTING_KEY, default=None))
    except SynchronousOnlyOperation:
        # Called on an event loop with a cold cache: the static allowlist still applies,
        # and refusing more (not less) is the safe side.
        logger.debug("outbound allowlist system setting not read from async context")
        return []
    except DatabaseError:
        return []


def current_policy() -> OutboundPolicy:
    """``settings.OUTBOUND_ALLOWLIST`` plus the admin's ``outbound_allowlist`` setting."""
    entries = _split_entries(getattr(settings, "OUTBOUND_ALLOWLIST", []))
    entries += _system_allowlist()
    return OutboundPolicy.from_entries(entries)


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(_normalize_host(host))
    except ValueError:
        return None


def _parse_infos(infos: Iterable[tuple]) -> list[IPAddress]:
    found: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        # Strip an IPv6 zone id ("fe80::1%eth0"), which ip_address() does not accept.
        found.append(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
    return found


def resolve(host: str, port: int = 443, *, error: type[Exception] = OSError) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    literal = _literal_ip(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise error(f"Could not resolve {host}: {exc}") from exc
    return _parse_infos(infos)


async def aresolve(
    host: str, port: int = 443, *, error: type[Exception] = OSError
) -> list[IPAddress]:
    literal = _literal_ip(host)
    if literal is not None:
        return [literal]
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise error(f"Could not resolve {host}: {exc}") from exc
    return _parse_infos(infos)


def check_url(url: str, *, policy: OutboundPolicy | None = None) -> list[IPAddress]:
    """Validate a URL now (e.g. when a webhook or base URL is saved): scheme, then addresses.

    Saving is not enough on its own — DNS can change — which is why the clients check again
    at connect time. Returns the vetted addresses; raises OutboundBlocked.
    """
    parts = urlsplit(str(url))
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise OutboundBlocked(
            _("Only http and https URLs are allowed, not %(scheme)r.")
            % {"scheme": parts.scheme or ""},
            reason="scheme",
        )
    if not parts.hostname:
        raise OutboundBlocked(_("The URL has no host."), reason="host")
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    policy = policy or current_policy()
    try:
        addresses = resolve(parts.hostname, port)
    except OSError as exc:
        raise OutboundBlocked(
            _("%(host)s could not be resolved.") % {"host": parts.hostname},
            address=parts.hostname,
            reason="dns",
        ) from exc
    return policy.vet(parts.hostname, addresses)


# --- the network backends and transports --------------------------------------------------------
#
# The same guard serves two HTTP stacks: ``httpx``/``httpcore`` (our own calls, MCP, webhooks)
# and ``httpx2``/``httpcore2``, the fork the openai and anthropic SDKs are built on (the
# anthropic SDK refuses httpx clients). Both have the same backend interface.

_CORE_OF = {"httpx": "httpcore", "httpx2": "httpcore2"}


class _GuardedBackend:
    """Wraps a sync httpcore(2) network backend: resolve, vet, connect to a vetted IP."""

    def __init__(self, inner: Any, policy: OutboundPolicy, core: Any) -> None:
        self._inner = inner
        self._policy = policy
        self._core = core

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> Any:
        addresses = self._policy.vet(host, resolve(host, port, error=self._core.ConnectError))
        last_error: Exception | None = None
        for ip in addresses:
            try:
                return self._inner.connect_tcp(
                    str(ip), port, timeout, local_address, socket_options
                )
            except (self._core.ConnectError, self._core.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None  # noqa: S101 - vet() never returns an empty list
        raise last_error

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise OutboundBlocked(_("Unix sockets are not allowed."), reason="unix-socket")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _AsyncGuardedBackend:
    """Wraps an async httpcore(2) network backend: resolve, vet, connect to a vetted IP."""

    def __init__(self, inner: Any, policy: OutboundPolicy, core: Any) -> None:
        self._inner = inner
        self._policy = policy
        self._core = core

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> Any:
        try:
            with anyio.fail_after(timeout):
                resolved = await aresolve(host, port, error=self._core.ConnectError)
        except TimeoutError as exc:
            raise self._core.ConnectTimeout(f"Resolving {host} timed out") from exc
        addresses = self._policy.vet(host, resolved)
        last_error: Exception | None = None
        for ip in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(ip), port, timeout, local_address, socket_options
                )
            except (self._core.ConnectError, self._core.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None  # noqa: S101 - vet() never returns an empty list
        raise last_error

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):  # noqa: ASYNC109
        raise OutboundBlocked(_("Unix sockets are not allowed."), reason="unix-socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _check_scheme(request: Any) -> None:
    if request.url.scheme not in ALLOWED_SCHEMES:
        raise OutboundBlocked(
            _("Only http and https URLs are allowed, not %(scheme)r.")
            % {"scheme": request.url.scheme},
            reason="scheme",
        )


@functools.cache
def _stack(flavor: str) -> tuple[Any, type, type]:
    """``(httpx module, sync transport class, async transport class)`` for a flavor."""
    if flavor not in _CORE_OF:
        raise ValueError(f"unknown HTTP stack {flavor!r}")
    hx = importlib.import_module(flavor)
    core = importlib.import_module(_CORE_OF[flavor])

    class GuardedTransport(hx.HTTPTransport):
        def __init__(self, *, policy: OutboundPolicy, **kwargs: Any) -> None:
            kwargs.pop("proxy", None)
            kwargs.pop("uds", None)
            super().__init__(**kwargs)
            pool = self._pool
            pool._network_backend = _GuardedBackend(pool._network_backend, policy, core)

        def handle_request(self, request):
            _check_scheme(request)
            return super().handle_request(request)

    class AsyncGuardedTransport(hx.AsyncHTTPTransport):
        def __init__(self, *, policy: OutboundPolicy, **kwargs: Any) -> None:
            kwargs.pop("proxy", None)
            kwargs.pop("uds", None)
            super().__init__(**kwargs)
            pool = self._pool
            pool._network_backend = _AsyncGuardedBackend(pool._network_backend, policy, core)

        async def handle_async_request(self, request):
            _check_scheme(request)
            return await super().handle_async_request(request)

    return hx, GuardedTransport, AsyncGuardedTransport


# --- the clients ---------------------------------------------------------------------------------


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Building a context loads the CA bundle (~80 ms); one per process is enough and is
    # safe to share between clients and threads.
    return httpx.create_ssl_context()


def _timeout(hx: Any, value: Any) -> Any:
    if value is None:
        value = DEFAULT_TIMEOUT
    if isinstance(value, int | float):
        return hx.Timeout(value)
    return hx.Timeout(**value.as_dict())


def _client_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    for forbidden in ("transport", "mounts", "proxy", "trust_env", "max_redirects"):
        if forbidden in kwargs:
            raise TypeError(f"outbound clients do not accept {forbidden!r}")
    return kwargs


def outbound_client(
    *,
    timeout: Any = None,
    policy: OutboundPolicy | None = None,
    follow_redirects: bool = True,
    limits: Any = None,
    flavor: str = "httpx",
    **kwargs: Any,
) -> httpx.Client:
    """A synchronous httpx client whose every connection is vetted (see the module doc).

    ``flavor="httpx2"`` returns an ``httpx2.Client`` (for the openai/anthropic SDKs).
    """
    hx, transport_class, _async = _stack(flavor)
    transport = transport_class(
        policy=policy or current_policy(), limits=limits or hx.Limits(), verify=_ssl_context()
    )
    return hx.Client(
        transport=transport,
        timeout=_timeout(hx, timeout),
        follow_redirects=follow_redirects,
        max_redirects=MAX_REDIRECTS,
        trust_env=False,
        **_client_kwargs(kwargs),
    )


def async_outbound_client(
    *,
    timeout: Any = None,
    policy: OutboundPolicy | None = None,
    follow_redirects: bool = True,
    limits: Any = None,
    flavor: str = "httpx",
    **kwargs: Any,
) -> httpx.AsyncClient:
    """An async httpx client whose every connection is vetted (see the module doc).

    Like every async client it belongs to the event loop that first uses it: create one per
    run and close it (``await client.aclose()``). ``flavor="httpx2"`` returns an
    ``httpx2.AsyncClient`` (what the openai/anthropic SDKs take as ``http_client``).
    """
    hx, _sync, transport_class = _stack(flavor)
    transport = transport_class(
        policy=policy or current_policy(), limits=limits or hx.Limits(), verify=_ssl_context()
    )
    return hx.AsyncClient(
        transport=transport,
        timeout=_timeout(hx, timeout),
        follow_redirects=follow_redirects,
        max_redirects=MAX_REDIRECTS,
        trust_env=False,
        **_client_kwargs(kwargs),
    )


# --- aiohttp, for the streamed provider calls ---------------------------------------------------


def vet_url(url: str, policy: OutboundPolicy) -> None:
    """What the aiohttp session's resolver cannot see: the scheme, and a host that is an
    IP literal (aiohttp connects to those without asking the resolver)."""
    parts = urlsplit(url)
    if parts.scheme not in ALLOWED_SCHEMES:
        raise OutboundBlocked(
            _("Only http and https URLs are allowed, not %(scheme)r.") % {"scheme": parts.scheme},
            reason="scheme",
        )
    host = parts.hostname or ""
    literal = _literal_ip(host)
    if literal is not None:
        policy.vet(host, [literal])


class _GuardedResolver:
    """An aiohttp resolver that vets every address a name resolves to (the same rule as
    the httpx backend above). aiohttp connects to one of exactly the returned addresses,
    so what was checked is what is contacted."""

    def __init__(self, policy: OutboundPolicy) -> None:
        import aiohttp

        self._inner = aiohttp.ThreadedResolver()
        self._policy = policy

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list:
        infos = await self._inner.resolve(host, port, family)
        found = [ipaddress.ip_address(str(info["host"]).split("%", 1)[0]) for info in infos]
        allowed = set(self._policy.vet(host, found))
        return [info for info, ip in zip(infos, found, strict=True) if ip in allowed]

    async def close(self) -> None:
        await self._inner.close()


def aiohttp_session(*, policy: OutboundPolicy, timeout: Any = None) -> Any:
    """A guarded ``aiohttp.ClientSession`` (create it on the loop that will use it; send
    requests with ``allow_redirects=False`` and check the URL with :func:`vet_url`)."""
    import aiohttp
    from aiohttp.abc import AbstractResolver

    resolver_class = type("GuardedResolver", (_GuardedResolver, AbstractResolver), {})
    timeout = timeout or DEFAULT_TIMEOUT
    connector = aiohttp.TCPConnector(
        resolver=resolver_class(policy),
        ssl=_ssl_context(),
        limit=0,  # one session serves every run of a worker process
        limit_per_host=0,
        ttl_dns_cache=10,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(
            total=None,
            sock_connect=timeout.connect,
            connect=(timeout.connect or 0) + (timeout.pool or 0) or None,
            sock_read=timeout.read,
        ),
        trust_env=False,
        read_bufsize=1024 * 1024,  # an SSE line may be up to twice this
    )
