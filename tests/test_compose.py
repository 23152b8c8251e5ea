"""docker-compose.yml, scripts/jaeger-config.yaml and scripts/backends.sh agree with scripts/backends.env.

backends.env is the one place for versions, ports and URLs: backends.sh (the e2e backends that
scripts/test.sh starts) sources it, docker-compose.yml repeats it. No servers are needed here.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from mltrace.export import EXPORTERS

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("jaeger", "zipkin", "redis")
# compose service -> (backends.env key of its port, the file it runs)
EXAMPLES = {
    "model-server": ("EXAMPLE_MODEL_SERVER_PORT", "examples/serve_sklearn.py"),
    "gateway": ("EXAMPLE_GATEWAY_PORT", "examples/multiservice/gateway.py"),
    "features": ("EXAMPLE_FEATURES_PORT", "examples/multiservice/features.py"),
    "model": ("EXAMPLE_MODEL_PORT", "examples/multiservice/model.py"),
}
# what an example installs beyond mltrace-serving[serve] (httpx instrumentation, redis-py)
EXTRA_REQUIREMENTS = {
    "gateway": "examples/multiservice/requirements.txt",
    "features": "examples/multiservice/requirements.txt",
    "model": "examples/multiservice/requirements.txt",
}
PUBLISHED = {
    "jaeger": (
        "JAEGER_OTLP_GRPC_PORT",
        "JAEGER_OTLP_HTTP_PORT",
        "JAEGER_QUERY_HTTP_PORT",
        "JAEGER_HEALTH_PORT",
    ),
    "zipkin": ("ZIPKIN_PORT",),
    "redis": ("REDIS_PORT",),
    **{name: (key,) for name, (key, _) in EXAMPLES.items()},
}
LISTEN = "${env:JAEGER_LISTEN_HOST:-127.0.0.1}"


@cache
def env() -> dict[str, str]:
    values = {}
    for line in (ROOT / "scripts/backends.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


@cache
def jaeger_config() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "scripts/jaeger-config.yaml").read_text())  # type: ignore[no-any-return]


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]  # type: ignore[no-any-return]


def port(key: str) -> int:
    return int(env()[key])


def endpoints(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["endpoint"]] if "endpoint" in node else []
        return found + [e for value in node.values() for e in endpoints(value)]
    if isinstance(node, list):
        return [e for value in node for e in endpoints(value)]
    return []


def container_ports(name: str) -> set[int]:
    return {int(p.rsplit(":", 1)[1]) for p in service(name).get("ports", [])}


def test_backends_env_is_plain_key_value() -> None:
    """Every line of backends.env is a comment, blank, or KEY=VALUE with no quoting or expansion."""
    for line in (ROOT / "scripts/backends.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*=[^\s'\"$`]+", line), line


def test_services_are_the_backends_and_the_examples() -> None:
    """Compose runs exactly the three backends and the four example servers."""
    assert set(compose()["services"]) == {*BACKENDS, *EXAMPLES}


@pytest.mark.parametrize(
    ("name", "key"),
    [("jaeger", "JAEGER_IMAGE"), ("zipkin", "ZIPKIN_IMAGE"), ("redis", "REDIS_IMAGE")],
)
def test_backend_images_match(name: str, key: str) -> None:
    """Each backend's image is the one backends.env names."""
    assert service(name)["image"] == env()[key]


def test_jaeger_image_is_the_release_of_the_built_module() -> None:
    """The image tag is v2.12.0, the release whose Go module tag backends.sh builds (v1.75.0)."""
    assert env()["JAEGER_MODULE_VERSION"] == "1.75.0"
    assert env()["JAEGER_IMAGE"] == "jaegertracing/jaeger:2.12.0"


def test_zipkin_image_and_jar_are_the_same_version() -> None:
    """The Zipkin image tag equals the server jar version backends.sh downloads."""
    assert env()["ZIPKIN_IMAGE"] == f"openzipkin/zipkin:{env()['ZIPKIN_VERSION']}"


