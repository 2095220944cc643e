"""docker-compose.yml, deploy/Dockerfile, deploy/env.example and deploy/make-secrets.sh, checked
without a Docker engine.

The important part: each service's compose environment is checked against the settings class
that service really reads (pydantic-settings introspection), so a typo in a variable name, a
variable the code no longer reads or one it needs but does not get fails here rather than in a
deployment that silently falls back to a default.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import AliasChoices, SecretStr
from pydantic_settings import BaseSettings

from automateos_auth.settings import AuthSettings
from automateos_engine.scheduler import SchedulerSettings
from automateos_engine.settings import EngineSettings
from automateos_ingress.settings import IngressSettings
from automateos_workflows.settings import WorkflowsSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"
ENV_EXAMPLE = DEPLOY / "env.example"
DOCKERFILE = DEPLOY / "Dockerfile"
MAKE_SECRETS = DEPLOY / "make-secrets.sh"

APP_SERVICES: dict[str, type[BaseSettings]] = {
    "auth": AuthSettings,
    "workflows": WorkflowsSettings,
    "ingress": IngressSettings,
    "engine": EngineSettings,
    "scheduler": SchedulerSettings,  # the engine's package, another command, settings of its own
}
ALL_SERVICES = {*APP_SERVICES, "gateway", "postgres", "redis"}
PORTS = {"auth": 8001, "workflows": 8002, "ingress": 8003, "engine": 8004, "scheduler": 8005}
COMMANDS = {
    "auth": ["uvicorn", "automateos_auth.main:create_app", "--factory", "--host", "0.0.0.0",
             "--port", "8001"],
    "workflows": ["uvicorn", "automateos_workflows.main:create_app", "--factory", "--host", "0.0.0.0",
                  "--port", "8002"],
    # No access log on the webhook path (automateos_ingress.fastpath logs refusals; runs are the record).
    "ingress": ["uvicorn", "automateos_ingress.main:create_app", "--factory", "--host", "0.0.0.0",
                "--port", "8003", "--no-access-log"],
    "engine": ["python", "-m", "automateos_engine", "run", "--host", "0.0.0.0", "--port", "8004"],
    "scheduler": ["python", "-m", "automateos_engine", "scheduler", "--host", "0.0.0.0", "--port", "8005"],
}
# What each service must be given in compose (beyond that, anything it sets must be a real setting).
REQUIRED_ENV = {
    "auth": {"REDIS_URL", "AUTOMATEOS_INTERNAL_TOKEN", "DATABASE_URL", "AUTOMATEOS_AUTH_PRIVATE_KEY_FILE"},
    "workflows": {"REDIS_URL", "AUTOMATEOS_INTERNAL_TOKEN", "DATABASE_URL", "AUTOMATEOS_AUTH_URL",
                  "AUTOMATEOS_PUBLIC_URL", "AUTOMATEOS_MASTER_KEY_FILE"},
    "ingress": {"REDIS_URL", "AUTOMATEOS_INTERNAL_TOKEN", "AUTOMATEOS_AUTH_URL", "AUTOMATEOS_WORKFLOWS_URL"},
    "engine": {"REDIS_URL", "AUTOMATEOS_INTERNAL_TOKEN", "AUTOMATEOS_WORKFLOWS_URL",
               "AUTOMATEOS_ENGINE_WORKERS", "AUTOMATEOS_EGRESS_ALLOW", "AUTOMATEOS_MASTER_KEY_FILE"},
    "scheduler": {"REDIS_URL", "AUTOMATEOS_SCHEDULER_GRACE_S"},
}
# Keys of a service's environment that are the code's business (the rest, e.g. POSTGRES_*, are not).
APP_ENV_KEY = re.compile(r"^(AUTOMATEOS_\w+|DATABASE_URL|REDIS_URL)$")
DEPENDS_ON = {
    "auth": {"postgres": "service_healthy", "redis": "service_healthy"},
    "workflows": {"postgres": "service_healthy", "redis": "service_healthy", "auth": "service_healthy"},
    "ingress": {"redis": "service_healthy", "auth": "service_healthy", "workflows": "service_healthy"},
    "engine": {"redis": "service_healthy", "workflows": "service_healthy"},
    "scheduler": {"redis": "service_healthy"},
    # The gateway routes to the four services; the scheduler serves no API.
    "gateway": dict.fromkeys(("auth", "workflows", "ingress", "engine"), "service_healthy"),
}
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}; $$ is a literal $.
VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


# ---- helpers ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    spec = compose["services"][name]
    assert isinstance(spec, dict)
    return spec


def environment(compose: dict[str, Any], name: str) -> dict[str, str]:
    env = service(compose, name).get("environment", {})
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def env_names(cls: type[BaseSettings]) -> dict[str, str]:
    """Environment variable name -> field name, as pydantic-settings reads them."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: dict[str, str] = {}
    for field_name, info in cls.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            choices = [c for c in alias.choices if isinstance(c, str)]
        elif isinstance(alias, str):
            choices = [alias]
        else:
            choices = [prefix + field_name]
        for choice in choices:
            names[choice.upper()] = field_name
    return names


