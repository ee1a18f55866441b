"""Script jobs: a user's ``.py`` file or package run in a subprocess, logging to its run.

The upload goes to the object store (``training/<org>/scripts/<id>/<file>``). The job's
worker downloads it to a private folder (a package unpacked there, members outside it
refused), then runs ``python <entry point> --name value …`` (or ``python -m module``) with
a clean environment: nothing of the service's own (database URL, secrets) reaches it.
What it gets:

- ``INWIRE_RUN_ID``, ``INWIRE_EXPERIMENT_ID``, ``INWIRE_JOB_ID``, ``INWIRE_PARAMS`` (JSON);
- ``INWIRE_TRAINING_URL`` and ``INWIRE_TOKEN``: Model Training's URL and a *run token*
  acting as the submitter in Model Training only, until the job's timeout
  (``Authorization: Bearer $INWIRE_TOKEN`` on ``/api/v1/runs/$INWIRE_RUN_ID/...``);
- ``INWIRE_DATASET_ID`` / ``INWIRE_DATASET_VERSION_ID`` when the job names a dataset, and
  ``INWIRE_DATASET_PATH``: that version's Parquet, downloaded by the worker as the
  submitter (the run token does not reach Synthex);
- ``INWIRE_MODEL_DIR``: an MLflow model saved there (``mlflow.sklearn.save_model`` …) is
  logged under the run's ``model/`` when the script succeeds.

Every line the script prints (stdout and stderr) becomes a job log line as it comes. A
non-zero exit fails the job with the script's last error line; a timeout or a cancel
stops the process.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import signal
import sys
import tarfile
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from fastapi import Request, UploadFile
from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.auth import Principal
from inwire.kit.auth.internal import internal_secret
from inwire.kit.errors import Invalid, PayloadTooLarge, Unauthorized
from inwire.kit.ids import new_id
from inwire.kit.jobs.context import JobCancelled, JobFailed
from inwire.kit.storage import ObjectStore
from inwire.services.training.settings import TrainingSettings

if TYPE_CHECKING:
    from inwire.services.training.trainjobs.jobs import JobRun

#: Upload kinds by file name ending.
FORMATS = {".py": "py", ".zip": "zip", ".tar.gz": "tar", ".tgz": "tar"}
#: The prefix of a run token.
RUN_TOKEN_PREFIX = "iwr."
#: Seconds a run token outlives the script's timeout (the SDK flushes at exit).
TOKEN_MARGIN_SECONDS = 300.0
#: Environment variables a script inherits from the worker (nothing service-specific).
_PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SYSTEMROOT", "VIRTUAL_ENV")


# -- run tokens -------------------------------------------------------------------------------


def _token_key(settings: TrainingSettings) -> bytes:
    # Derived, not the internal secret itself: a run token never reveals or equals it.
    return hashlib.sha256(b"inwire-run-token\0" + internal_secret(settings).encode()).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint_run_token(
    settings: TrainingSettings, org: str, subject: str, role: str, run_id: str, expires: float
) -> str:
    """A token acting as ``subject`` (``role``) in ``org`` at Model Training until ``expires``."""
    body = _b64(
        json.dumps(
            {"org": org, "sub": subject, "role": role, "run": run_id, "exp": int(expires)},
            separators=(",", ":"),
        ).encode()
    )
    mac = hmac.new(_token_key(settings), body.encode(), hashlib.sha256).digest()
    return f"{RUN_TOKEN_PREFIX}{body}.{_b64(mac)}"


def run_token_principal(settings: TrainingSettings, token: str) -> Principal | None:
    """The principal of a valid run token; None for other tokens; 401 for a bad one."""
    if not token.startswith(RUN_TOKEN_PREFIX):
        return None
    body, _, mac = token[len(RUN_TOKEN_PREFIX) :].partition(".")
    expected = _b64(hmac.new(_token_key(settings), body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(mac.encode(), expected.encode()):
        raise Unauthorized("Invalid run token")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    if claims["exp"] < time.time():
        raise Unauthorized("Expired run token")
    return Principal(
        subject=claims["sub"], org=claims["org"], roles=(claims["role"],), name="run token"
    )


async def authenticate(token: str, request: Request, session: AsyncSession) -> Principal:
    """Model Training's principal resolution: a run token, else a platform JWT."""
    settings: TrainingSettings = request.app.state.settings
    principal = run_token_principal(settings, token)
    if principal is not None:
        return principal
    verified: Principal = await request.app.state.verifier.verify(token)
    return verified


