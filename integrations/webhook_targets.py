"""Where a webhook may post: public addresses only, checked at save and again at connect.

Whoever may subscribe types the webhook URL. Unchecked, it reaches what only the server can
reach: the cloud metadata service (169.254.169.254), the database or Redis on 127.0.0.1, the
intranet (server-side request forgery). So every address a target host resolves to must be a
globally routable unicast address (``refusal`` says what is not), checked twice:

- **at save** (``check_url``, called by ``EventSubscription.clean``: the admin form and the
  API), so a person gets a clear message;
- **at connect** (``PinnedTransport``): the host is resolved again, *every* address is checked,
  and the connection goes to a checked address while the request still names the URL's host
  (``Host`` header, TLS SNI and certificate check). An answer that changes between the check
  and the connect (DNS rebinding) can't pass: there is no second lookup.

``FLOWDESK_WEBHOOK_ALLOW_HOSTS`` (comma-separated host names or addresses, as written in URLs)
opens named hosts anyway: tests' receivers on 127.0.0.1, an intranet receiver.

A delivery also has one deadline for everything (``FLOWDESK_EVENTS_TIMEOUT``): the lookup, the
connect, TLS, sending the event and the answer's status line and headers. The answer's body is
never read.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

import httpcore
import httpx
from django.conf import settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# What resolves host names (a module attribute, so a unit test can play a rebinding resolver).
getaddrinfo = socket.getaddrinfo

SAVE_LOOKUP_SECONDS = 2.0  # the save-time lookup: long enough for a slow resolver, short for a form
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class TargetRefused(ValueError):
    """The target is not a public address (``reason``: short, for the delivery log)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class Unresolvable(OSError):
    """The host name does not resolve (now)."""


