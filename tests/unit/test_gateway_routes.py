"""The routing table: the dev gateway's ROUTES and deploy/nginx.conf must route every path alike.

ROUTES in automateos_devstack.gateway is the single source of truth; nginx.conf mirrors it with one
`location ~ <regex>` per entry, in the same order (nginx also tries regex locations in order,
first match wins). The config is parsed here into its blocks, so the checks look at the directives
nginx will read, not at text that merely appears somewhere in the file.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from automateos_common.nodes.builtin.webhook import SYNC_TIMEOUT_MAX_S
from automateos_devstack.gateway import DEFAULT_PORTS, ROUTES, SERVICES, UPSTREAM_READ_TIMEOUT_S, route
from automateos_ingress.settings import IngressSettings

ROOT = Path(__file__).resolve().parents[2]
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
COMPOSE_FILE = ROOT / "docker-compose.yml"


# ---- a small nginx config parser ----------------------------------------------------------------

@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None
    line: int = 0

    def all(self, name: str) -> list[Directive]:
        return [d for d in self.block or [] if d.name == name]

    def one(self, name: str) -> Directive:
        found = self.all(name)
        assert len(found) == 1, f"expected one {name} in {self.name} {self.args}, found {len(found)}"
        return found[0]


def tokenize(text: str) -> list[tuple[str, int]]:
    """Words, quoted strings (unquoted), `{`, `}` and `;`, with line numbers; comments dropped."""
    out: list[tuple[str, int]] = []
    i, line, n = 0, 1, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c in "{};":
            out.append((c, line))
            i += 1
        elif c in "'\"":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            assert j < n, f"unterminated string on line {line}"
            out.append((text[i + 1:j], line))
            line += text.count("\n", i, j)
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in "{};":
                j += 1
            out.append((text[i:j], line))
            i = j
    return out


def parse(text: str) -> Directive:
    tokens = iter(tokenize(text))

    def block(closing: bool) -> list[Directive]:
        out: list[Directive] = []
        words: list[tuple[str, int]] = []
        for tok, line in tokens:
            if tok == ";":
                out.append(Directive(words[0][0], [w for w, _ in words[1:]], None, words[0][1]))
                words = []
            elif tok == "{":
                out.append(Directive(words[0][0], [w for w, _ in words[1:]], block(True), words[0][1]))
                words = []
            elif tok == "}":
                assert closing and not words, f"unexpected }} on line {line}"
                return out
            else:
                words.append((tok, line))
        assert not closing and not words, "unexpected end of file"
        return out

    return Directive("main", [], block(False))


@pytest.fixture(scope="module")
def conf() -> Directive:
    return parse(NGINX_CONF.read_text())


@pytest.fixture(scope="module")
def server(conf: Directive) -> Directive:
    servers = conf.one("http").all("server")
    assert len(servers) == 1
    return servers[0]


def locations(server: Directive) -> list[Directive]:
    return server.all("location")


def exact_location(server: Directive, uri: str) -> Directive:
    found = [loc for loc in locations(server) if loc.args == ["=", uri]]
    assert len(found) == 1, f"no `location = {uri}`"
    return found[0]


def select_location(server: Directive, path: str) -> Directive | None:
    """The location nginx picks for a (normalised) path: exact, then the longest prefix unless it
    is ^~, then the regexes in order, then that longest prefix."""
    locs = [loc for loc in locations(server) if not loc.args[-1].startswith("@")]
    for loc in locs:
        if loc.args[0] == "=" and loc.args[1] == path:
            return loc
    prefixes = [loc for loc in locs if len(loc.args) == 1 or loc.args[0] == "^~"]
    best = max((loc for loc in prefixes if path.startswith(loc.args[-1])), key=lambda loc: len(loc.args[-1]),
               default=None)
    if best is not None and best.args[0] == "^~":
        return best
    for loc in locs:
        if loc.args[0] in ("~", "~*") and re.search(loc.args[1], path, re.I if loc.args[0] == "~*" else 0):
            return loc
    return best


def nginx_route(server: Directive, path: str) -> str | None:
    loc = select_location(server, path)
    proxy = loc.all("proxy_pass") if loc is not None else []
    return proxy[0].args[0].removeprefix("http://") if proxy else None


def returned(loc: Directive) -> tuple[int, str | None]:
    ret = loc.one("return").args
    return int(ret[0]), (ret[1] if len(ret) > 1 else None)


# ---- (1) the dev gateway's route() ----------------------------------------------------------------

ROUTE_CASES = [
    ("/api/v1/workflows/5/execute", "ingress"),
    ("/api/v1/workflows/5/execute/", "ingress"),
    ("/api/v1/workflows/abc/execute", "ingress"),
    ("/api/v1/workflows/5/executed", "workflows"),
    ("/api/v1/workflows/5/logs", "workflows"),
    ("/api/v1/workflows/5", "workflows"),
    ("/api/v1/workflows", "workflows"),
    ("/api/v1/workflows/", "workflows"),
    ("/api/v1/workflows/docs", "workflows"),
    ("/api/v1/logs/abc", "workflows"),
    ("/api/v1/credentials/1", "workflows"),
    ("/api/v1/node-types", "workflows"),
    ("/hooks/tok", "ingress"),
    ("/hooks/", "ingress"),
    ("/api/v1/ingress/docs", "ingress"),
    ("/api/v1/ingress/healthz", "ingress"),
    ("/api/v1/auth/token", "auth"),
    ("/api/v1/auth/jwks.json", "auth"),
    ("/api/v1/auth", "auth"),
    ("/api/v1/users/me", "auth"),
    ("/api/v1/engine/healthz", "engine"),
    ("/api/v1/engine/docs", "engine"),
    ("/api/v1/authors", None),
    ("/api/v1/workflowsx", None),
    ("/api/v1/engine", None),
    ("/hooks", None),
    ("/internal/v1/hooks/x", None),
    ("/internal/v1/workflows/1", None),
    ("/internal", None),
    ("/", None),
    ("/index.html", None),
    ("/healthz", None),
    ("/favicon.ico", None),
]


@pytest.mark.parametrize(("path", "expected"), ROUTE_CASES)
def test_route(path: str, expected: str | None) -> None:
    assert route(path) == expected


# ---- (2) nginx.conf mirrors ROUTES -----------------------------------------------------------------

def test_regex_locations_equal_routes_in_order(server: Directive) -> None:
    regex_locs = [loc for loc in locations(server) if loc.args and loc.args[0] in ("~", "~*")]
    got = [(loc.args[1], loc.one("proxy_pass").args) for loc in regex_locs]
    assert [loc.args[0] for loc in regex_locs] == ["~"] * len(regex_locs), "case-sensitive, like re"
    assert got == [(regex, [f"http://{svc}"]) for regex, svc in ROUTES]


@pytest.mark.parametrize(("path", "expected"), ROUTE_CASES)
def test_nginx_routes_like_the_dev_gateway(server: Directive, path: str, expected: str | None) -> None:
    assert nginx_route(server, path) == expected


def test_ingress_locations_stream_request_bodies(server: Directive) -> None:
    for loc in locations(server):
        if loc.args[:1] == ["~"] and loc.args[1] in (r"^/hooks/", r"^/api/v1/workflows/[^/]+/execute/?$"):
            assert loc.one("proxy_request_buffering").args == ["off"], loc.args
    assert sum(bool(loc.all("proxy_request_buffering")) for loc in locations(server)) == 2


def test_only_route_locations_proxy(server: Directive) -> None:
    proxied = [loc.args for loc in locations(server) if loc.all("proxy_pass")]
    assert proxied == [["~", regex] for regex, _ in ROUTES]


# ---- (3) upstreams = the compose services ----------------------------------------------------------

def test_upstreams_are_the_compose_services(conf: Directive) -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    upstreams = {u.args[0]: u for u in conf.one("http").all("upstream")}
    assert set(upstreams) == set(SERVICES)
    for name, up in upstreams.items():
        server_args = up.one("server").args
        host, _, port = server_args[0].partition(":")
        assert host == name, f"upstream {name} points at {host}"
        assert name in compose, f"no compose service {name}"
        cmd = compose[name]["command"]
        assert int(port) == int(cmd[cmd.index("--port") + 1]) == DEFAULT_PORTS[name]
        # Re-resolved through Docker's DNS (needs a zone): container restarts, --scale engine=N.
        assert "resolve" in server_args[1:]
        assert up.all("zone")
        assert int(up.one("keepalive").args[0]) > 0
    assert conf.one("http").one("resolver").args[0] == "127.0.0.11"


def test_proxy_settings(conf: Directive, server: Directive) -> None:
    assert server.one("listen").args[0] == "8000"
    assert server.one("proxy_http_version").args == ["1.1"]
    headers = {d.args[0].lower(): d.args[1] for d in server.all("proxy_set_header")}
    assert headers["connection"] == ""  # keepalive to the upstreams
    assert headers["x-forwarded-for"] == "$proxy_add_x_forwarded_for"
    assert headers["x-forwarded-proto"] == "$scheme"
    # The client's Host, port included, like the dev gateway (see the map in nginx.conf).
    assert headers["host"] == headers["x-forwarded-host"] == "$client_host"
    host_map = next(m for m in conf.one("http").all("map") if m.args == ["$http_host", "$client_host"])
    assert {d.name: d.args for d in host_map.block or []} == {"": ["$host"], "default": ["$http_host"]}
    # proxy_set_header in a location would silently drop all of the server's ones there.
    assert not any(loc.all("proxy_set_header") for loc in locations(server))


def test_both_gateways_wait_longer_than_the_longest_sync_webhook(server: Directive) -> None:
    assert UPSTREAM_READ_TIMEOUT_S > SYNC_TIMEOUT_MAX_S
    read = server.one("proxy_read_timeout").args[0]
    assert read.endswith("s") and float(read[:-1]) > SYNC_TIMEOUT_MAX_S
    assert not any(loc.all("proxy_read_timeout") for loc in locations(server))  # no shorter one for /hooks/


def test_body_limit_lets_the_ingress_answer_413(server: Directive) -> None:
    size = server.one("client_max_body_size").args[0]
    m = re.fullmatch(r"(\d+)([km]?)", size.lower())
    assert m is not None
    limit = int(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2)]
    assert limit == 2 * 1024 * 1024
    ingress_default = IngressSettings.model_fields["max_body_bytes"].default
    assert ingress_default == 1024 * 1024 < limit


# ---- (4) /internal, the gateway's own answers and its errors ------------------------------------------

ERROR_CODES = {400: "BAD_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE",
               414: "URI_TOO_LONG", 500: "INTERNAL_ERROR", 502: "BAD_GATEWAY", 503: "SERVICE_UNAVAILABLE",
               504: "GATEWAY_TIMEOUT"}


def test_internal_is_never_routed(server: Directive) -> None:
    found = [loc for loc in locations(server) if loc.args[-1] == "/internal"]
    assert len(found) == 1
    # ^~: a prefix match that stops nginx from trying the regex routes at all.
    assert found[0].args == ["^~", "/internal"]
    assert returned(found[0]) == (404, None)  # None: answered by error_page 404, the JSON envelope
    assert not found[0].all("proxy_pass")
    assert all(not re.search(regex, "/internal/v1/workflows/1") for regex, _ in ROUTES)


def test_errors_use_the_envelope(server: Directive) -> None:
    pages: dict[int, str] = {}
    for ep in server.all("error_page"):
        *codes, uri = ep.args
        for code in codes:
            pages[int(code)] = uri
    assert {404, 413, 502, 504} <= set(pages)
    for status, uri in pages.items():
        expected_status = 400 if status == 494 else status  # 494: request header too large
        loc = exact_location(server, uri)
        assert loc.all("internal"), f"{uri} must not be reachable from outside"
        assert loc.one("default_type").args == ["application/json"]
        code, body = returned(loc)
        assert code == expected_status
        assert body is not None
        envelope = json.loads(body)
        assert set(envelope) == {"error"} and set(envelope["error"]) == {"code", "message"}
        assert envelope["error"]["code"] == ERROR_CODES[code]
        assert envelope["error"]["message"]


def test_gateway_healthz(server: Directive) -> None:
    loc = exact_location(server, "/healthz")
    code, body = returned(loc)
    assert code == 200 and body is not None and json.loads(body)["status"] == "ok"
    assert loc.one("default_type").args == ["application/json"]


def test_landing_page_links_each_service_docs(server: Directive) -> None:
    loc = exact_location(server, "/")
    assert loc.one("default_type").args == ["text/html"]
    code, body = returned(loc)
    assert code == 200 and body is not None
    links = re.findall(r'href="([^"]+)"', body)
    assert links == [f"/api/v1/{svc}/docs" for svc in ("auth", "workflows", "ingress", "engine")]
    for link in links:  # and each link is routed to its service
        assert route(link) == link.split("/")[3]


def test_anything_else_is_404(server: Directive) -> None:
    catch_all = [loc for loc in locations(server) if loc.args == ["/"]]
    assert len(catch_all) == 1
    assert returned(catch_all[0]) == (404, None)


# ---- optional: nginx itself accepts the file ------------------------------------------------------

def nginx_version(binary: str) -> tuple[int, ...]:
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10, check=False).stderr
    m = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out)
    assert m is not None, out
    return tuple(int(x) for x in m.groups())


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    binary = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if binary is None:
        pytest.skip("no nginx binary on this machine (Debian: apt-get install nginx-light)")
    text = NGINX_CONF.read_text()
    # Logs and pid into the temporary folder (the image's paths need not exist or be writable here).
    text = re.sub(r"(?m)^(\s*error_log)\s+\S+", rf"\1 {tmp_path}/error.log", text)
    text = re.sub(r"(?m)^(\s*access_log)\s+\S+", rf"\1 {tmp_path}/access.log", text)
    text = re.sub(r"(?m)^(\s*pid)\s+\S+;", rf"\1 {tmp_path}/nginx.pid;", text)
    version = nginx_version(binary)
    if version < (1, 27, 3):
        # `server host:port resolve` in an upstream came in 1.27.3; older versions resolve the host
        # while loading, and the compose hosts do not exist here.
        text, count = re.subn(r"server\s+[\w.-]+:(\d+)\s+resolve;", r"server 127.0.0.1:\1;", text)
        assert count == len(SERVICES)
    conf_file = tmp_path / "nginx.conf"
    conf_file.write_text(text)
    args = [binary, "-t", "-p", str(tmp_path), "-c", str(conf_file)]
    if version >= (1, 19, 5):
        args += ["-e", str(tmp_path / "early-error.log")]  # not the build's default log path
    proc = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "[warn]" not in proc.stderr and "[emerg]" not in proc.stderr, proc.stderr