# -- upload -----------------------------------------------------------------------------------


def _format(filename: str) -> str | None:
    lower = filename.lower()
    for ending, kind in FORMATS.items():
        if lower.endswith(ending):
            return kind
    return None


def _members(path: Path, kind: str) -> list[str]:
    if kind == "zip":
        with zipfile.ZipFile(path) as z:
            return z.namelist()
    with tarfile.open(path) as t:
        return t.getnames()


def _invalid(field: str, message: str) -> Invalid:
    return Invalid(message, details=[{"field": field, "message": message}])


async def store_upload(
    store: ObjectStore,
    settings: TrainingSettings,
    org: str,
    file: UploadFile,
    entry_point: str | None,
) -> dict[str, Any]:
    """Check the uploaded script or package and store it; what the job input records."""
    filename = PurePosixPath((file.filename or "").replace("\\", "/")).name
    kind = _format(filename)
    if kind is None:
        raise _invalid("file", "Upload a .py script or a .zip / .tar.gz package")
    data = bytearray()
    while chunk := await file.read(1024 * 1024):
        data.extend(chunk)
        if len(data) > settings.max_script_bytes:
            raise PayloadTooLarge(
                f"The script is larger than {settings.max_script_bytes} bytes",
                details=[{"field": "file", "message": "too large"}],
            )
    if kind != "py":
        if not entry_point:
            raise _invalid("spec.entry_point", "A package needs an entry point")
        scratch = Path(settings.home) / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        probe = scratch / f"{new_id('upl')}-{filename}"
        try:
            probe.write_bytes(bytes(data))
            members = await asyncio.to_thread(_members, probe, kind)
        except (zipfile.BadZipFile, tarfile.TarError, OSError) as exc:
            raise _invalid("file", f"Not a readable {kind} archive: {exc}") from exc
        finally:
            probe.unlink(missing_ok=True)
        if not entry_point.startswith("module:") and entry_point not in members:
            raise _invalid("spec.entry_point", f"The package has no file {entry_point!r}")
    key = f"training/{org}/scripts/{new_id('scr')}/{filename}"
    await store.put(key, bytes(data), content_type="application/octet-stream")
    return {"key": key, "filename": filename, "format": kind, "bytes": len(data)}


# -- running ----------------------------------------------------------------------------------


def _unpack(archive: Path, kind: str, target: Path) -> None:
    """Unpack into ``target``, refusing members that would land outside it."""
    root = target.resolve()
    if kind == "zip":
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                if not (root / name).resolve().is_relative_to(root):
                    raise JobFailed(f"package member {name!r} points outside the package")
            z.extractall(root)
        return
    with tarfile.open(archive) as t:
        try:
            t.extractall(root, filter="data")
        except tarfile.FilterError as exc:
            raise JobFailed(f"package refused: {exc}") from exc


