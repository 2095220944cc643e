"""The egress guard: node HTTP calls may not reach loopback, private or link-local addresses.

The check runs where the socket is opened, on the addresses the name resolved to, and the
connection goes to an address that passed the check. So DNS rebinding (a name that resolves
to a public address when checked and to 127.0.0.1 when used) and redirects to internal
addresses are refused too: every hop opens its connection through here. TLS still verifies the
original host name (httpcore passes it as SNI/server_hostname). Proxies from the environment
are ignored, since a proxy would open the connection instead of us.

`AUTOMATEOS_EGRESS_ALLOW` lists host names and CIDRs that are allowed anyway.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.cookiejar import Cookie, CookieJar
from typing import Any

import httpcore
import httpx

from ..settings import Network, parse_egress_allow

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressDenied(Exception):
    """A connection the egress policy refuses. The message is safe to record on a step."""


NAT64 = ipaddress.ip_network("64:ff9b::/96")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries and may be routed to (mapped, NAT64, 6to4, Teredo, compat)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if int(ip) >> 32 == 0 and int(ip) > 1:  # deprecated IPv4-compatible ::a.b.c.d (not :: or ::1)
        return ipaddress.IPv4Address(int(ip))
    return None


def classify(ip: IPAddress) -> str | None:
    """Why an address is refused, or None when it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None:
            return classify(inner)
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "reserved"
    return None


@dataclass(frozen=True)
class EgressPolicy:
    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[Network, ...] = field(default_factory=tuple)

    @classmethod
    def from_string(cls, raw: str) -> EgressPolicy:
        hosts, nets = parse_egress_allow(raw)
        return cls(allowed_hosts=hosts, allowed_networks=nets)

    def refusal(self, host: str, ip: IPAddress) -> str | None:
        if host.lower().rstrip(".") in self.allowed_hosts:
            return None
        if any(ip in net for net in self.allowed_networks if net.version == ip.version):
            return None
        return classify(ip)

    def resolve(self, host: str, port: int) -> list[str]:
        """Addresses for host that the policy allows; EgressDenied when there are none."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise EgressDenied(f"cannot resolve host '{host}': {exc.strerror}") from None
        allowed: list[str] = []
        refused: list[str] = []
        for info in infos:
            addr = str(info[4][0]).split("%", 1)[0]
            ip = ipaddress.ip_address(addr)
            why = self.refusal(host, ip)
            if why is None:
                if addr not in allowed:
                    allowed.append(addr)
            else:
                refused.append(f"{addr} ({why})")
        if not allowed:
            raise EgressDenied(
                f"egress to '{host}' refused: it resolves to {', '.join(refused) or 'nothing'}; "
                "allow it with AUTOMATEOS_EGRESS_ALLOW"
            )
        return allowed


class GuardedBackend(httpcore.NetworkBackend):
    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        last: Exception | None = None
        for addr in self.policy.resolve(host, port):
            try:
                return self._inner.connect_tcp(addr, port, timeout=timeout, local_address=local_address,
                                               socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise EgressDenied("unix sockets are not reachable from nodes")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    def __init__(self, policy: EgressPolicy, *, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits(max_connections=20, max_keepalive_connections=10)
        super().__init__(trust_env=False, limits=limits)
        # httpx builds its pool without a way to pass a network backend; build the same pool with ours.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy),
        )


class _NoCookies(CookieJar):
    """A jar that keeps nothing: one worker's client serves every tenant's runs, and a cookie
    set for one run must never ride along on another's request."""

    def set_cookie(self, cookie: Cookie) -> None:
        return None

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


def guarded_client(policy: EgressPolicy, **kwargs: Any) -> httpx.Client:
    return httpx.Client(transport=GuardedTransport(policy), trust_env=False, cookies=_NoCookies(), **kwargs)
