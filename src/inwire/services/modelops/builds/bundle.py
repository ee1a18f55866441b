"""A serving bundle and its container build context, made on disk.

The bundle is a folder::

    model/             the version's files (an MLflow model, or plain model files)
    requirements.txt   the pinned environment
    signature.json     the version's signature (when it has one)
    inwire-bundle.json the manifest: model, version, flavor, entry point, requirements

served by ``python -m inwire.services.modelops.serving.server --model-dir model``. The
build context is ``Dockerfile`` + ``bundle/``. Both travel as reproducible ``tar.gz``
(sorted, owner root, time zero).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from inwire.kit.errors import Invalid

#: The model server's module (``python -m``) and the port it listens on in a container.
SERVER_MODULE = "inwire.services.modelops.serving.server"
CONTAINER_PORT = 8080
APP_DIR = "/opt/inwire"

#: Packages a flavor needs at serving time (distribution names, alternatives in order).
FLAVOR_PACKAGES: Mapping[str, Sequence[Sequence[str]]] = {
    "sklearn": (("scikit-learn",), ("cloudpickle",)),
    "xgboost": (("xgboost", "xgboost-cpu"),),
    "lightgbm": (("lightgbm",),),
    "onnx": (("onnx",), ("onnxruntime",)),
    "pytorch": (("torch",),),
    "python": (("cloudpickle",),),
}
#: Needed by every model server: the data layer.
COMMON_PACKAGES: Sequence[Sequence[str]] = (("numpy",), ("pandas",))
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(.*)$")


@dataclass
class Requirements:
    """The pinned requirement lines, where they came from, and notes for the build log."""

    lines: list[str]
    source: str
    notes: list[str] = field(default_factory=list)


def installed(names: Sequence[str]) -> tuple[str, str] | None:
    """The first of ``names`` installed here, with its version."""
    for name in names:
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pin(lines: Iterable[str]) -> tuple[list[str], list[str]]:
    """Requirement lines with every unpinned package pinned to the version installed here
    (the one the model was checked against); notes on those left unpinned."""
    out: list[str] = []
    notes: list[str] = []
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-"):
            notes.append(f"option line kept as is: {line}")
            out.append(line)
            continue
        match = _NAME.match(line)
        if match is None:
            raise Invalid(f"Unreadable requirement {line!r}")
        name, extras, rest = match.group(1), match.group(2) or "", match.group(3).strip()
        if rest:
            out.append(line)
            continue
        found = installed([name])
        if found is None:
            notes.append(f"{name} is not installed here: left unpinned")
            out.append(line)
        else:
            out.append(f"{name}{extras}=={found[1]}")
    return out, notes


def requirements_for(
    flavor: str | None,
    version_requirements: str | None,
    *,
    source: str = "version",
    server: str = "",
) -> Requirements:
    """The bundle's requirements: the version's own ``requirements.txt`` (pinned where it
    is not), else the flavor's packages at the versions installed here; plus what the
    model server needs (numpy, pandas and Inwire itself: ``server`` when given, a
    requirement line such as ``inwire @ https://…/inwire-0.1.0-py3-none-any.whl``, else
    ``inwire==<the version installed here>``)."""
    notes: list[str] = []
    if version_requirements is not None:
        lines, notes = pin(version_requirements.splitlines())
    else:
        source = "flavor"
        lines = []
        for alternatives in FLAVOR_PACKAGES.get(flavor or "", ()):
            found = installed(alternatives)
            if found is None:
                notes.append(f"{alternatives[0]} is not installed here: left unpinned")
                lines.append(alternatives[0])
            else:
                lines.append(f"{found[0]}=={found[1]}")
        if not lines:
            notes.append(f"no packages known for flavor {flavor!r}: only the server's")
    matches = (_NAME.match(line) for line in lines if not line.startswith("-"))
    have = {_normal(m.group(1)) for m in matches if m}
    for alternatives in COMMON_PACKAGES:
        if any(_normal(a) in have for a in alternatives):
            continue
        found = installed(alternatives)
        if found is not None:
            lines.append(f"{found[0]}=={found[1]}")
    if "inwire" not in have:
        found = installed(["inwire"])
        if server:
            lines.append(server)
        elif found is not None:
            lines.append(f"inwire=={found[1]}")
    return Requirements(lines=lines, source=source, notes=notes)


def server_command(model_dir: str, signature: bool) -> list[str]:
    """The container's entry point: our model server on ``CONTAINER_PORT``."""
    command = ["python", "-m", SERVER_MODULE, "--model-dir", f"{APP_DIR}/{model_dir}"]
    command += ["--host", "0.0.0.0", "--port", str(CONTAINER_PORT)]
    if signature:
        command += ["--signature-file", f"{APP_DIR}/signature.json"]
    return command


