"""deploy/ is checked here, since no container engine or cluster runs in CI.

- Dockerfile: parsed with ``dockerfile-parse``; pinned base, non-root user, entrypoint and
  command, every COPY source present and not ignored, the Makefile's ``uv sync --frozen``;
  a slow test runs its build-stage ``uv`` commands outside Docker and imports every service
  from the result.
- compose.yaml: interpolated as Compose does, validated against the Compose Specification
  schema (``compose-spec.json``, copied from compose-spec/compose-go, Apache-2.0), and by
  ``docker compose config`` where the compose plugin exists.
- Helm chart: rendered and linted by Helm's own Go SDK (``helm-python-sdk``), manifests
  validated against the Kubernetes OpenAPI schemas shipped in ``kubernetes-validate``.

For compose and the chart alike, every Inwire container's environment is fed to the settings
class of the service it runs, and the backend URLs to the kit's own factories, so a variable
that is not a setting, or a URL the services would refuse, fails here.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import typer.main
import yaml
from cryptography.fernet import Fernet
from dockerfile_parse import DockerfileParser
from pydantic_settings import BaseSettings
from sqlalchemy.engine import make_url

import inwire
from inwire.cli.main import app as cli_app
from inwire.kit.events import open_event_bus
from inwire.kit.events.jetstream import JetStreamEventBus
from inwire.kit.ratelimit import RedisRateLimiter, open_rate_limiter
from inwire.kit.settings import ServiceSettings
from inwire.kit.storage import S3ObjectStore, open_object_store
from inwire.services import registry
from inwire.services.registry import SERVICES, ServiceSpec, names

REPO = Path(__file__).parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
CHART = DEPLOY / "helm" / "inwire"
COMPOSE_SCHEMA = Path(__file__).parent / "compose-spec.json"

#: The gateway runs in front of the registered services (ARCHITECTURE §2: port 8080).
GATEWAY_SPEC: ServiceSpec | None = getattr(registry, "GATEWAY", None)
GATEWAY = "gateway"
GATEWAY_PORT = GATEWAY_SPEC.port if GATEWAY_SPEC is not None else 8080
#: Variables other than Inwire settings a container may carry: boto3's credential chain, and
#: what the image sets for Python.
FOREIGN_VARIABLES = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "PATH",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
}
#: Interpolation values for compose.yaml, as a user's deploy/.env would give them.
COMPOSE_ENV = {
    "POSTGRES_PASSWORD": "pgpass0123456789",
    "S3_SECRET_KEY": "s3secret0123456789",
    "INWIRE_CORE_SECRET_KEY": Fernet.generate_key().decode(),
    "INWIRE_INTERNAL_SECRET": "internal0123456789abcdef",
}
#: Values the chart is rendered with: every required one, every backend set.
CHART_VALUES: dict[str, Any] = {
    "database": {"url": "postgresql+asyncpg://inwire:pgpass@postgres.db:5432/inwire"},
    "cache": {"url": "redis://redis.db:6379/0"},
    "events": {"url": "nats://nats.db:4222"},
    "storage": {
        "url": "s3://inwire?endpoint_url=https://s3.example.com&region=eu-west-1",
        "accessKeyId": "AKIAEXAMPLE",
        "secretAccessKey": "secret0123456789",
    },
    "core": {"secretKey": COMPOSE_ENV["INWIRE_CORE_SECRET_KEY"]},
    "internalSecret": COMPOSE_ENV["INWIRE_INTERNAL_SECRET"],
    "ingress": {"enabled": True, "host": "inwire.test", "tls": [{"secretName": "t"}]},
}


# --------------------------------------------------------------------------- shared


def expected_ports() -> dict[str, int]:
    """Every container Inwire runs, and its port."""
    return {GATEWAY: GATEWAY_PORT} | {spec.name: spec.port for spec in SERVICES}


def settings_class(name: str) -> type[BaseSettings]:
    """The settings class of service ``name``, or the gateway's."""
    if name == GATEWAY:
        if GATEWAY_SPEC is None:
            pytest.skip("the gateway is not in this tree yet (no registry.GATEWAY)")
        gateway: type[BaseSettings] = GATEWAY_SPEC.load_settings_class()
        return gateway
    return next(spec for spec in SERVICES if spec.name == name).load_settings_class()