@pytest.mark.parametrize(("name", "key"), [(n, k) for n, keys in PUBLISHED.items() for k in keys])
def test_ports_are_published_on_loopback(name: str, key: str) -> None:
    """Each canonical port is published as 127.0.0.1:PORT:PORT by its service."""
    p = port(key)
    assert f"{env()['LISTEN_HOST']}:{p}:{p}" in service(name)["ports"]


def test_no_host_port_is_published_twice() -> None:
    """No two services publish the same host port."""
    published = [p for s in compose()["services"].values() for p in s.get("ports", [])]
    host_ports = [p.rsplit(":", 2)[1] for p in published]
    assert len(host_ports) == len(set(host_ports))


def test_jaeger_runs_the_committed_config() -> None:
    """Jaeger mounts scripts/jaeger-config.yaml and starts with --config file:<that path>."""
    jaeger = service("jaeger")
    mounts = dict(v.split(":")[:2] for v in jaeger["volumes"])
    target = mounts["./scripts/jaeger-config.yaml"]
    assert jaeger["command"] == ["--config", f"file:{target}"]


def test_jaeger_listens_on_all_interfaces_in_its_container() -> None:
    """Compose sets JAEGER_LISTEN_HOST=0.0.0.0, the variable the config's endpoints read."""
    assert service("jaeger")["environment"]["JAEGER_LISTEN_HOST"] == "0.0.0.0"


@pytest.mark.parametrize(
    ("path", "key"),
    [
        (("receivers", "otlp", "protocols", "grpc"), "JAEGER_OTLP_GRPC_PORT"),
        (("receivers", "otlp", "protocols", "http"), "JAEGER_OTLP_HTTP_PORT"),
        (("extensions", "jaeger_query", "http"), "JAEGER_QUERY_HTTP_PORT"),
        (("extensions", "jaeger_query", "grpc"), "JAEGER_QUERY_GRPC_PORT"),
        (("extensions", "healthcheckv2", "http"), "JAEGER_HEALTH_PORT"),
    ],
)
def test_jaeger_config_endpoints(path: tuple[str, ...], key: str) -> None:
    """Each Jaeger endpoint binds JAEGER_LISTEN_HOST (default 127.0.0.1) at its port variable, which
    backends.sh sets (free ports under scripts/test.sh) and which defaults to the canonical port."""
    node: Any = jaeger_config()
    for part in path:
        node = node[part]
    assert node["endpoint"] == f"{LISTEN}:${{env:{key}:-{port(key)}}}"


def test_jaeger_config_takes_only_otlp() -> None:
    """Only the OTLP receiver runs: Jaeger's zipkin receiver would take the Zipkin server's port."""
    config = jaeger_config()
    assert set(config["receivers"]) == {"otlp"}
    assert config["service"]["pipelines"]["traces"]["receivers"] == ["otlp"]


def test_jaeger_config_opens_only_jaeger_ports() -> None:
    """Every endpoint in the Jaeger config is one of backends.env's JAEGER_* ports, all on loopback."""
    jaeger_ports = {
        f"{LISTEN}:${{env:{k}:-{v}}}" for k, v in env().items() if k.startswith("JAEGER_") and k.endswith("_PORT")
    }
    found = endpoints(jaeger_config())
    assert len(found) == len(jaeger_ports)
    assert set(found) == jaeger_ports


def test_jaeger_does_not_trace_itself() -> None:
    """The query service's self-tracing is off, so /api/services lists only the services under test."""
    assert jaeger_config()["extensions"]["jaeger_query"]["enable_tracing"] is False


def test_backends_sh_takes_every_port_from_backends_env() -> None:
    """backends.sh sources backends.env and writes no port number of its own."""
    script = (ROOT / "scripts/backends.sh").read_text()
    assert 'source "$ROOT/scripts/backends.env"' in script
    assert "scripts/jaeger-config.yaml" in script
    ports = {v for k, v in env().items() if k.endswith("_PORT")}
    assert set(re.findall(r"\d+", script)) & ports == set()


