"""Checks of the distributed-mode deployment: docker-compose.yml, deploy/nginx.conf and
deploy/Dockerfile.

Without a Docker engine these check what can be checked: the compose file's structure (and
`docker compose config` when compose is installed), the gateway's routes against
``cordon.services.ALL``, and the nginx configuration with a real nginx when one is installed
(`nginx -t`, then a live run in front of a stub service). In CI (CI=true) a missing
docker-compose or nginx is a failure, not a skip: .ci/run installs them.
"""

from __future__ import annotations

import http.server
import importlib
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"

IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
CI_PACKAGES = "apt-get install -y --no-install-recommends docker-compose nginx-light"

# First path segments under /v1 that the registry owns.
REGISTRY_RESOURCES = (
    "auth",
    "towns",
    "committees",
    "compounds",
    "buildings",
    "units",
    "grids",
    "households",
    "residents",
    "staff",
    "volunteers",
    "teams",
    "assignments",
    "users",
    "zones",
    "imports",
    "exports",
    "registry",
)
# First path segments under /v1 that the testing service owns.
TESTING_RESOURCES = (
    "rounds",
    "tubes",
    "results",
    "cases",
    "transfers",
    "antigen-reports",
    "tasks",
    "testing-policies",
    "coverage",
    "compound-clocks",
)
PLATFORM_PATHS = ("/docs", "/openapi.json", "/healthz", "/readyz")
# The console: static files of the registry's processes, on the same base URL.
CONSOLE_PATHS = ("/console/", "/console/js/app.js")

SECRETS = (
    "POSTGRES_PASSWORD",
    "RABBITMQ_PASSWORD",
    "CORDON_SECRET_KEY",
    "CORDON_NOTIFY_GATEWAY_AUTH_VALUE",
    "CORDON_NOTIFY_RECEIPT_SECRET",
)
# Settings without which the deployment cannot do its job: secrets, and the SMS provider.
REQUIRED = (*SECRETS, "CORDON_NOTIFY_GATEWAY_URL")
DUMMY_SECRETS = {name: f"dummy-{name.lower()}-0123456789abcdef0123456789" for name in REQUIRED}
# `${NAME:?message}`: compose stops with the message when NAME is unset or empty.
REQUIRED_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]+\}")
SECRETISH = re.compile(r"PASS|SECRET|TOKEN|PRIVATE", re.IGNORECASE)
URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@:]*:(?P<password>.+)@[^@]+$", re.IGNORECASE)

# Each service runs a one-shot migration, then its API and worker.
SERVICES = ("registry", "testing")
LONG_RUNNING = tuple(f"{name}-{process}" for name in SERVICES for process in ("api", "worker"))


def missing_tool(what: str) -> None:
    """Skip outside CI; in CI a missing tool means .ci/run does not install it: fail."""
    message = f"{what} is not installed (CI installs it: `{CI_PACKAGES}`)"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


# ---- docker-compose.yml -------------------------------------------------------------------


def load_compose() -> dict[str, Any]:
    with COMPOSE_FILE.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