def setting_variables(settings: type[BaseSettings]) -> set[str]:
    """Every variable ``settings`` reads: ``<its prefix><FIELD>``, then ``INWIRE_<FIELD>``.

    A service's platform-wide fallback covers the fields of ``ServiceSettings``; the
    gateway's covers all of its own (both add an ``INWIRE_`` source in
    ``settings_customise_sources``).
    """
    prefix = str(settings.model_config.get("env_prefix", ""))
    shared_fields = (
        ServiceSettings.model_fields
        if issubclass(settings, ServiceSettings)
        else settings.model_fields
    )
    names = {f"{prefix}{field}".upper() for field in settings.model_fields if field != "home"}
    names |= {f"INWIRE_{field}".upper() for field in shared_fields if field != "home"}
    if "home" in settings.model_fields:
        names.add("INWIRE_HOME")  # ServiceSettings.home reads INWIRE_HOME only
    return names


def any_setting_variables() -> set[str]:
    """The variables some Inwire container reads."""
    containers = [spec.name for spec in SERVICES] + ([GATEWAY] if GATEWAY_SPEC else [])
    return set().union(*(setting_variables(settings_class(name)) for name in containers))


def check_environment(
    name: str,
    own: Mapping[str, str],
    monkeypatch: pytest.MonkeyPatch,
    shared: Mapping[str, str] | None = None,
) -> BaseSettings:
    """Build ``name``'s settings from its environment and open the backends its URLs name.

    ``own`` is what this container alone is given: each ``INWIRE_*`` variable must be one of
    its settings. ``shared`` (every Inwire container's, like the image's ``ENV``) need only
    be a setting of some container. Nothing connects: the kit's factories only parse.
    """
    settings = settings_class(name)
    env = {**image_env(), **(shared or {}), **own}
    unknown = sorted(
        var
        for var, source in [(v, own) for v in own] + [(v, env) for v in env if v not in own]
        if (
            var.startswith("INWIRE_")
            and var
            not in (setting_variables(settings) if source is own else any_setting_variables())
        )
        or (not var.startswith("INWIRE_") and var not in FOREIGN_VARIABLES)
    )
    assert unknown == [], f"{name}: not settings of {settings.__name__}"
    with monkeypatch.context() as patch:
        for var in list(os.environ):
            if var.startswith(("INWIRE_", "AWS_")):
                patch.delenv(var)
        for var, value in env.items():
            if var != "PATH":
                patch.setenv(var, value)
        built = settings()
    assert built.host == "0.0.0.0", f"{name} would listen on loopback only"
    assert isinstance(open_rate_limiter(built.cache_url), RedisRateLimiter), name
    if name == GATEWAY:
        assert set(built.upstreams) == {spec.name for spec in SERVICES}
        return built
    assert isinstance(built, ServiceSettings)
    assert make_url(built.database_url).drivername == "postgresql+asyncpg", name
    assert isinstance(open_object_store(built.storage_url), S3ObjectStore), name
    assert isinstance(open_event_bus(built.events_url), JetStreamEventBus), name
    assert built.migrate_on_start is False, f"{name} would race the migration job"
    assert str(built.home) == "/data"
    return built


def cli_call(argv: list[str]) -> tuple[list[str], dict[str, Any]]:
    """What ``inwire ...`` would run: the command path and its parsed parameters.

    Parsed by the real CLI (Typer's click), so a command, option or argument that does not
    exist fails here; nothing is invoked.
    """
    assert argv[0] == "inwire", argv
    command: Any = typer.main.get_command(cli_app)
    context = command.make_context("inwire", list(argv[1:]))
    path: list[str] = []
    while hasattr(command, "resolve_command"):
        rest = [*getattr(context, "_protected_args", []), *context.args]
        name, command, rest = command.resolve_command(context, rest)
        path.append(name)
        context = command.make_context(name, list(rest), parent=context)
    return path, dict(context.params)


def check_serves(name: str, argv: list[str]) -> None:
    """``argv`` serves ``name`` on its port: ``inwire serve <service>`` or the gateway's own."""
    if name == GATEWAY and GATEWAY_SPEC is None:
        pytest.skip("the gateway is not in this tree yet (no registry.GATEWAY)")
    path, params = cli_call(argv)
    if name == GATEWAY:
        assert path == ["gateway", "serve"], argv
    else:
        assert path == ["serve"], argv
        assert params["service"] == name
    assert params["port"] in (None, expected_ports()[name]), argv