def _arguments(parameters: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for name, value in parameters.items():
        out += [f"--{name}", json.dumps(value) if isinstance(value, bool) else str(value)]
    return out


def tracking_url(settings: TrainingSettings) -> str:
    """Where a script reaches Model Training."""
    if settings.tracking_url:
        return settings.tracking_url.rstrip("/")
    return f"http://{settings.host}:{settings.port or settings.default_port}"


def _environment(job: JobRun, folder: Path, model_dir: Path, timeout: float) -> dict[str, str]:
    settings = job.settings
    submitter = job.submitter
    token = mint_run_token(
        settings,
        job.who.org,
        submitter.subject,
        submitter.role,
        job.run_id,
        time.time() + timeout + TOKEN_MARGIN_SECONDS,
    )
    url = tracking_url(settings)
    env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    script = job.input["script"]
    env.update(
        {
            "PYTHONPATH": str(folder),
            "PYTHONUNBUFFERED": "1",
            "INWIRE_TRAINING_URL": url,
            "INWIRE_TOKEN": token,
            "INWIRE_RUN_ID": job.run_id,
            "INWIRE_EXPERIMENT_ID": job.input["experiment_id"],
            "INWIRE_JOB_ID": job.ctx.job_id,
            "INWIRE_PARAMS": json.dumps(script["parameters"]),
            "INWIRE_MODEL_DIR": str(model_dir),
        }
    )
    dataset = job.input.get("dataset")
    if dataset:
        env["INWIRE_DATASET_ID"] = dataset["dataset_id"]
        env["INWIRE_DATASET_VERSION_ID"] = dataset["dataset_version_id"]
        env["INWIRE_DATASET_PATH"] = str(folder.parent / "dataset.parquet")
    return env


async def _download_dataset(job: JobRun, target: Path) -> None:
    from inwire.services.training.trainjobs.data import DelegatedSynthexClient

    dataset = job.input["dataset"]
    async with DelegatedSynthexClient(job.settings, job.who.org, job.submitter) as synthex:
        await synthex.download_version(dataset["dataset_id"], target, dataset["dataset_version_id"])
    job.ctx.log(f"downloaded dataset {dataset['dataset_id']} version {dataset['dataset_version']}")


async def _pump(stream: asyncio.StreamReader, job: JobRun, level: str, last: list[str]) -> None:
    while raw := await stream.readline():
        line = raw.decode(errors="replace").rstrip()
        if line:
            job.ctx.log(line, level=level)
            if level == "error":
                last[:] = [line]


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the script's process group, SIGKILL it if it lingers."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            await asyncio.wait_for(process.wait(), wait)
            return
        except TimeoutError:
            continue


async def run_script(job: JobRun) -> dict[str, Any]:
    """Run the job's script to its end; see the module docstring."""
    from inwire.services.training.trainjobs.jobs import workdir

    ctx = job.ctx
    script = job.input["script"]
    timeout = float(script["timeout_seconds"])
    with workdir() as scratch:
        folder = scratch / "code"
        folder.mkdir()
        model_dir = scratch / "model"
        archive = scratch / script["filename"]
        async with await job.store.open(script["key"]) as reader:
            with archive.open("wb") as f:
                async for chunk in reader:
                    await asyncio.to_thread(f.write, chunk)
        if script["format"] == "py":
            archive.replace(folder / script["filename"])
            target = ["-u", str(folder / script["filename"])]
        else:
            await asyncio.to_thread(_unpack, archive, script["format"], folder)
            entry = script["entry_point"]
            if entry.startswith("module:"):
                target = ["-u", "-m", entry.removeprefix("module:")]
            else:
                target = ["-u", str(folder / entry)]
        if job.input.get("dataset"):
            await _download_dataset(job, scratch / "dataset.parquet")
        await job.log_params(dict(script["parameters"]))
        command = [sys.executable, *target, *_arguments(script["parameters"])]
        ctx.log(f"running {script['entry_point'] or script['filename']}")
        ctx.progress(0.05, "running the script")
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=folder,
            env=_environment(job, folder, model_dir, timeout),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        assert process.stdout is not None
        assert process.stderr is not None
        last_error: list[str] = []
        pumps = asyncio.gather(
            _pump(process.stdout, job, "info", []),
            _pump(process.stderr, job, "error", last_error),
        )
        deadline = time.monotonic() + timeout
        try:
            while process.returncode is None:
                if ctx.cancelled():
                    await _stop(process)
                    raise JobCancelled()
                if time.monotonic() > deadline:
                    await _stop(process)
                    raise JobFailed(f"the script ran longer than its timeout ({timeout:g} s)")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), 0.2)
        finally:
            if process.returncode is None:
                await _stop(process)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pumps, 5)
        code = process.returncode
        if code != 0:
            reason = last_error[0] if last_error else "no error output"
            raise JobFailed(f"the script exited with status {code}: {reason}")
        ctx.log("the script finished")
        result: dict[str, Any] = {"run_id": job.run_id, "exit_code": 0}
        if (model_dir / "MLmodel").is_file():
            files = await job.upload_model(model_dir)
            ctx.log(f"logged the model from INWIRE_MODEL_DIR under model/ ({len(files)} files)")
            result["model_artifact_path"] = "model"
            result["model_uri"] = f"runs:/{job.run_id}/model"
        return result