def services() -> dict[str, dict[str, Any]]:
    found = load_compose().get("services")
    assert isinstance(found, dict) and found, "docker-compose.yml has no services"
    return found


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) for item in env)
        return {pair[0]: (pair[1] if len(pair) > 1 else "") for pair in pairs}
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def depends_on_of(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def uses_cordon_image(service: dict[str, Any]) -> bool:
    build = service.get("build")
    dockerfile = build.get("dockerfile", "") if isinstance(build, dict) else ""
    image = str(service.get("image", ""))
    return dockerfile.endswith("deploy/Dockerfile") or image.split(":")[0].endswith("cordon")


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def healthcheck_text(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test") or []
    return test if isinstance(test, str) else " ".join(str(part) for part in test)


def test_compose_parses_and_has_the_processes() -> None:
    compose = load_compose()
    assert "version" not in compose, "compose spec: no top-level `version:`"
    expected = {
        "postgres",
        "rabbitmq",
        "redis",
        *(f"{name}-{process}" for name in SERVICES for process in ("migrate", "api", "worker")),
        "demo",
        "gateway",
    }
    assert expected <= set(services()), f"missing: {sorted(expected - set(services()))}"


def test_shared_environment_is_on_every_cordon_service() -> None:
    shared = load_compose().get("x-cordon-env")
    assert isinstance(shared, dict), "the shared environment lives in `x-cordon-env`"
    shared = {k: str(v) for k, v in shared.items()}
    assert shared["CORDON_MODE"] == "distributed"
    assert shared["CORDON_DATABASE_URL"].startswith("postgresql+asyncpg://cordon:")
    assert shared["CORDON_DATABASE_URL"].endswith("@postgres:5432/cordon")
    assert shared["CORDON_BROKER_URL"].startswith("amqp://cordon:")
    assert shared["CORDON_BROKER_URL"].endswith("@rabbitmq:5672/")
    assert shared["CORDON_REDIS_URL"] == "redis://redis:6379/0"
    assert REQUIRED_REF.fullmatch(shared["CORDON_SECRET_KEY"])

    cordon = {name: svc for name, svc in services().items() if uses_cordon_image(svc)}
    assert {*LONG_RUNNING, "registry-migrate", "testing-migrate", "demo"} <= set(cordon)
    for name, svc in cordon.items():
        env = environment_of(svc)
        wrong = {k: env.get(k) for k, v in shared.items() if env.get(k) != v}
        assert not wrong, f"{name} lacks or overrides the shared environment: {wrong}"


def test_no_secret_has_a_literal_or_default_value() -> None:
    compose = load_compose()
    places: list[tuple[str, dict[str, str]]] = [
        ("x-cordon-env", {k: str(v) for k, v in compose["x-cordon-env"].items()})
    ]
    places += [(name, environment_of(svc)) for name, svc in services().items()]
    for where, env in places:
        for key, value in env.items():
            if SECRETISH.search(key):
                assert REQUIRED_REF.fullmatch(value), (
                    f"{where}: {key} must be a ${{VAR:?message}} reference, not {value!r}"
                )
            url = URL_PASSWORD.match(value)
            if url:
                assert REQUIRED_REF.fullmatch(url["password"]), (
                    f"{where}: {key} embeds a password that is not a ${{VAR:?message}} reference"
                )
    # Anywhere in the file (commands, healthchecks, ...): a secret variable never has a
    # default (`:-`, `-`) and never goes unchecked (plain `$VAR` / `${VAR}`).
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for match in re.finditer(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)([^}\s]*\}?)", text):
        name, rest = match.groups()
        if SECRETISH.search(name):
            assert rest.startswith(":?"), f"{match.group(0)!r}: secrets use ${{{name}:?message}}"
    for name in SECRETS:
        assert f"${{{name}:?" in text, f"{name} is not required anywhere"


def test_notify_processes_know_their_sms_gateway_and_receipt_secret() -> None:
    for name in ("notify-api", "notify-worker"):
        env = environment_of(services()[name])
        assert env["CORDON_NOTIFY_GATEWAY"] == "http", f"{name} would only log its SMS"
        for key in ("GATEWAY_URL", "GATEWAY_AUTH_VALUE", "RECEIPT_SECRET"):
            value = env[f"CORDON_NOTIFY_{key}"]
            assert REQUIRED_REF.fullmatch(value), f"{name}: CORDON_NOTIFY_{key} is {value!r}"
        # The auth header's name and the fallback gateway are there to be set.
        for key in ("GATEWAY_AUTH_HEADER", "FALLBACK_GATEWAY", "FALLBACK_URL"):
            assert f"CORDON_NOTIFY_{key}" in env, f"{name} lacks CORDON_NOTIFY_{key}"
        assert "FALLBACK_AUTH_VALUE" in " ".join(env)


def test_api_and_worker_can_scale() -> None:
    svcs = services()
    for name in LONG_RUNNING:
        svc = svcs[name]
        assert not svc.get("ports"), f"{name} publishes a host port: it could not be scaled"
        assert "container_name" not in svc, f"{name} has a container_name: it could not scale"
    for name, svc in svcs.items():
        if name not in ("gateway", "rabbitmq"):
            assert not svc.get("ports"), f"only the gateway and rabbitmq publish ports: {name}"
    gateway = svcs["gateway"]
    assert gateway["image"].startswith("nginx:1.27")
    assert any(str(port).startswith("8080:80") for port in gateway["ports"])
    mounts = [str(volume) for volume in gateway.get("volumes", [])]
    assert any(m.startswith("./deploy/nginx.conf:/etc/nginx/nginx.conf") for m in mounts)