# --------------------------------------------------------------------------- Dockerfile


def dockerfile() -> DockerfileParser:
    """The parsed Dockerfile."""
    return DockerfileParser(path=str(DOCKERFILE), cache_content=True)


def instructions(kind: str, stage: int | None = None) -> list[str]:
    """Values of every ``kind`` instruction, of one stage (0-based) or of all."""
    values: list[str] = []
    current = -1
    for item in dockerfile().structure:
        if item["instruction"] == "FROM":
            current += 1
        if item["instruction"] == kind and (stage is None or stage == current):
            values.append(item["value"])
    return values


def env_of(values: list[str]) -> dict[str, str]:
    """``ENV a=1 b=2`` instructions as a mapping."""
    env: dict[str, str] = {}
    for value in values:
        for word in shlex.split(value):
            key, sep, val = word.partition("=")
            assert sep, f"use ENV key=value, not {value!r}"
            env[key] = val
    return env


def image_env() -> dict[str, str]:
    """The environment the runtime image gives every container."""
    return env_of(instructions("ENV", stage=1))


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (Docker's rules).

    Docker matches each pattern against the path and its parents; the last matching pattern
    wins and ``!`` re-includes. ``*`` stays inside one path segment, ``**`` crosses them.
    """
    patterns = []
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = str(PurePosixPath(line.lstrip("!").strip("/")))
        patterns.append((negate, pattern))

    def matches(pattern: str, candidate: str) -> bool:
        regex = ""
        for part in re.split(r"(\*\*/?|\*|\?)", pattern):
            if part.startswith("**"):
                regex += ".*"
            elif part == "*":
                regex += "[^/]*"
            elif part == "?":
                regex += "[^/]"
            else:
                regex += re.escape(part)
        return re.fullmatch(regex, candidate) is not None

    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negate, pattern in patterns:
        if any(matches(pattern, candidate) for candidate in candidates):
            excluded = not negate
    return excluded


def test_dockerfile_builds_from_one_pinned_python_image() -> None:
    parsed = dockerfile()
    assert parsed.is_multistage
    bases = parsed.parent_images
    assert len(bases) == 2
    assert len(set(bases)) == 1, "build and runtime share one base"
    # A patch release and a Debian release, never a floating tag.
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", bases[0])


def test_dockerfile_runs_as_a_fixed_non_root_user() -> None:
    users = instructions("USER", stage=1)
    assert users, "the runtime stage sets USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit(), "numeric, so runAsNonRoot can check it"
    assert gid.isdigit()
    assert int(uid) >= 1000
    created = " ".join(instructions("RUN", stage=1))
    assert f"--uid {uid}" in created
    assert f"--gid {gid}" in created
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    assert values["podSecurityContext"]["runAsGroup"] == int(gid)


def test_dockerfile_entrypoint_serves_the_service_named_by_the_command() -> None:
    entrypoint = json.loads(instructions("ENTRYPOINT")[-1])
    assert entrypoint == ["inwire", "serve"]
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'inwire = "inwire.cli.main:app"' in pyproject, "the image's `inwire` script"
    check_serves(SERVICES[0].name, [*entrypoint, *json.loads(instructions("CMD")[-1])])


def test_dockerfile_exposes_every_port_and_keeps_state_in_the_data_volume() -> None:
    exposed = {int(port) for value in instructions("EXPOSE") for port in value.split()}
    assert exposed == set(expected_ports().values())
    env = env_of(instructions("ENV", stage=1))
    assert env["INWIRE_HOME"] == "/data"
    assert json.loads(instructions("VOLUME")[-1]) == ["/data"]
    inwire_vars = {var for var in env if var.startswith("INWIRE_")}
    assert inwire_vars <= any_setting_variables()


def test_dockerfile_health_check_probes_liveness_with_the_copied_script() -> None:
    (check,) = instructions("HEALTHCHECK")
    command = json.loads(check.partition("CMD")[2])
    assert command[:2] == ["python", "/app/bin/healthcheck.py"]
    copied = [value for value in instructions("COPY", stage=1) if "healthcheck.py" in value]
    assert copied
    assert copied[0].split()[-1] == "/app/bin/"
    assert "/health/live" in (DEPLOY / "healthcheck.py").read_text()


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    sources: list[str] = []
    for value in instructions("COPY"):
        words = shlex.split(value)
        if any(word.startswith("--from=") for word in words):
            continue
        sources.extend(word for word in words[:-1] if not word.startswith("--"))
    assert sources
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such file"
        assert not dockerignored(source), f"COPY {source}: excluded by .dockerignore"
    for path in ("src/inwire/services/core/migrations/script.py.mako", "uv.lock"):
        assert not dockerignored(path)
    assert dockerignored(".venv/bin/python")
    assert dockerignored("tests/deploy")
    assert dockerignored("src/inwire/__pycache__/x.pyc")


def test_dockerfile_installs_with_the_makefiles_frozen_sync_without_dev_tools() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^\t\$\(UV\) sync --frozen( --inexact)?$", makefile, re.MULTILINE)
    syncs = [run for run in instructions("RUN", stage=0) if "uv sync" in run]
    assert len(syncs) == 2, "dependencies first, then the project"
    for run in syncs:
        assert "uv sync --frozen --no-dev" in run
    assert "--no-install-project" in syncs[0]
    assert "--no-editable" in syncs[1]
    # The lock is copied before the first sync, the code only after it (layer caching).
    copies = instructions("COPY", stage=0)
    assert copies[0].split()[:2] == ["pyproject.toml", "uv.lock"]
    assert re.search(r"\buv==\d+\.\d+\.\d+\b", " ".join(instructions("RUN", stage=0)))


@pytest.mark.slow
def test_dockerfile_build_stage_installs_a_working_inwire_without_docker(tmp_path: Path) -> None:
    """Run the build stage's COPY and ``uv`` steps in a folder standing in for /app."""
    app = tmp_path / "app"
    app.mkdir()
    env = {**os.environ, **env_of(instructions("ENV", stage=0))}
    env["UV_PROJECT_ENVIRONMENT"] = str(app / ".venv")
    env.pop("UV_LINK_MODE")  # the test's cache is no separate mount: link, do not copy
    env.pop("VIRTUAL_ENV", None)
    uv = shutil.which("uv") or pytest.skip("uv is not on PATH")
    for item in dockerfile().structure:
        if item["instruction"] == "FROM" and "AS runtime" in item["value"]:
            break
        words = shlex.split(item["value"]) if item["instruction"] in ("COPY", "RUN") else []
        if item["instruction"] == "COPY":
            *sources, target = words
            for source in sources:
                dest = app / target / Path(source).name if target.endswith("/") else app / target
                if (REPO / source).is_dir():
                    shutil.copytree(
                        REPO / source, dest, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    shutil.copy(REPO / source, dest)
        elif item["instruction"] == "RUN" and "uv sync" in item["value"]:
            args = [word for word in words if not word.startswith("--mount=")]
            assert args[:2] == ["uv", "sync"]
            subprocess.run([uv, *args[1:]], cwd=app, env=env, check=True, capture_output=True)
    python = app / ".venv" / "bin" / "python"
    imports = "; ".join(f"import {spec.app_factory.partition(':')[0]}" for spec in SERVICES)
    probe = (
        f"{imports}; import inwire, pathlib; "
        "print(pathlib.Path(inwire.__file__).parent); "
        "import importlib.util as u; print(u.find_spec('pytest') is None)"
    )
    done = subprocess.run(
        [python, "-c", probe], cwd=tmp_path, env=env, check=True, capture_output=True, text=True
    )
    installed, no_pytest = done.stdout.split()
    assert Path(installed).is_relative_to(app / ".venv"), "installed as a wheel, not editable"
    assert no_pytest == "True", "dev tools stay out of the image"
    assert (Path(installed) / "services/core/migrations/script.py.mako").exists()
    version = subprocess.run(
        [app / ".venv" / "bin" / "inwire", "--version"], env=env, capture_output=True, text=True
    )
    assert version.stdout.strip() == f"inwire {inwire.__version__}"


# --------------------------------------------------------------------------- compose

_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_]\w*))"
)


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's variable interpolation (``$$``, ``${V}``, ``:-``, ``-``, ``:?``, ``?``, ``:+``)."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        op, arg = match["op"] or "", match["arg"] or ""
        present = name in env
        usable = present and (env[name] != "" or not op.startswith(":"))
        if op.endswith("-"):
            return env[name] if usable else arg
        if op.endswith("?"):
            if not usable:
                raise KeyError(f"required variable {name} is missing a value: {arg}")
            return env[name]
        if op.endswith("+"):
            return arg if usable else ""
        return env.get(name, "")

    return _INTERPOLATION.sub(substitute, value)