@pytest.mark.parametrize(
    ("key", "url"),
    [
        ("MLTRACE_E2E_OTLP_ENDPOINT", "http://{LISTEN_HOST}:{JAEGER_OTLP_GRPC_PORT}"),
        ("MLTRACE_E2E_OTLP_HTTP_ENDPOINT", "http://{LISTEN_HOST}:{JAEGER_OTLP_HTTP_PORT}"),
        ("MLTRACE_E2E_JAEGER_QUERY_URL", "http://{LISTEN_HOST}:{JAEGER_QUERY_HTTP_PORT}"),
        ("MLTRACE_E2E_ZIPKIN_URL", "http://{LISTEN_HOST}:{ZIPKIN_PORT}"),
        ("MLTRACE_E2E_REDIS_URL", "redis://{LISTEN_HOST}:{REDIS_PORT}/0"),
    ],
)
def test_e2e_urls_agree_with_the_ports(key: str, url: str) -> None:
    """The URLs the e2e tests read are built from LISTEN_HOST and the canonical ports."""
    assert env()[key] == url.format(**env())


def test_zipkin_settings() -> None:
    """Zipkin keeps spans in memory and serves on ZIPKIN_PORT, as backends.sh runs it."""
    environment = service("zipkin")["environment"]
    assert environment["STORAGE_TYPE"] == "mem"
    assert int(environment["QUERY_PORT"]) == port("ZIPKIN_PORT")


def test_redis_keeps_nothing_on_disk() -> None:
    """Redis runs with RDB snapshots and the append-only file off, as backends.sh runs it."""
    command = service("redis")["command"]
    assert command[0] == "redis-server"
    assert command[command.index("--save") + 1] == ""
    assert command[command.index("--appendonly") + 1] == "no"


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_example_server_settings(name: str) -> None:
    """Each example installs mltrace[serve], runs its script on 0.0.0.0:PORT and names its service."""
    key, script = EXAMPLES[name]
    example = service(name)
    environment = example["environment"]
    assert example["image"] == "python:3.11-slim"
    assert example["volumes"][0] == ".:/src"
    assert example["working_dir"] == "/src"
    assert example["command"][:2] == ["sh", "-c"]
    extra = f" -r {EXTRA_REQUIREMENTS[name]}" if name in EXTRA_REQUIREMENTS else ""
    assert f"pip install -q -e '.[serve]'{extra} && exec python {script}" == example["command"][2]
    assert environment["HOST"] == "0.0.0.0"
    assert int(environment["PORT"]) == port(key)
    assert environment["OTEL_SERVICE_NAME"] == name


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_example_commands_name_existing_files(name: str) -> None:
    """Every file an example's command runs (python FILE) or installs (-r FILE) exists in the checkout."""
    command = service(name)["command"][2]
    files = re.findall(r"python (\S+\.py)", command) + re.findall(r"-r (\S+)", command)
    assert files, command
    for path in files:
        assert (ROOT / path).is_file(), f"{name}: {path} does not exist"


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_example_scripts_read_the_variables_compose_sets(name: str) -> None:
    """Each variable compose gives an example (other than OTEL_*, MLTRACE_*, PYTHON*) is read by its script."""
    source = (ROOT / EXAMPLES[name][1]).read_text()
    ours = [k for k in service(name)["environment"] if not k.startswith(("OTEL_", "MLTRACE_", "PYTHON"))]
    assert "PORT" in ours
    for key in ours:
        assert f'os.environ.get("{key}"' in source, f"{EXAMPLES[name][1]} does not read {key}"


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_examples_export_to_the_compose_backends(name: str) -> None:
    """Each example exports with a real mltrace exporter to Jaeger's OTLP gRPC port and Zipkin's API."""
    environment = service(name)["environment"]
    assert environment["MLTRACE_EXPORTER"] in EXPORTERS
    assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://jaeger:{port('JAEGER_OTLP_GRPC_PORT')}"
    assert environment["OTEL_EXPORTER_ZIPKIN_ENDPOINT"] == f"http://zipkin:{port('ZIPKIN_PORT')}/api/v2/spans"