@pytest.mark.parametrize("name", SERVICES)
def test_commands(name: str) -> None:
    svcs = services()
    assert command_of(svcs[f"{name}-migrate"]) == ["cordon", "migrate", "--service", name]
    assert command_of(svcs[f"{name}-api"]) == [
        "cordon", "serve", "--service", name, "--host", "0.0.0.0", "--port", "8000",
    ]  # fmt: skip
    assert command_of(svcs[f"{name}-worker"]) == ["cordon", "worker", "--service", name]
    assert str(svcs[f"{name}-migrate"].get("restart", "no")) == "no"


def test_demo_runs_on_request() -> None:
    svcs = services()
    assert command_of(svcs["demo"]) == ["cordon", "demo", "--size", "25000"]
    assert svcs["demo"].get("profiles") == ["demo"], "demo runs only with --profile demo"


def test_depends_on_targets_exist_and_are_healthy_when_asked() -> None:
    svcs = services()
    valid = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, svc in svcs.items():
        for target, condition in depends_on_of(svc).items():
            assert target in svcs, f"{name} depends on {target}, which is not a service"
            assert condition in valid, f"{name} -> {target}: unknown condition {condition}"
            if condition == "service_healthy":
                assert svcs[target].get("healthcheck"), f"{target} has no healthcheck"
            if condition == "service_completed_successfully":
                assert svcs[target].get("restart", "no") == "no", f"{target} is one-shot"
    for service in SERVICES:
        assert depends_on_of(svcs[f"{service}-migrate"]) == {"postgres": "service_healthy"}
    for name in LONG_RUNNING:
        deps = depends_on_of(svcs[name])
        migrate = name.split("-")[0] + "-migrate"
        assert deps.get(migrate) == "service_completed_successfully", name
        assert deps.get("rabbitmq") == "service_healthy", name
        assert deps.get("redis") == "service_healthy", name
    for service in SERVICES:
        assert f"{service}-api" in depends_on_of(svcs["gateway"])