@cache
def compose_source() -> dict[str, Any]:
    """compose.yaml as written (YAML merge keys resolved)."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def compose(env: Mapping[str, str] = COMPOSE_ENV) -> dict[str, Any]:
    """compose.yaml after interpolation with ``env``."""
    result: dict[str, Any] = interpolate(compose_source(), env)
    return result


def inwire_containers() -> dict[str, dict[str, Any]]:
    """The compose services that run the Inwire image."""
    image = compose_source()["x-inwire"]["image"]
    return {
        name: service
        for name, service in compose()["services"].items()
        if service.get("image") == interpolate(image, COMPOSE_ENV)
    }


def duration(value: object) -> bool:
    """Go's ``time.ParseDuration`` grammar, as compose-go registers the ``duration`` format."""
    unit = r"(\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)"
    return not isinstance(value, str) or re.fullmatch(rf"[-+]?(0|({unit})+)", value) is not None


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    formats = jsonschema.FormatChecker()
    formats.checks("duration")(duration)
    validator = jsonschema.Draft202012Validator(schema, format_checker=formats)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose())]
    assert errors == []
    # Durations the schema leaves as plain strings, which Compose parses as Go durations.
    for name, service in compose()["services"].items():
        for key, value in service.get("healthcheck", {}).items():
            if key in ("interval", "timeout", "start_period", "start_interval"):
                assert duration(value), f"{name}: healthcheck {key} {value!r}"