def parse_env_file(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${...} interpolation (enough of it for this file)."""

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        value = env.get(name)
        if op in (":?", "?") and (value is None or (op == ":?" and value == "")):
            raise AssertionError(f"compose would refuse to start: {name}: {arg}")
        if op == ":-" and not value:
            return arg
        if op == "-" and value is None:
            return arg
        return value or ""

    return VAR_RE.sub(sub, text.replace("$$", "\0")).replace("\0", "$")


def example_env_with_secrets() -> dict[str, str]:
    env = parse_env_file(ENV_EXAMPLE)
    env.update(AUTOMATEOS_INTERNAL_TOKEN="0123abcd" * 8, POSTGRES_PASSWORD="4567cdef" * 8)
    return env


def command_port(spec: dict[str, Any]) -> int:
    cmd = spec["command"]
    return int(cmd[cmd.index("--port") + 1])


# ---- services, commands, health ---------------------------------------------------------------------

def test_every_service_is_defined(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == ALL_SERVICES


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_service_command_and_image(compose: dict[str, Any], name: str) -> None:
    spec = service(compose, name)
    assert spec["command"] == COMMANDS[name]
    assert command_port(spec) == PORTS[name]
    # All four run the one image built from the repository root by deploy/Dockerfile.
    assert spec["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}
    assert spec["image"] == service(compose, "auth")["image"]
    # Only the gateway is published: the services are reached through it.
    assert "ports" not in spec


@pytest.mark.parametrize("name", sorted(ALL_SERVICES))
def test_every_service_has_a_healthcheck(compose: dict[str, Any], name: str) -> None:
    check = service(compose, name).get("healthcheck")
    assert check, f"{name} has no healthcheck"
    assert not check.get("disable", False)
    test = check["test"]
    assert isinstance(test, list)
    assert test[0] in ("CMD", "CMD-SHELL")
    assert check.get("interval") and check.get("retries")


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_healthcheck_probes_own_healthz(compose: dict[str, Any], name: str) -> None:
    # python -c with urllib (no curl in slim images); urlopen raises on the 503 of "unhealthy".
    test = service(compose, name)["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert "urllib.request.urlopen" in test[3]
    assert f"http://127.0.0.1:{PORTS[name]}/healthz" in test[3]


def test_backing_services_healthchecks(compose: dict[str, Any]) -> None:
    pg = service(compose, "postgres")["healthcheck"]["test"]
    assert pg[:2] == ["CMD", "pg_isready"]
    redis = " ".join(service(compose, "redis")["healthcheck"]["test"][1:])
    assert "redis-cli ping" in redis
    gateway = service(compose, "gateway")["healthcheck"]["test"]
    assert "http://127.0.0.1:8000/healthz" in gateway


def test_depends_on_conditions(compose: dict[str, Any]) -> None:
    actual = {}
    for name in DEPENDS_ON:
        deps = service(compose, name).get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on needs the long form to carry conditions"
        actual[name] = {dep: cond["condition"] for dep, cond in deps.items()}
    assert actual == DEPENDS_ON
    for name in ("postgres", "redis"):
        assert "depends_on" not in service(compose, name)


def test_engine_is_scalable(compose: dict[str, Any]) -> None:
    # `docker compose up --scale engine=N` needs replicas that do not clash.
    engine = service(compose, "engine")
    assert "container_name" not in engine
    assert "ports" not in engine
    assert engine.get("network_mode") is None
    # SIGTERM lets running jobs finish: give them longer than compose's default 10 s.
    grace = str(engine["stop_grace_period"])
    assert grace.endswith("s") and int(grace[:-1]) >= 30


def test_scheduler_is_scalable_and_holds_no_secret(compose: dict[str, Any]) -> None:
    # Two or more are safe (each due time fires once): replicas must not clash.
    scheduler = service(compose, "scheduler")
    assert "container_name" not in scheduler and "ports" not in scheduler
    assert scheduler.get("network_mode") is None
    assert "secrets" not in scheduler  # it never opens a credential


def test_postgres_and_redis(compose: dict[str, Any]) -> None:
    pg, redis = service(compose, "postgres"), service(compose, "redis")
    assert pg["image"].startswith("postgres:16") and pg["image"].endswith("alpine")
    assert redis["image"].startswith("redis:7") and redis["image"].endswith("alpine")
    # An accepted webhook is a job in Redis: it must survive a restart.
    cmd = redis["command"]
    assert cmd[0] == "redis-server"
    assert cmd[cmd.index("--appendonly") + 1] == "yes"
    assert cmd[cmd.index("--appendfsync") + 1] == "everysec"
    pg_env = environment(compose, "postgres")
    assert pg_env["POSTGRES_USER"] == pg_env["POSTGRES_DB"] == "automateos"
    password = VAR_RE.fullmatch(pg_env["POSTGRES_PASSWORD"])
    assert password is not None and password.group(1) == "POSTGRES_PASSWORD"


@pytest.mark.parametrize(("name", "target"), [("postgres", "/var/lib/postgresql/data"), ("redis", "/data")])
def test_data_lives_in_named_volumes(compose: dict[str, Any], name: str, target: str) -> None:
    volumes = [str(v) for v in service(compose, name)["volumes"]]
    sources = [v.split(":")[0] for v in volumes if v.split(":")[1] == target]
    assert len(sources) == 1, f"{name}: nothing mounted at {target}"
    assert sources[0] in (compose.get("volumes") or {}), f"{name}: {sources[0]} is not a named volume"


def test_auth_signing_key_is_a_compose_secret(compose: dict[str, Any]) -> None:
    assert compose["secrets"]["auth_signing_key"] == {"file": "./deploy/secrets/auth-signing-key.pem"}
    auth = service(compose, "auth")
    assert auth["secrets"] == ["auth_signing_key"]
    assert environment(compose, "auth")["AUTOMATEOS_AUTH_PRIVATE_KEY_FILE"] == "/run/secrets/auth_signing_key"
    for name in ALL_SERVICES - {"auth"}:
        assert "auth_signing_key" not in service(compose, name).get("secrets", []), f"{name} does not need it"
    # The key stays out of git, and make-secrets.sh writes it where compose looks for it.
    assert (DEPLOY / "secrets" / ".gitignore").read_text().split() == ["*", "!.gitignore"]
    assert "$deploy_dir/secrets" in MAKE_SECRETS.read_text()
    assert "auth-signing-key.pem" in MAKE_SECRETS.read_text()


def test_credentials_master_key_is_a_compose_secret_of_workflows_and_engine(compose: dict[str, Any]) -> None:
    assert compose["secrets"]["master_key"] == {"file": "./deploy/secrets/master-key"}
    for name in ALL_SERVICES:
        holds = "master_key" in service(compose, name).get("secrets", [])
        assert holds == (name in ("workflows", "engine")), name
        if holds:
            assert environment(compose, name)["AUTOMATEOS_MASTER_KEY_FILE"] == "/run/secrets/master_key"
    assert "master-key" in MAKE_SECRETS.read_text()


def test_gateway_publishes_8000_and_mounts_nginx_conf(compose: dict[str, Any]) -> None:
    gw = service(compose, "gateway")
    assert re.fullmatch(r"nginx:[\w.]+-alpine", gw["image"])
    assert [interpolate(p, {}) for p in gw["ports"]] == ["8000:8000"]
    assert [interpolate(p, {"GATEWAY_PORT": "9000"}) for p in gw["ports"]] == ["9000:8000"]
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in gw["volumes"]
    assert (ROOT / "deploy" / "nginx.conf").is_file()


# ---- environment vs the settings classes -------------------------------------------------------------

def test_env_names_introspection() -> None:
    # The helper itself: a prefixed field, an aliased one (both choices), a service-specific one.
    names = env_names(AuthSettings)
    assert names["AUTOMATEOS_PUBLIC_URL"] == "public_url"
    assert names["DATABASE_URL"] == names["AUTOMATEOS_DATABASE_URL"] == "database_url"
    assert names["AUTOMATEOS_AUTH_PRIVATE_KEY_FILE"] == "auth_private_key_file"
    assert "AUTOMATEOS_ENGINE_WORKERS" not in names
    assert "AUTOMATEOS_ENGINE_WORKERS" in env_names(EngineSettings)


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_every_app_variable_is_a_setting_of_that_service(compose: dict[str, Any], name: str) -> None:
    known = env_names(APP_SERVICES[name])
    set_here = {k for k in environment(compose, name) if APP_ENV_KEY.match(k)}
    unknown = sorted(set_here - set(known))
    assert not unknown, f"{name} sets variables its settings do not read: {unknown}"


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_required_variables_are_set(compose: dict[str, Any], name: str) -> None:
    missing = sorted(REQUIRED_ENV[name] - set(environment(compose, name)))
    assert not missing, f"{name} lacks {missing}"


@pytest.mark.parametrize("source", ["env.example", "compose defaults"])
@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_settings_load_the_compose_environment(compose: dict[str, Any], name: str, source: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """With env.example's values, or with the ${VAR:-default}s alone (an .env holding only the
    secrets), each variable lands in its field and passes its validation."""
    for key in list(os.environ):
        if APP_ENV_KEY.match(key):
            monkeypatch.delenv(key)
    values = example_env_with_secrets()
    if source == "compose defaults":
        values = {k: values[k] for k in ("AUTOMATEOS_INTERNAL_TOKEN", "POSTGRES_PASSWORD")}
    env = {k: interpolate(v, values) for k, v in environment(compose, name).items()}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cls = APP_SERVICES[name]
    settings = cls()
    names = env_names(cls)
    for key, value in env.items():
        if not APP_ENV_KEY.match(key):
            continue
        got = getattr(settings, names[key])
        got = got.get_secret_value() if isinstance(got, SecretStr) else got
        assert str(got) == value, f"{name}: {key}={value!r} became {got!r}"


def test_service_urls_point_at_the_compose_services(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        env = environment(compose, name)
        for key, target in (("AUTOMATEOS_AUTH_URL", "auth"), ("AUTOMATEOS_WORKFLOWS_URL", "workflows")):
            if key in env:
                assert env[key] == f"http://{target}:{command_port(service(compose, target))}", (name, key)
        redis = urlsplit(env["REDIS_URL"])
        assert (redis.scheme, redis.hostname, redis.port or 6379) == ("redis", "redis", 6379)


def test_database_url_matches_postgres(compose: dict[str, Any]) -> None:
    pg = environment(compose, "postgres")
    urls = {name: environment(compose, name)["DATABASE_URL"] for name in ("auth", "workflows")}
    assert urls["auth"] == urls["workflows"], "auth and workflows share one database"
    url = urlsplit(interpolate(urls["auth"], example_env_with_secrets()))
    assert url.scheme == "postgresql+psycopg2"
    assert (url.hostname, url.port, url.path) == ("postgres", 5432, "/" + pg["POSTGRES_DB"])
    assert url.username == pg["POSTGRES_USER"]
    assert url.password == example_env_with_secrets()["POSTGRES_PASSWORD"]
    for name in ("ingress", "engine"):
        assert "DATABASE_URL" not in environment(compose, name), f"{name} has no database"


def test_one_internal_token_for_all(compose: dict[str, Any]) -> None:
    raw = {environment(compose, name)["AUTOMATEOS_INTERNAL_TOKEN"] for name in APP_SERVICES}
    assert len(raw) == 1
    m = VAR_RE.fullmatch(raw.pop())
    # Required (":?"): without it each container would generate its own and internal calls fail.
    assert m is not None and m.group(1) == "AUTOMATEOS_INTERNAL_TOKEN" and m.group(2) == ":?"


def test_compose_refuses_to_start_without_secrets(compose: dict[str, Any]) -> None:
    env = parse_env_file(ENV_EXAMPLE)  # secrets still empty, as before make-secrets.sh
    with pytest.raises(AssertionError, match="AUTOMATEOS_INTERNAL_TOKEN"):
        interpolate(environment(compose, "engine")["AUTOMATEOS_INTERNAL_TOKEN"], env)
    with pytest.raises(AssertionError, match="POSTGRES_PASSWORD"):
        interpolate(environment(compose, "postgres")["POSTGRES_PASSWORD"], env)


# ---- env.example -----------------------------------------------------------------------------------

def test_every_compose_variable_is_documented() -> None:
    used = set(VAR_RE.findall(COMPOSE_FILE.read_text().replace("$$", "")))
    used_names = {m[0] for m in used}
    documented = set(parse_env_file(ENV_EXAMPLE))
    assert used_names, "the pattern found no ${VAR} at all"
    assert not used_names - documented, f"not in deploy/env.example: {sorted(used_names - documented)}"
    assert not documented - used_names, f"documented but unused: {sorted(documented - used_names)}"


def test_every_example_variable_has_a_comment() -> None:
    lines = ENV_EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[A-Za-z_]\w*=", line):
            assert i > 0 and lines[i - 1].startswith("#"), f"no comment above {line!r}"


def test_example_leaves_secrets_empty() -> None:
    env = parse_env_file(ENV_EXAMPLE)
    assert env["AUTOMATEOS_INTERNAL_TOKEN"] == "" and env["POSTGRES_PASSWORD"] == ""
    assert env["AUTOMATEOS_PUBLIC_URL"] == "http://127.0.0.1:8000"


# ---- Dockerfile and .dockerignore ------------------------------------------------------------------

def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())  # join continuation lines
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_base_and_install() -> None:
    instr = dockerfile_instructions()
    froms = [rest.split()[0] for word, rest in instr if word == "FROM"]
    assert froms and all(f == "python:3.11-slim" for f in froms)
    runs = [rest for word, rest in instr if word == "RUN" and "pip install" in rest]
    assert len(runs) == 1
    args = [a.strip('"') for a in runs[0].split()]
    assert args[args.index("-c") + 1] == "constraints.txt"
    installed = sorted(a for a in args if a.startswith(("./", "libs/", "services/")))
    # libs/common with its aws extra: the image runs either secret store (AUTOMATEOS_SECRET_STORE).
    assert installed == ["./libs/common[aws]", "./services/auth", "./services/engine", "./services/ingress",
                         "./services/workflows"]
    assert not any("devstack" in a or a.startswith("tools") for a in args)


def test_dockerfile_copies_what_exists() -> None:
    copied = []
    for word, rest in dockerfile_instructions():
        if word == "COPY" and "--from=" not in rest:
            *sources, _dest = rest.split()
            copied += sources
    assert "constraints.txt" in copied
    for src in copied:
        assert (ROOT / src).exists(), f"COPY {src}: no such path"
    for word, rest in dockerfile_instructions():
        if word == "RUN" and "pip install" in rest:
            for pkg in (a for a in rest.split() if a.startswith("./")):
                assert pkg[2:] in copied, f"installs {pkg} but does not COPY it"
                assert (ROOT / pkg / "pyproject.toml").is_file()
    # The build context is an allowlist: what is copied is let in, and nothing else.
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*"
    for src in copied:
        assert f"!{src}" in ignore, f".dockerignore keeps out {src}"


# ---- make-secrets.sh ------------------------------------------------------------------------------

@pytest.fixture
def secrets_tree(tmp_path: Path) -> Path:
    """A copy of the repository's deploy/ essentials, so the script runs without touching the repo."""
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed: make-secrets.sh cannot run")
    (tmp_path / "deploy").mkdir()
    shutil.copy2(MAKE_SECRETS, tmp_path / "deploy" / "make-secrets.sh")
    shutil.copy2(ENV_EXAMPLE, tmp_path / "deploy" / "env.example")
    return tmp_path