def dockerfile(base_image: str, command: Sequence[str]) -> str:
    """The Dockerfile of the build context (the bundle is under ``bundle/``)."""
    probe = (
        "import urllib.request; "
        f"urllib.request.urlopen('http://127.0.0.1:{CONTAINER_PORT}/ready', timeout=2)"
    )
    return "\n".join(
        [
            "# Generated by Inwire ModelOps: a model version served by the Inwire model server.",
            f"FROM {base_image}",
            "ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1",
            f"WORKDIR {APP_DIR}",
            f"COPY bundle/requirements.txt {APP_DIR}/requirements.txt",
            f"RUN pip install --no-cache-dir -r {APP_DIR}/requirements.txt",
            f"COPY bundle/ {APP_DIR}/",
            f"EXPOSE {CONTAINER_PORT}",
            f'HEALTHCHECK --interval=10s --timeout=3s CMD ["python", "-c", "{probe}"]',
            f"ENTRYPOINT {json.dumps(list(command))}",
            "",
        ]
    )


#: Dockerfile instructions (the reference's full list).
INSTRUCTIONS = frozenset(
    [
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    ]
)


def instructions(text: str) -> list[tuple[int, str, str]]:
    """(line number, INSTRUCTION, arguments) of a Dockerfile, continuations joined."""
    out: list[tuple[int, str, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        joined = " ".join(p.strip() for p in pending if p.strip())
        pending = []
        word, _, rest = joined.partition(" ")
        out.append((start, word.upper(), rest.strip()))
    if pending:
        out.append((start, "", " ".join(pending)))
    return out


def validate_dockerfile(text: str, context_files: Iterable[str]) -> list[str]:
    """Problems of a Dockerfile for a context holding ``context_files`` (paths): known
    instructions, ``FROM`` first (after ``ARG``s), ``COPY``/``ADD`` sources present, exec
    forms valid JSON arrays of strings, ports numbers. Empty when it is sound."""
    problems: list[str] = []
    files = set(context_files)
    folders = {str(Path(f).parent) + "/" for f in files} | {
        "/".join(f.split("/")[:i]) + "/" for f in files for i in range(1, f.count("/") + 1)
    }
    seen_from = False
    parsed = instructions(text)
    if not parsed:
        return ["the Dockerfile is empty"]
    for number, word, rest in parsed:
        where = f"line {number}"
        if word not in INSTRUCTIONS:
            problems.append(f"{where}: unknown instruction {word or rest!r}")
            continue
        if not seen_from and word not in ("FROM", "ARG"):
            problems.append(f"{where}: {word} before FROM")
        if word == "FROM":
            seen_from = True
            if not rest:
                problems.append(f"{where}: FROM names no image")
        elif word in ("COPY", "ADD"):
            args = [a for a in rest.split() if not a.startswith("--")]
            if len(args) < 2:
                problems.append(f"{where}: {word} needs a source and a destination")
            elif "--from=" not in rest:
                for src in args[:-1]:
                    clean = src.removeprefix("./")
                    if clean not in files and clean.rstrip("/") + "/" not in folders:
                        problems.append(f"{where}: {word} source {src!r} is not in the context")
        elif word in ("ENTRYPOINT", "CMD") and rest.startswith("["):
            try:
                value: Any = json.loads(rest)
            except ValueError:
                value = None
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problems.append(f"{where}: {word} exec form must be a JSON array of strings")
        elif word == "EXPOSE":
            for port in rest.split():
                number_part = port.split("/")[0]
                if not number_part.isdigit() or not 0 < int(number_part) < 65536:
                    problems.append(f"{where}: EXPOSE {port!r} is not a port")
    if not seen_from:
        problems.append("no FROM instruction")
    return problems


def files_under(folder: Path) -> list[str]:
    """Every file below ``folder``, as sorted relative ``/`` paths."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def write_tar_gz(sources: Sequence[tuple[Path, str]], target: Path) -> str:
    """Pack each ``(folder, prefix)``'s files into a reproducible ``target`` (tar.gz);
    returns its SHA-256."""
    with (
        target.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for folder, prefix in sources:
            for relative in files_under(folder):
                path = folder / relative
                info = tarfile.TarInfo(prefix + relative)
                info.size = path.stat().st_size
                info.mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
                info.mtime = 0
                info.uname = info.gname = "root"
                with path.open("rb") as f:
                    tar.addfile(info, f)
    digest = hashlib.sha256()
    with target.open("rb") as f:
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest(
    *,
    model_name: str,
    model_id: str,
    version: int,
    version_id: str,
    flavor: str | None,
    command: Sequence[str],
    requirements: Requirements,
    files: Sequence[str],
) -> dict[str, Any]:
    """The bundle's ``inwire-bundle.json``."""
    return {
        "format": "inwire-bundle/1",
        "model": {"name": model_name, "id": model_id},
        "version": {"number": version, "id": version_id},
        "flavor": flavor,
        "entry_point": list(command),
        "port": CONTAINER_PORT,
        "requirements": requirements.lines,
        "requirements_source": requirements.source,
        "files": list(files),
    }


def read_tar_names(data: bytes) -> list[str]:
    """The member names of a tar.gz (tests and checks)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return tar.getnames()
