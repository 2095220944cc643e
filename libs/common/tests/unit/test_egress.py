"""The egress guard: node HTTP calls cannot reach loopback, private or link-local addresses."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from libs.common.tests.factories import LocalServer, node_context

from automateos_common.errors import NodeExecutionError
from automateos_common.nodes.builtin.http_request import HttpRequestConfig, HttpRequestNode
from automateos_common.nodes.egress import EgressDenied, EgressPolicy, classify, guarded_client

StartServer = Callable[..., LocalServer]


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("10.255.255.255", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.20", "private"),
        ("fc00::1", "private"),
        ("fd12:3456:789a::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("100.64.0.1", "reserved"),
        # IPv4-mapped IPv6 reaches the IPv4 address: judged as that address.
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.1.2.3", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        # IPv6 forms that carry an IPv4 address a gateway may route to: judged as that address.
        ("64:ff9b::7f00:1", "loopback"),          # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "link-local"),     # NAT64 of 169.254.169.254
        ("2002:7f00:1::", "loopback"),            # 6to4 of 127.0.0.1
        ("2002:c0a8:0101::1", "private"),         # 6to4 of 192.168.1.1
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private"),  # Teredo, client 10.0.0.1
        ("::127.0.0.1", "loopback"),              # deprecated IPv4-compatible form
    ],
)
def test_refused_addresses(address: str, reason: str) -> None:
    assert classify(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:4700::1111",
                                     "::ffff:93.184.216.34", "64:ff9b::5db8:d822"])
def test_public_addresses_pass(address: str) -> None:
    assert classify(ipaddress.ip_address(address)) is None


def test_policy_from_string() -> None:
    policy = EgressPolicy.from_string(" 127.0.0.1, 10.0.0.0/8 ,Internal.Example.COM., ::1,, fd00::/8 ")
    assert policy.allowed_hosts == frozenset({"internal.example.com"})
    assert policy.allowed_networks == (
        ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"), ipaddress.ip_network("fd00::/8"),
    )
    assert EgressPolicy.from_string("") == EgressPolicy()


def test_refusal_honours_the_allow_list() -> None:
    policy = EgressPolicy.from_string("10.1.0.0/16,db.internal")
    assert policy.refusal("x", ipaddress.ip_address("10.1.2.3")) is None
    assert policy.refusal("x", ipaddress.ip_address("10.2.0.1")) == "private"
    assert policy.refusal("DB.internal.", ipaddress.ip_address("10.2.0.1")) is None
    assert policy.refusal("x", ipaddress.ip_address("::1")) == "loopback"


def addresses_of(host: str) -> list[str]:
    """What the system resolver says (localhost is 127.0.0.1, and on some machines ::1 too)."""
    found: list[str] = []
    for info in socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM):
        if info[4][0] not in found:
            found.append(str(info[4][0]))
    return found


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_resolve_refuses_loopback_by_default(host: str) -> None:
    assert "127.0.0.1" in addresses_of(host)
    with pytest.raises(EgressDenied) as excinfo:
        EgressPolicy().resolve(host, 80)
    refused = ", ".join(f"{a} (loopback)" for a in addresses_of(host))
    assert str(excinfo.value) == (
        f"egress to '{host}' refused: it resolves to {refused}; allow it with AUTOMATEOS_EGRESS_ALLOW"
    )


@pytest.mark.parametrize("allow", ["127.0.0.1", "127.0.0.0/8"])
def test_resolve_allows_an_allowed_address(allow: str) -> None:
    assert EgressPolicy.from_string(allow).resolve("127.0.0.1", 80) == ["127.0.0.1"]
    assert EgressPolicy.from_string(allow).resolve("localhost", 80) == ["127.0.0.1"]


@pytest.mark.parametrize("allow", ["localhost", "LOCALHOST.", "example.com, localhost"])
def test_resolve_allows_an_allowed_host_name(allow: str) -> None:
    assert EgressPolicy.from_string(allow).resolve("localhost", 80) == addresses_of("localhost")


def test_an_allowed_host_name_does_not_allow_other_names_for_the_same_address() -> None:
    with pytest.raises(EgressDenied):
        EgressPolicy.from_string("localhost").resolve("127.0.0.1", 80)


def test_an_unresolvable_name_is_refused() -> None:
    with pytest.raises(EgressDenied) as excinfo:
        EgressPolicy().resolve("no-such-host.invalid", 80)
    assert str(excinfo.value).startswith("cannot resolve host 'no-such-host.invalid': ")


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names -> addresses for getaddrinfo; other names resolve for real."""
    table: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in table:
            return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                    for a in table[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


def test_only_the_allowed_addresses_of_a_name_are_used(fake_dns: dict[str, list[str]]) -> None:
    fake_dns["mixed.test"] = ["127.0.0.1", "93.184.216.34", "10.0.0.5", "93.184.216.34", "2606:4700::1111"]
    assert EgressPolicy().resolve("mixed.test", 443) == ["93.184.216.34", "2606:4700::1111"]


def test_every_refused_address_is_named(fake_dns: dict[str, list[str]]) -> None:
    fake_dns["internal.test"] = ["10.0.0.5", "169.254.169.254"]
    with pytest.raises(EgressDenied) as excinfo:
        EgressPolicy().resolve("internal.test", 80)
    assert str(excinfo.value) == (
        "egress to 'internal.test' refused: it resolves to 10.0.0.5 (private), 169.254.169.254 (link-local); "
        "allow it with AUTOMATEOS_EGRESS_ALLOW"
    )


# --- end to end: a real server on 127.0.0.1 and guarded_client() ------------------------------


def test_a_loopback_server_is_unreachable_without_allow(start_server: StartServer) -> None:
    server = start_server()
    with guarded_client(EgressPolicy()) as client, pytest.raises(EgressDenied) as excinfo:
        client.get(f"{server.url}/secret")
    assert "allow it with AUTOMATEOS_EGRESS_ALLOW" in str(excinfo.value)
    assert server.paths == []


def test_a_loopback_server_is_reachable_when_allowed(start_server: StartServer) -> None:
    server = start_server()
    with guarded_client(EgressPolicy.from_string("127.0.0.1")) as client:
        resp = client.get(f"{server.url}/ok")
    assert (resp.status_code, resp.text) == (200, "hello")
    assert server.paths == ["/ok"]


def test_an_allowed_host_name_reaches_its_address(start_server: StartServer, fake_dns: dict[str, list[str]]) -> None:
    server = start_server()
    fake_dns["hooks.internal"] = ["127.0.0.1"]
    url = f"http://hooks.internal:{server.port}/named"
    with guarded_client(EgressPolicy()) as client, pytest.raises(EgressDenied):
        client.get(url)
    with guarded_client(EgressPolicy.from_string("hooks.internal")) as client:
        assert client.get(url).status_code == 200
    assert server.paths == ["/named"]


def test_dns_rebinding_is_caught_where_the_socket_opens(start_server: StartServer,
                                                        fake_dns: dict[str, list[str]]) -> None:
    # The name looks public to any earlier check; by connect time it points at loopback.
    server = start_server()
    fake_dns["rebind.test"] = ["127.0.0.1"]
    with guarded_client(EgressPolicy()) as client, pytest.raises(EgressDenied):
        client.get(f"http://rebind.test:{server.port}/")
    assert server.paths == []


def test_a_redirect_to_a_refused_address_is_refused(start_server: StartServer) -> None:
    inner = start_server("127.0.0.2")
    outer = start_server("127.0.0.1", redirect_to=f"{inner.url}/admin")
    with guarded_client(EgressPolicy.from_string("127.0.0.1"), follow_redirects=True) as client:
        with pytest.raises(EgressDenied) as excinfo:
            client.get(f"{outer.url}/start")
    assert str(excinfo.value) == (
        "egress to '127.0.0.2' refused: it resolves to 127.0.0.2 (loopback); allow it with AUTOMATEOS_EGRESS_ALLOW"
    )
    assert outer.paths == ["/start"]
    assert inner.paths == []

    # The same redirect is followed when its target is allowed too: the refusal above was the policy.
    with guarded_client(EgressPolicy.from_string("127.0.0.1,127.0.0.2"), follow_redirects=True) as client:
        assert client.get(f"{outer.url}/start").text == "hello"
    assert inner.paths == ["/admin"]


def test_proxies_from_the_environment_are_ignored(start_server: StartServer, monkeypatch: pytest.MonkeyPatch) -> None:
    target = start_server()
    proxy = start_server("127.0.0.2")
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(var, proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    # A client that trusts the environment goes through the proxy: the setup works.
    with httpx.Client() as plain:
        assert plain.get(f"{target.url}/via-proxy").status_code == 200
    assert proxy.paths == [f"{target.url}/via-proxy"]

    with guarded_client(EgressPolicy.from_string("127.0.0.1,127.0.0.2")) as client:
        assert client.get(f"{target.url}/direct").status_code == 200
    assert target.paths == ["/direct"]
    assert proxy.paths == [f"{target.url}/via-proxy"]


def test_the_http_request_node_reports_a_refusal_as_a_failed_step(start_server: StartServer) -> None:
    server = start_server()
    ctx = node_context(http_client=lambda: guarded_client(EgressPolicy()))
    config = HttpRequestConfig.model_validate({"url": f"{server.url}/x"}, context={"resolved": True})
    with pytest.raises(NodeExecutionError) as excinfo:
        HttpRequestNode().run(ctx, config, None)
    assert excinfo.value.message == (
        "egress to '127.0.0.1' refused: it resolves to 127.0.0.1 (loopback); allow it with AUTOMATEOS_EGRESS_ALLOW"
    )
    assert excinfo.value.retryable is False
    assert server.paths == []


def test_cookies_never_ride_along_from_one_run_to_the_next(start_server: StartServer) -> None:
    """One worker's client serves every tenant: a Set-Cookie from one run must not reach another's request."""
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(200, headers={"Set-Cookie": "session=tenant-a; Path=/"})

    client = guarded_client(EgressPolicy())
    client._transport = httpx.MockTransport(handler)  # the jar is the client's, whatever the transport
    client.get("https://api.example.com/login")
    client.get("https://api.example.com/other-tenant")
    assert seen == [None, None]
    assert len(client.cookies.jar) == 0