def run_make_secrets(tree: Path) -> str:
    # The venv's python3 (with cryptography) is the fallback when openssl is absent.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(["bash", str(tree / "deploy" / "make-secrets.sh")], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_make_secrets_creates_env_and_key(secrets_tree: Path) -> None:
    run_make_secrets(secrets_tree)
    env_file = secrets_tree / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    env, example = parse_env_file(env_file), parse_env_file(ENV_EXAMPLE)
    assert set(env) == set(example)
    for key in ("AUTOMATEOS_INTERNAL_TOKEN", "POSTGRES_PASSWORD"):
        assert re.fullmatch(r"[0-9a-f]{64}", env[key]), key
    assert env["AUTOMATEOS_INTERNAL_TOKEN"] != env["POSTGRES_PASSWORD"]
    assert {k: v for k, v in env.items() if example[k]} == {k: v for k, v in example.items() if v}

    key_file = secrets_tree / "deploy" / "secrets" / "auth-signing-key.pem"
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    # Readable by the container's user, which does not own the bind-mounted file.
    assert stat.S_IMODE(key_file.stat().st_mode) & stat.S_IROTH


def test_make_secrets_is_idempotent(secrets_tree: Path) -> None:
    run_make_secrets(secrets_tree)
    env_file = secrets_tree / ".env"
    key_file = secrets_tree / "deploy" / "secrets" / "auth-signing-key.pem"
    before = env_file.read_bytes(), key_file.read_bytes()
    out = run_make_secrets(secrets_tree)
    assert (env_file.read_bytes(), key_file.read_bytes()) == before
    assert "nothing changed" in out


def test_make_secrets_keeps_existing_values_and_fills_gaps(secrets_tree: Path) -> None:
    env_file = secrets_tree / ".env"
    env_file.write_text("AUTOMATEOS_INTERNAL_TOKEN=mine\nPOSTGRES_PASSWORD=\nGATEWAY_PORT=9000\n")
    env_file.chmod(0o644)
    run_make_secrets(secrets_tree)
    env = parse_env_file(env_file)
    assert env["AUTOMATEOS_INTERNAL_TOKEN"] == "mine"
    assert env["GATEWAY_PORT"] == "9000"
    assert re.fullmatch(r"[0-9a-f]{64}", env["POSTGRES_PASSWORD"])  # was empty: filled
    assert set(env) == set(parse_env_file(ENV_EXAMPLE))               # missing ones appended
    assert env_file.read_text().count("\nPOSTGRES_PASSWORD=") == 1               # replaced in place
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