def refusal(address: Address) -> str | None:
    """Why ``address`` may not be a webhook target (None: a public unicast address)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:  # ::ffff:a.b.c.d and 2002:AABB:CCDD::/48 carry an IPv4 address
            why = refusal(embedded)
            return f"IPv4-mapped {why}" if why else None
        if any(address in net for net in NAT64):
            return "NAT64 (translated) address"
    if address.is_unspecified:
        return "unspecified address"
    if address.is_loopback:
        return "loopback address"
    if address.is_link_local:
        return "link-local address"
    if address in CGNAT:
        return "shared (carrier-grade NAT) address"
    if address.is_multicast:
        return "multicast address"
    if address.is_private and not address.is_reserved:
        return "private address"
    if address.is_reserved:
        return "reserved address"
    if not address.is_global:
        return "special-purpose address"
    return None


def _normal(host: str) -> str:
    host = host.strip().strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def allowed_hosts() -> set[str]:
    """``FLOWDESK_WEBHOOK_ALLOW_HOSTS``: the hosts opened despite their addresses."""
    value = getattr(settings, "FLOWDESK_WEBHOOK_ALLOW_HOSTS", "") or ""
    names = value.split(",") if isinstance(value, str) else value
    return {_normal(name) for name in names if name and name.strip()}


def is_allowed(host: str) -> bool:
    return _normal(host) in allowed_hosts()


def split_url(url: str) -> tuple[str, int]:
    """The URL's host and port (TargetRefused: not an http(s) URL with a host)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"not a valid URL: {exc}", "invalid URL") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("a webhook URL starts with https:// or http://", "invalid URL")
    if not parts.hostname:
        raise TargetRefused("the URL names no host", "invalid URL")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def resolve(host: str, port: int, *, timeout: float) -> list[Address]:
    """Every address ``host`` resolves to, in the resolver's order, within ``timeout`` seconds."""
    try:
        return [ipaddress.ip_address(_normal(host).split("%")[0])]
    except ValueError:
        pass
    found: list = []

    def look_up():
        try:
            found.append(getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except Exception as exc:  # gaierror, UnicodeError: the name does not resolve
            found.append(exc)

    # getaddrinfo has no timeout of its own: a thread that is given up on ends on its own.
    thread = threading.Thread(target=look_up, name="flowdesk-webhook-dns", daemon=True)
    thread.start()
    thread.join(max(0.0, timeout))
    if not found:
        raise Unresolvable(f"looking up {host} took over {timeout:.0f}s")
    if isinstance(found[0], Exception):
        raise Unresolvable(f"{host} does not resolve")
    addresses: list[Address] = []
    for *_, sockaddr in found[0]:
        address = ipaddress.ip_address(sockaddr[0].split("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise Unresolvable(f"{host} does not resolve")
    return addresses


def vetted_addresses(host: str, port: int, *, timeout: float) -> list[Address]:
    """The addresses of ``host``, every one of them checked (TargetRefused names the first
    refused one's kind; an allowed host is not checked)."""
    addresses = resolve(host, port, timeout=timeout)
    if is_allowed(host):
        return addresses
    literal = len(addresses) == 1 and _normal(host) == str(addresses[0])
    for address in addresses:
        why = refusal(address)
        if why is not None:
            what = f"{'an' if why[0] in 'aeiouAEIOU' else 'a'} {why}"
            where = f"{host} is {what}" if literal else f"{host} resolves to {what}"
            raise TargetRefused(
                f"{where}: webhooks may only post to public addresses "
                "(FLOWDESK_WEBHOOK_ALLOW_HOSTS opens named hosts)",
                why,
            )
    return addresses


def check_url(url: str) -> None:
    """The save-time check of a webhook URL (TargetRefused with the message for the person).

    A name that does not resolve now is accepted (it may be created later): its deliveries fail
    with ``cannot resolve host`` until it does, and are checked when they connect anyway.
    """
    host, port = split_url(url)
    if is_allowed(host):
        return
    try:
        vetted_addresses(host, port, timeout=SAVE_LOOKUP_SECONDS)
    except Unresolvable:
        return


# --- the connection: pinned to a checked address, under one deadline ------------------------------


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the delivery's deadline."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self.stream, self.deadline = stream, deadline

    def _left(self, timeout: float | None, error: type[Exception]) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise error("the delivery's time is up")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.stream.read(max_bytes, self._left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.stream.write(buffer, self._left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self.stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        timeout = self._left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self.stream.start_tls(ssl_context, server_hostname, timeout), self.deadline
        )

    def get_extra_info(self, info: str):
        return self.stream.get_extra_info(info)


class _PinnedBackend(httpcore.SyncBackend):
    """Connects to a checked address of the host httpcore asks for (never to the name)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        addresses = vetted_addresses(host, port, timeout=self.deadline - time.monotonic())
        error: Exception = httpcore.ConnectError(f"no address of {host} answers")
        for address in addresses:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise httpcore.ConnectTimeout("the delivery's time is up")
            try:
                stream = super().connect_tcp(
                    str(address),
                    port,
                    timeout=left if timeout is None else min(timeout, left),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                error = exc
                continue
            return _DeadlineStream(stream, self.deadline)
        raise error


_ssl_contexts: dict[int, ssl.SSLContext] = {}  # per process: loading the CA bundle takes ~20 ms


class PinnedTransport(httpx.HTTPTransport):
    """An httpx transport for one delivery: no proxy from the environment, connections pinned
    to checked addresses, everything within ``timeout`` seconds from now."""

    def __init__(self, timeout: float) -> None:
        # Not super().__init__: it would build (and load the CA bundle for) a pool we replace.
        # handle_request and close only use ``_pool``.
        import os

        context = _ssl_contexts.get(os.getpid())
        if context is None:
            _ssl_contexts.clear()
            context = _ssl_contexts[os.getpid()] = httpx.create_ssl_context()
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=1,
            network_backend=_PinnedBackend(time.monotonic() + timeout),
        )


def post(url: str, *, content: bytes, headers: dict, timeout: float) -> int:
    """POST ``content`` to ``url`` within ``timeout`` seconds; the answer's status code (its body
    is not read). Raises TargetRefused, Unresolvable or an ``httpx.HTTPError``."""
    split_url(url)
    with (
        httpx.Client(
            transport=PinnedTransport(timeout),
            timeout=httpx.Timeout(timeout),
            trust_env=False,
            follow_redirects=False,
        ) as client,
        client.stream("POST", url, content=content, headers=headers) as response,
    ):
        return response.status_code