def test_healthchecks() -> None:
    svcs = services()
    assert "pg_isready" in healthcheck_text(svcs["postgres"])
    assert "rabbitmq-diagnostics -q ping" in healthcheck_text(svcs["rabbitmq"])
    assert "redis-cli ping" in healthcheck_text(svcs["redis"])
    for service in SERVICES:
        api = healthcheck_text(svcs[f"{service}-api"])
        assert "urllib" in api and "http://localhost:8000/readyz" in api, api
        assert "curl" not in api and "wget" not in api, "python:3.11-slim has neither"
        # The check must be valid Python (it runs as `python -c`).
        code = svcs[f"{service}-api"]["healthcheck"]["test"][-1]
        compile(code, "<healthcheck>", "exec")


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def run_compose_config(tmp_path: Path, secrets: dict[str, str]) -> subprocess.CompletedProcess:
    command = compose_command()
    if command is None:
        missing_tool("docker compose (or docker-compose)")
    assert command is not None
    env = {k: v for k, v in os.environ.items() if k not in REQUIRED and k != "COMPOSE_PROFILES"}
    env.update(secrets)
    empty_env_file = tmp_path / "empty.env"  # a developer's .env must not hide a problem
    empty_env_file.write_text("", encoding="utf-8")
    return subprocess.run(
        [
            *command,
            "--env-file",
            str(empty_env_file),
            "--project-directory",
            str(ROOT),
            "-f",
            str(COMPOSE_FILE),
            "--profile",
            "demo",
            "config",
            "-q",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    result = run_compose_config(tmp_path, DUMMY_SECRETS)
    assert result.returncode == 0, result.stderr + result.stdout


@pytest.mark.parametrize("unset", REQUIRED)
def test_docker_compose_refuses_to_run_without_a_secret(tmp_path: Path, unset: str) -> None:
    secrets = {k: v for k, v in DUMMY_SECRETS.items() if k != unset}
    result = run_compose_config(tmp_path, secrets)
    assert result.returncode != 0, f"compose accepted the file without {unset}"
    assert unset in result.stderr + result.stdout


# ---- deploy/nginx.conf --------------------------------------------------------------------


def nginx_text() -> str:
    return NGINX_CONF.read_text(encoding="utf-8")


def strip_comments(text: str) -> str:
    lines = []
    for line in text.splitlines():
        out, quote = [], ""
        for char in line:
            if quote:
                quote = "" if char == quote else quote
            elif char in "'\"":
                quote = char
            elif char == "#":
                break
            out.append(char)
        lines.append("".join(out))
    return "\n".join(lines)


def map_block(source: str, target: str) -> list[tuple[str, str]]:
    """The entries of `map $source $target { ... }` as (key, value) pairs, in order."""
    text = strip_comments(nginx_text())
    head = re.search(rf"\bmap\s+\${source}\s+\${target}\s*\{{", text)
    assert head, f"deploy/nginx.conf has no `map ${source} ${target}` block"
    body = text[head.end() : text.index("}", head.end())]
    entries = []
    for statement in body.split(";"):
        words = statement.split()
        if not words:
            continue
        assert len(words) == 2, f"unexpected map entry: {statement.strip()!r}"
        entries.append((words[0].strip("'\""), words[1].strip("'\"")))
    return entries


def route(resource: str) -> str:
    """Where nginx sends /v1/<resource>: exact keys first, then regexes in order."""
    entries = map_block("resource", "upstream")
    exact = {key: value for key, value in entries if not key.startswith("~")}
    if resource in exact and resource != "default":
        return exact[resource]
    for key, value in entries:
        if key.startswith("~*") and re.search(key[2:], resource, re.IGNORECASE):
            return value
        if key.startswith("~") and not key.startswith("~*") and re.search(key[1:], resource):
            return value
    return exact.get("default", "")


def declared_routes() -> dict[str, str]:
    """Every resource the map names, with its upstream. Regex keys must be plain lists,
    `~^name$` or `~^(a|b|c)$`, so that the routes can be read back."""
    declared: dict[str, str] = {}
    for key, value in map_block("resource", "upstream"):
        if key == "default":
            continue
        if key.startswith("~"):
            listed = re.fullmatch(r"~\^\(?([a-z0-9_|-]+)\)?\$", key)
            assert listed, f"map key {key!r}: write resources as ~^(a|b|c)$ or one per line"
            names = listed.group(1).split("|")
        else:
            names = [key]
        for name in names:
            assert name not in declared, f"resource {name} is routed twice"
            declared[name] = value
    return declared


def host_of(upstream: str) -> str:
    return upstream.rsplit(":", 1)[0]


@pytest.mark.parametrize(
    ("service", "resources"), [("registry", REGISTRY_RESOURCES), ("testing", TESTING_RESOURCES)]
)
def test_nginx_routes_every_resource_to_its_service(
    service: str, resources: tuple[str, ...]
) -> None:
    upstream = f"{service}-api:8000"
    for resource in resources:
        assert route(resource) == upstream, f"/v1/{resource} -> {route(resource)!r}"
    routed = {r for r, up in declared_routes().items() if up == upstream}
    assert routed == set(resources), sorted(routed ^ set(resources))
    assert route("no-such-resource") == "", "an unknown resource must get the 404 problem"


def test_nginx_unknown_resource_is_a_problem_document() -> None:
    text = nginx_text()
    head = re.search(r"location\s+@no_service\s*\{", text)
    assert head, "no @no_service location"
    block = text[head.end() : text.index("\n        }", head.end())]
    assert "default_type application/problem+json;" in block
    body = re.search(r"return\s+404\s+'(?P<json>[^']*)'\s*;", block)
    assert body, "@no_service must return 404 with a body"
    assert json.loads(body["json"]) == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "no service owns this resource",
    }


def test_nginx_settings() -> None:
    text = strip_comments(nginx_text())
    assert re.search(r"\bresolver\s+127\.0\.0\.11\s+valid=10s\b", text)
    assert re.search(r"proxy_pass\s+http://\$upstream\s*;", text), "resolve per request"
    assert re.search(r"\bclient_max_body_size\s+200m\s*;", text)
    assert re.search(r"\bproxy_read_timeout\s+300s\s*;", text)
    assert re.search(r"proxy_set_header\s+X-Correlation-ID\s+\$correlation_id\s*;", text)
    assert re.search(r'""\s+\$request_id\s*;', text), "a missing correlation id is generated"
    # The gateway is the edge: it overwrites the client's address (sign-in throttling).
    assert re.search(r"proxy_set_header\s+X-Forwarded-For\s+\$remote_addr\s*;", text)
    assert re.search(r"proxy_set_header\s+X-Forwarded-Proto\s+\$scheme", text)
    for path in PLATFORM_PATHS:
        assert path.lstrip("/").replace(".", r"\.") in text, f"{path} is not routed"


def test_nginx_upstreams_are_compose_services() -> None:
    svcs = services()
    upstreams = set(declared_routes().values())
    upstreams |= {value for _, value in map_block("uri", "platform_upstream")}
    for upstream in upstreams:
        host, _, port = upstream.rpartition(":")
        assert host in svcs, f"the gateway routes to {host}, which compose does not run"
        assert port == "8000", f"{upstream}: the APIs listen on 8000"
        assert host in depends_on_of(svcs["gateway"]), f"gateway should depend on {host}"


def test_gateway_routes_exactly_what_cordon_services_declare(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if importlib.util.find_spec("cordon") is None:  # the project is not installed
        monkeypatch.syspath_prepend(str(ROOT))
    problem = None
    try:
        registry_of_services = importlib.import_module("cordon.services")
    except ImportError as exc:
        problem = f"cannot import cordon.services ({exc})"
    if problem:
        pytest.fail(
            f"{problem}: the gateway's routes cannot be compared with the code until "
            "cordon.services (ALL: name + resources of each service) exists",
            pytrace=False,
        )
    all_services = getattr(registry_of_services, "ALL", None)
    assert all_services, "cordon.services.ALL is missing or empty"
    expected: dict[str, str] = {}
    for service in all_services:
        for resource in service.resources:
            assert resource not in expected, f"{resource} is claimed by two services"
            expected[resource] = f"{service.name}-api"
    declared = {resource: host_of(up) for resource, up in declared_routes().items()}
    assert declared == expected, (
        f"nginx routes {sorted(set(declared.items()) ^ set(expected.items()))} "
        "differently from cordon.services.ALL"
    )
    for resource, host in expected.items():
        assert host_of(route(resource)) == host, f"/v1/{resource} -> {route(resource)!r}"
    svcs = services()
    for service in all_services:
        assert f"{service.name}-api" in svcs, f"compose does not run {service.name}-api"


def nginx_copy(tmp_path: Path, upstream: str, listen: str) -> Path:
    """The config with what cannot exist here replaced: service hosts and the listen port.
    Temporary files go under tmp_path so nginx does not need root."""
    text = nginx_text()
    text = re.sub(r"\b[a-z][a-z0-9-]*-api:8000\b", upstream, text)
    text = re.sub(r"\blisten\s+80\s*;", f"listen {listen};", text)
    version = subprocess.run(["nginx", "-V"], capture_output=True, text=True, check=False)
    temp_paths = ["client_body_temp_path", "proxy_temp_path"]
    for module in ("fastcgi", "uwsgi", "scgi"):
        if f"--without-http_{module}_module" not in version.stderr:
            temp_paths.append(f"{module}_temp_path")
    lines = "".join(f"    {d} {tmp_path / d.removesuffix('_temp_path')};\n" for d in temp_paths)
    text = text.replace("http {\n", "http {\n" + lines, 1)
    conf = tmp_path / "nginx.conf"
    conf.write_text(text, encoding="utf-8")
    return conf


def nginx_or_skip() -> str:
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    if nginx is None:
        missing_tool("nginx")
    assert nginx is not None
    return nginx


def test_nginx_config_syntax(tmp_path: Path) -> None:
    nginx = nginx_or_skip()
    conf = nginx_copy(tmp_path, "127.0.0.1:8000", "127.0.0.1:8080")
    result = subprocess.run(
        [
            nginx,
            "-t",
            "-p",
            str(tmp_path),
            "-e",
            "stderr",
            "-c",
            str(conf),
            "-g",
            f"pid {tmp_path / 'nginx.pid'};",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


class _Echo(http.server.BaseHTTPRequestHandler):
    """A stand-in service: answers with what it received."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps({"path": self.path, "headers": dict(self.headers.items())}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Straight to the local nginx, whatever *_proxy variables the machine has.
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with NO_PROXY.open(request, timeout=10) as response:
            return (
                response.status,
                response.headers.get("Content-Type", ""),
                response.read().decode(),
            )
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read().decode()


def test_nginx_gateway_live(tmp_path: Path) -> None:
    """The real nginx in front of a stub service: routes, headers, problem documents."""
    nginx = nginx_or_skip()
    backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    port = free_port()
    conf = nginx_copy(tmp_path, f"127.0.0.1:{backend.server_address[1]}", f"127.0.0.1:{port}")
    proc = subprocess.Popen(
        [
            nginx,
            "-p",
            str(tmp_path),
            "-e",
            "stderr",
            "-c",
            str(conf),
            "-g",
            f"daemon off; pid {tmp_path / 'nginx.pid'};",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, f"nginx exited: {proc.communicate()[1]}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "nginx did not start listening"
                time.sleep(0.05)

        for resource in REGISTRY_RESOURCES + TESTING_RESOURCES:
            status, _, body = fetch(f"{base}/v1/{resource}/x/y?cursor=abc")
            assert status == 200, (resource, body)
            assert json.loads(body)["path"] == f"/v1/{resource}/x/y?cursor=abc"
        for path in PLATFORM_PATHS + CONSOLE_PATHS:
            status, _, body = fetch(base + path)
            assert status == 200 and json.loads(body)["path"] == path

        _, _, body = fetch(f"{base}/v1/residents", {"X-Correlation-ID": "corr-42"})
        seen = {k.lower(): v for k, v in json.loads(body)["headers"].items()}
        assert seen["x-correlation-id"] == "corr-42"
        assert seen["x-forwarded-for"] == "127.0.0.1"
        assert seen["x-forwarded-proto"] == "http"
        # A client cannot choose the address the services see (and throttle sign-ins by).
        _, _, body = fetch(f"{base}/v1/auth/token", {"X-Forwarded-For": "203.0.113.66"})
        seen = {k.lower(): v for k, v in json.loads(body)["headers"].items()}
        assert seen["x-forwarded-for"] == "127.0.0.1"
        _, _, body = fetch(f"{base}/v1/residents")
        seen = {k.lower(): v for k, v in json.loads(body)["headers"].items()}
        assert re.fullmatch(r"[0-9a-f]{32}", seen["x-correlation-id"]), "generated id"

        status, content_type, body = fetch(f"{base}/v1/no-such-resource/1")
        assert status == 404
        assert content_type.startswith("application/problem+json")
        assert json.loads(body) == {
            "type": "about:blank",
            "title": "Not Found",
            "status": 404,
            "detail": "no service owns this resource",
        }

        backend.shutdown()
        backend.server_close()
        status, content_type, body = fetch(f"{base}/v1/towns")
        assert status == 503 and content_type.startswith("application/problem+json"), body
        assert json.loads(body)["status"] == 503
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        backend.server_close()


# ---- deploy/Dockerfile, .dockerignore, env.example -----------------------------------------


def test_dockerfile() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    instructions = [
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]
    assert instructions[0] == "FROM python:3.11-slim"
    assert "pip install --no-cache-dir ." in text
    users = [line.split(None, 1)[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "runs as a non-root user"
    assert instructions[-1] == 'CMD ["cordon", "--help"]'


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", "data", ".git", "bench/out", ".env"} <= ignored
    assert {"pyproject.toml", "shared", "services", "cordon"}.isdisjoint(ignored)


def test_a_tunable_set_in_env_reaches_every_process_and_defaults_to_the_kernels() -> None:
    """An operator who sets CORDON_CLOCK_SKEW_MINUTES (or another tunable env.example lists)
    in .env gets it in every Cordon process; left unset, each process has the kernel's own
    default, not another one written in the compose file."""
    from shared.settings import Settings

    listed = re.findall(r"^# (CORDON_[A-Z_]+)=(.*)$", ENV_EXAMPLE.read_text(), re.MULTILINE)
    tunables = {name: shown for name, shown in listed if name != "CORDON_IMAGE_TAG"}
    tunables = {n: v for n, v in tunables.items() if not n.startswith("CORDON_NOTIFY_")}
    assert "CORDON_CLOCK_SKEW_MINUTES" in tunables
    environment = yaml.safe_load(COMPOSE_FILE.read_text())["x-cordon-env"]
    for name, shown in tunables.items():
        field = name.removeprefix("CORDON_").lower()
        default = str(Settings.model_fields[field].default)
        assert shown == default, f"env.example shows {name}={shown}, the kernel's is {default}"
        assert environment.get(name) == f"${{{name}:-{default}}}", name


def test_env_example_has_every_secret_empty() -> None:
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    for name in REQUIRED:
        assert values.get(name) == "", f"env.example: {name}= must be there and empty"