def test_compose_file_refuses_to_start_without_its_secrets() -> None:
    for secret in COMPOSE_ENV:
        with pytest.raises(KeyError, match=secret):
            compose({name: value for name, value in COMPOSE_ENV.items() if name != secret})


def test_env_example_lists_every_variable_compose_reads() -> None:
    used = {m["braced"] or m["named"] for m in _INTERPOLATION.finditer(COMPOSE.read_text())}
    used.discard(None)
    example = (DEPLOY / ".env.example").read_text()
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))
    assert used == listed


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI here; the Compose Specification schema test covers the file")
    plugin = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
    if plugin.returncode != 0:
        pytest.skip("the docker CLI here has no compose plugin (`docker compose` is unknown)")
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in COMPOSE_ENV.items()))
    done = subprocess.run(
        [docker, "compose", "-f", COMPOSE, "--env-file", env_file, "config", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_compose_runs_every_registered_service_and_the_gateway_on_its_port() -> None:
    containers = inwire_containers()
    for name, port in expected_ports().items():
        assert name in containers, f"compose has no {name} service"
        service = containers[name]
        entrypoint = service.get("entrypoint", json.loads(instructions("ENTRYPOINT")[-1]))
        check_serves(name, [*entrypoint, *service["command"]])
        assert service["expose"] == [str(port)]
        test = service["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "/app/bin/healthcheck.py"]
        assert test[test.index("--port") + 1] == str(port)
    assert containers[GATEWAY]["ports"] == [f"{GATEWAY_PORT}:{GATEWAY_PORT}"]
    published = [name for name, s in compose()["services"].items() if s.get("ports")]
    assert published == [GATEWAY], "only the gateway is published, so services can scale"


def test_compose_services_wait_for_backends_migrations_and_the_bucket() -> None:
    services = compose()["services"]
    for spec in SERVICES:
        depends = services[spec.name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["storage-init"]["condition"] == "service_completed_successfully"
        for backend in ("postgres", "redis", "nats"):
            assert depends[backend]["condition"] == "service_healthy"
    gateway = services[GATEWAY]["depends_on"]
    assert gateway == {name: {"condition": "service_healthy"} for name in ["redis", *names()]}
    for name, service in services.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            if rule["condition"] == "service_healthy":
                assert "test" in services[target].get("healthcheck", {}), target
    migrate = services["migrate"]
    assert cli_call([*migrate["entrypoint"], *migrate["command"]]) == (
        ["migrate"],
        {"service": "all"},
    )
    assert migrate["restart"] == "no"
    init = services["storage-init"]
    assert init["entrypoint"] == ["python", "/app/bin/create_bucket.py"]
    copied = " ".join(instructions("COPY", stage=1))
    assert "deploy/create_bucket.py" in copied


def test_compose_backing_services_use_pinned_images() -> None:
    inwire_image = compose()["x-inwire"]["image"]
    for name, service in compose()["services"].items():
        image = service["image"]
        if image == inwire_image:
            assert "build" in service, f"{name} runs the image built from deploy/Dockerfile"
            continue
        repository, _, tag = image.rpartition(":")
        assert repository, name
        assert re.search(r"\d", tag), f"{name}: {image} is not pinned"
    services = compose()["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert services["nats"]["image"].startswith("nats:")
    assert "-js" in services["nats"]["command"]
    assert services["minio"]["image"].startswith("minio/minio:")


@pytest.mark.parametrize("container", [*expected_ports(), "migrate", "storage-init"])
def test_compose_environment_is_real_settings_with_usable_backend_urls(
    container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {var: str(value) for var, value in inwire_containers()[container]["environment"].items()}
    # `migrate` and `storage-init` build every service's settings; the others their own.
    targets = [container] if container in expected_ports() else names()
    for name in targets:
        built = check_environment(name, env, monkeypatch)
        assert built.jwks_url == "http://core:18000/.well-known/jwks.json"
        if name == GATEWAY:
            assert built.upstreams == {s.name: f"http://{s.name}:{s.port}" for s in SERVICES}
            continue
        assert isinstance(built, ServiceSettings)
        store = open_object_store(built.storage_url)
        assert isinstance(store, S3ObjectStore)
        assert store.bucket == "inwire"
        assert make_url(built.database_url).password == COMPOSE_ENV["POSTGRES_PASSWORD"]
    core_key = env.get("INWIRE_CORE_SECRET_KEY")
    assert (core_key == COMPOSE_ENV["INWIRE_CORE_SECRET_KEY"]) is (container == "core"), (
        "only Core holds the key that seals secrets"
    )
    internal = env.get("INWIRE_INTERNAL_SECRET")
    assert (internal == COMPOSE_ENV["INWIRE_INTERNAL_SECRET"]) is (container != GATEWAY), (
        "every service holds the internal secret, the gateway does not"
    )


# --------------------------------------------------------------------------- Helm chart


def render(
    values: Mapping[str, Any] | None = None, **options: Any
) -> dict[str, list[dict[str, Any]]]:
    """The chart rendered by Helm: template path -> its manifests."""
    with helm.Chart.load(str(CHART)) as chart:
        rendered = chart.render(
            dict(CHART_VALUES if values is None else values),
            name=options.get("name", "rel"),
            namespace="inwire",
            is_install=True,
        )
    return {
        path: [doc for doc in yaml.safe_load_all(text) if doc]
        for path, text in rendered.items()
        if path.endswith((".yaml", ".yml"))
    }


def manifests(values: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every rendered manifest."""
    return [doc for docs in render(values).values() for doc in docs]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The manifest of ``kind`` called ``name``."""
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def container_env(docs: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """A container's environment as Kubernetes would build it from the rendered objects."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        config = find(docs, "ConfigMap", source["configMapRef"]["name"])
        env.update(config["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        data = find(docs, "Secret", ref["name"]).get("data", {})
        if ref["key"] in data:
            env[item["name"]] = base64.b64decode(data[ref["key"]]).decode()
        else:
            assert ref.get("optional"), f"{item['name']}: secret key {ref['key']} is missing"
    return env


def chart_values() -> dict[str, Any]:
    """values.yaml."""
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return loaded


def test_chart_metadata_matches_inwire() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "inwire"
    assert chart["appVersion"] == inwire.__version__


def test_chart_values_name_every_registered_service_with_its_port() -> None:
    values = chart_values()
    assert {name: s["port"] for name, s in values["services"].items()} == {
        spec.name: spec.port for spec in SERVICES
    }
    assert values["gateway"]["port"] == GATEWAY_PORT


def test_every_value_the_templates_read_exists_in_values_yaml() -> None:
    values = chart_values()
    component_keys: set[str] = set()
    for template in sorted((CHART / "templates").iterdir()):
        text = template.read_text()
        for path in re.findall(r"\.Values((?:\.[A-Za-z_]\w*)+)", text):
            node: Any = values
            for key in path.strip(".").split("."):
                assert isinstance(node, dict), f"{template.name}: .Values{path}"
                assert key in node, f"{template.name}: .Values{path}"
                node = node[key]
        # Keys read from one component's values; `($spec.x)` marks an optional one.
        component_keys |= set(re.findall(r"(?<!\()\$spec\.([A-Za-z_]\w*)", text))
    assert component_keys
    for name, spec in {**values["services"], GATEWAY: values["gateway"]}.items():
        missing = component_keys - set(spec)
        assert not missing, f"{name} lacks {sorted(missing)}"


def test_helm_lints_the_chart_without_warnings() -> None:
    report = helm.lint(str(CHART), CHART_VALUES, strict=True)
    assert report["errors"] == []
    # Severity 1 is "info" (an icon is recommended); 2 and 3 are warnings and errors.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_chart_refuses_to_render_without_a_database_or_core_key() -> None:
    with pytest.raises(helm.HelmRenderError, match=r"database\.url is required"):
        render({**CHART_VALUES, "database": {"url": ""}})
    with pytest.raises(helm.HelmRenderError, match=r"core\.secretKey is required"):
        render({**CHART_VALUES, "core": {"secretKey": ""}})
    with pytest.raises(helm.HelmRenderError, match=r"internalSecret is required"):
        render({**CHART_VALUES, "internalSecret": ""})


CHART_VARIANTS = {
    "all backends, ingress": CHART_VALUES,
    "defaults and required only": {
        "database": CHART_VALUES["database"],
        "core": CHART_VALUES["core"],
        "internalSecret": CHART_VALUES["internalSecret"],
    },
    "existing secret, no gateway, no migration": {
        "existingSecret": "inwire-managed",
        "gateway": {"enabled": False},
        "migrate": {"enabled": False},
        "services": {"core": {"replicas": 1, "env": {"INWIRE_CORE_MIN_PASSWORD_LENGTH": 16}}},
    },
}


@pytest.mark.parametrize("values", CHART_VARIANTS.values(), ids=CHART_VARIANTS.keys())
@pytest.mark.parametrize(
    "kube", ["1.25.0", kubernetes_validate.latest_version()], ids=["oldest", "newest"]
)
def test_rendered_manifests_are_valid_kubernetes_objects(values: dict[str, Any], kube: str) -> None:
    docs = manifests(values)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, kube, strict=True)
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), "no two objects share a kind and name"


def test_chart_runs_every_registered_service_and_the_gateway() -> None:
    docs = manifests()
    values = chart_values()
    for name, port in expected_ports().items():
        deployment = find(docs, "Deployment", f"rel-inwire-{name}")
        spec = values["gateway"] if name == GATEWAY else values["services"][name]
        assert deployment["spec"]["replicas"] == spec["replicas"]
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        entrypoint = container.get("command", json.loads(instructions("ENTRYPOINT")[-1]))
        check_serves(name, [*entrypoint, *container["args"]])
        assert container["ports"][0]["containerPort"] == port
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
        ready = "/health/live" if name == GATEWAY else "/health/ready"
        assert container["readinessProbe"]["httpGet"]["path"] == ready
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/data", "/tmp"} <= mounts, "writable home and temp on a read-only root"
        service = find(docs, "Service", f"rel-inwire-{name}")
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        assert service["spec"]["ports"][0]["targetPort"] == "http"
    ingress = find(docs, "Ingress", "rel-inwire")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "rel-inwire-gateway", "port": {"name": "http"}}


@pytest.mark.parametrize("container", [*expected_ports(), "migrate"])
def test_chart_environment_is_real_settings_with_usable_backend_urls(
    container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = manifests()
    kind = "Job" if container == "migrate" else "Deployment"
    pod = find(docs, kind, f"rel-inwire-{container}")["spec"]["template"]["spec"]
    (spec,) = pod["containers"]
    own = container_env(docs, {"env": spec.get("env", [])})
    shared = container_env(docs, {"envFrom": spec.get("envFrom", [])})
    if container == "migrate":
        # Not from the ConfigMap, which does not exist yet when the hook runs.
        shared["INWIRE_MIGRATE_ON_START"] = "false"
    targets = [container] if container in expected_ports() else names()
    for name in targets:
        built = check_environment(name, own, monkeypatch, shared)
        if name == GATEWAY:
            assert built.upstreams == {
                s.name: f"http://rel-inwire-{s.name}:{s.port}" for s in SERVICES
            }
            assert built.jwks_url == "http://rel-inwire-core:18000/.well-known/jwks.json"
            continue
        assert isinstance(built, ServiceSettings)
        assert built.database_url == CHART_VALUES["database"]["url"]
        assert own["AWS_SECRET_ACCESS_KEY"] == CHART_VALUES["storage"]["secretAccessKey"]
        if container != "migrate":
            assert built.jwks_url == "http://rel-inwire-core:18000/.well-known/jwks.json"
    core_key = own.get("INWIRE_CORE_SECRET_KEY")
    assert (core_key == CHART_VALUES["core"]["secretKey"]) is (container == "core"), (
        "only Core holds the key that seals secrets"
    )
    internal = own.get("INWIRE_INTERNAL_SECRET")
    assert (internal == CHART_VALUES["internalSecret"]) is (container != GATEWAY), (
        "every service holds the internal secret, the gateway does not"
    )


def test_migration_job_runs_before_the_release_with_a_secret_made_before_it() -> None:
    docs = manifests()
    job = find(docs, "Job", "rel-inwire-migrate")
    hooks = job["metadata"]["annotations"]
    assert set(hooks["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert cli_call(container["command"]) == (["migrate"], {"service": "all"})
    assert "envFrom" not in container, "the ConfigMap is not there yet during the hook"
    names = {
        item["valueFrom"]["secretKeyRef"]["name"]
        for item in container["env"]
        if "valueFrom" in item
    }
    (secret_name,) = names
    secret = find(docs, "Secret", secret_name)["metadata"]["annotations"]
    assert "pre-install" in secret["helm.sh/hook"]
    assert int(secret["helm.sh/hook-weight"]) < int(hooks["helm.sh/hook-weight"])
    # With an existing Secret the Job reads it directly and the chart makes none.
    docs = manifests({**CHART_VALUES, "existingSecret": "mine"})
    assert not [d for d in docs if d["kind"] == "Secret"]
    job = find(docs, "Job", "rel-inwire-migrate")
    refs = {
        item["valueFrom"]["secretKeyRef"]["name"]
        for item in job["spec"]["template"]["spec"]["containers"][0]["env"]
        if "valueFrom" in item
    }
    assert refs == {"mine"}


def test_config_changes_roll_the_pods() -> None:
    def checksums(values: Mapping[str, Any]) -> dict[str, str]:
        deployment = find(manifests(values), "Deployment", "rel-inwire-core")
        return dict(deployment["spec"]["template"]["metadata"]["annotations"])

    before = checksums(CHART_VALUES)
    after = checksums({**CHART_VALUES, "cache": {"url": "redis://other:6379/0"}})
    assert before["checksum/secret"] != after["checksum/secret"]
    assert before["checksum/config"] == after["checksum/config"]


def iter_templates() -> Iterator[Path]:
    """Every template file of the chart."""
    yield from sorted((CHART / "templates").glob("*"))


def test_every_api_version_and_kind_in_the_templates_is_one_kubernetes_knows() -> None:
    known = {
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "Service"),
        ("apps/v1", "Deployment"),
        ("batch/v1", "Job"),
        ("networking.k8s.io/v1", "Ingress"),
    }
    written: set[tuple[str, str]] = set()
    for template in iter_templates():
        text = template.read_text()
        written |= set(re.findall(r"^apiVersion: (\S+)\nkind: (\S+)$", text, re.MULTILINE))
    assert written == known
    rendered = {
        (doc["apiVersion"], doc["kind"])
        for values in CHART_VARIANTS.values()
        for doc in manifests(values)
    }
    assert rendered == known