def test_urls_name_compose_services_and_their_ports() -> None:
    """Every scheme://host:port in an environment names a compose service listening on that port."""
    services = compose()["services"]
    urls = [
        (name, value)
        for name, s in services.items()
        for value in s.get("environment", {}).values()
        if re.match(r"[a-z]+://", str(value))
    ]
    assert urls
    for name, url in urls:
        m = re.match(r"[a-z]+://([\w-]+):(\d+)", url)
        assert m, f"{name}: {url} has no host:port"
        host, p = m.group(1), int(m.group(2))
        assert host in services, f"{name}: {url} names no service"
        assert p in container_ports(host), f"{name}: {host} does not listen on {p}"


def test_depends_on_names_services() -> None:
    """depends_on lists only services that exist, and every example waits for the backends."""
    services = compose()["services"]
    for name, s in services.items():
        assert set(s.get("depends_on", [])) <= set(services) - {name}
    for name in EXAMPLES:
        assert set(BACKENDS) <= set(services[name]["depends_on"])


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_free_port_backends_run_beside_something_on_the_default_port(tmp_path: Path) -> None:
    """scripts/test.sh's mode (MLTRACE_BACKENDS_FREE_PORTS=1, a private state dir) starts Redis on a port
    the OS chose while another process listens on the default 6379, reports that port in `env`, answers
    PING there, and `down` stops only what it started (the other listener stays)."""
    import os
    import shutil
    import socket
    import subprocess

    if shutil.which("redis-server") is None:
        if os.environ.get("MLTRACE_E2E") == "1":
            pytest.fail("redis-server is missing (scripts/backends.sh build redis installs it)")
        pytest.skip("redis-server is not installed")
    default = port("REDIS_PORT")
    blocker = None
    if not _listening(default):  # nobody there (CI): a dummy listener takes the default port
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", default))
        blocker.listen()
    env = {**os.environ, "MLTRACE_BACKENDS_STATE": str(tmp_path / "state"), "MLTRACE_BACKENDS_FREE_PORTS": "1"}

    def sh(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(ROOT / "scripts/backends.sh"), *args], env=env, capture_output=True,
                              text=True, timeout=120, check=False)

    try:
        up = sh("up", "redis")
        assert up.returncode == 0, up.stderr
        url = dict(re.findall(r"^export (\w+)=(\S+)$", sh("env").stdout, re.M))["MLTRACE_E2E_REDIS_URL"]
        chosen = int(url.rsplit(":", 1)[1].split("/")[0])
        assert chosen != default
        with socket.create_connection(("127.0.0.1", chosen), timeout=5) as s:
            s.sendall(b"PING\r\n")
            assert s.recv(16).startswith(b"+PONG")
        assert sh("status", "redis").returncode == 0
        assert sh("up", "redis").returncode == 0  # idempotent, same port
        assert f":{chosen}/" in sh("env").stdout
    finally:
        down = sh("down", "redis")
    assert down.returncode == 0 and not _listening(chosen)
    assert _listening(default)  # the other process on the default port was left alone
    if blocker is not None:
        blocker.close()


def test_no_registry_host_is_named_in_the_repository() -> None:
    """Packages, modules and jars come through their clients (pip, go, mvn, apt-get), configured where
    the machine says; no file of the repository names a registry host or URL."""
    import subprocess

    hosts = ["maven" + ".org", "pypi" + ".org", "proxy" + ".golang", "npm" + "js"]
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    named = [
        f"{name}: {host}"
        for name in files
        if (ROOT / name).is_file()
        for host in hosts
        if host in (ROOT / name).read_text(errors="replace")
    ]
    assert named == []
