"""The kinds of integration: each has a config model, a credentials model and a connection check.

Config is what an integration may show (bucket, owner, URL); credentials are secret and
sealed at rest. A check really talks to the external system with the credentials and
either returns a short success message or raises ``ConnectionFailed`` with a reason that
names no secret. Client libraries that are optional (GCS, Azure) are imported inside the
check, so a missing one is reported instead of breaking Core.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from inwire.kit.errors import Invalid

KindName = Literal[
    "s3", "gcs", "azure_blob", "github", "gitlab", "container_registry", "huggingface", "postgres"
]

#: Seconds to wait for an external system during a connection test.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0


class ConnectionFailed(Exception):
    """The external system could not be reached or refused the credentials."""


def _http_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL with a host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("must not carry a query, a fragment or user info")
    return value.strip().rstrip("/")


#: An http(s) base URL without a trailing slash.
HttpURL = Annotated[str, Field(max_length=500), AfterValidator(_http_url)]
_Text = Annotated[str, Field(min_length=1, max_length=200)]
_Secret = Annotated[str, Field(min_length=1, max_length=4096)]


class KindModel(BaseModel):
    """Base of config and credentials models: unknown fields are mistakes, not extras."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# -- S3 ------------------------------------------------------------------------------------


class S3Config(KindModel):
    """An S3 (or S3-compatible) bucket."""

    bucket: str = Field(
        min_length=3,
        max_length=63,
        pattern=r"^[a-z0-9][a-z0-9.\-]*[a-z0-9]$",
        description="Bucket name",
    )
    region: str = Field(default="us-east-1", min_length=1, max_length=40, pattern=r"^[a-z0-9\-]+$")
    endpoint_url: HttpURL | None = Field(
        default=None, description="For S3-compatible stores (MinIO, Ceph, R2); empty for AWS"
    )
    prefix: str | None = Field(default=None, max_length=512, description="Key prefix to use")


class S3Credentials(KindModel):
    """An access key pair."""

    access_key_id: _Text
    secret_access_key: _Secret


def _s3_check_sync(config: S3Config, creds: S3Credentials) -> str:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    # A session of its own: boto3's default session is not thread-safe.
    client = boto3.session.Session().client(
        "s3",
        region_name=config.region,
        endpoint_url=config.endpoint_url,
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        config=Config(
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )
    where = f"bucket {config.bucket!r}"
    try:
        client.list_objects_v2(Bucket=config.bucket, Prefix=config.prefix or "", MaxKeys=1)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "")) or "unknown"
        reasons = {
            "NoSuchBucket": f"{where} does not exist",
            "InvalidAccessKeyId": "the access key id was rejected",
            "SignatureDoesNotMatch": "the secret access key was rejected",
            "AccessDenied": f"access to {where} was denied",
            "AllAccessDisabled": f"access to {where} was denied",
        }
        reason = reasons.get(code, f"S3 refused to list {where}")
        raise ConnectionFailed(f"{reason} ({code})") from exc
    except BotoCoreError as exc:
        raise ConnectionFailed(f"could not reach S3: {exc}") from exc
    finally:
        client.close()
    return f"listed {where}" + (f" under prefix {config.prefix!r}" if config.prefix else "")


async def _s3_check(config: S3Config, creds: S3Credentials) -> str:
    return await asyncio.to_thread(_s3_check_sync, config, creds)


# -- Google Cloud Storage ----------------------------------------------------------------------


class GCSConfig(KindModel):
    """A Google Cloud Storage bucket."""

    bucket: str = Field(min_length=3, max_length=222, pattern=r"^[a-z0-9][a-z0-9._\-]*[a-z0-9]$")
    project: str = Field(min_length=6, max_length=30, pattern=r"^[a-z][a-z0-9\-]*[a-z0-9]$")


class GCSCredentials(KindModel):
    """A service account key file, as JSON text."""

    service_account_json: Annotated[str, Field(min_length=2, max_length=20_000)]

    @model_validator(mode="after")
    def _is_service_account_key(self) -> GCSCredentials:
        try:
            data = json.loads(self.service_account_json)
        except ValueError as exc:
            raise ValueError("service_account_json is not valid JSON") from exc
        if not isinstance(data, dict) or data.get("type") != "service_account":
            raise ValueError('service_account_json must be a key with "type": "service_account"')
        missing = [k for k in ("client_email", "private_key") if not data.get(k)]
        if missing:
            raise ValueError(f"service_account_json lacks {', '.join(missing)}")
        return self


def _missing_library(kind: str) -> ConnectionFailed:
    return ConnectionFailed(
        f"client library for {kind} is not installed (pip install inwire[{kind}])"
    )


def _gcs_check_sync(config: GCSConfig, creds: GCSCredentials) -> str:
    try:
        from google.cloud import storage
        from google.oauth2 import service_account
    except ImportError as exc:
        raise _missing_library("gcs") from exc
    info = json.loads(creds.service_account_json)
    credentials = service_account.Credentials.from_service_account_info(info)
    client = storage.Client(project=config.project, credentials=credentials)
    try:
        next(iter(client.list_blobs(config.bucket, max_results=1, timeout=READ_TIMEOUT)), None)
    except Exception as exc:  # google.api_core raises many types; report the kind only
        raise ConnectionFailed(f"GCS refused to list bucket {config.bucket!r}: {exc}") from exc
    return f"listed bucket {config.bucket!r}"


async def _gcs_check(config: GCSConfig, creds: GCSCredentials) -> str:
    return await asyncio.to_thread(_gcs_check_sync, config, creds)


# -- Azure Blob Storage ------------------------------------------------------------------------


class AzureBlobConfig(KindModel):
    """An Azure Blob Storage container."""

    account: str = Field(pattern=r"^[a-z0-9]{3,24}$", description="Storage account name")
    container: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class AzureBlobCredentials(KindModel):
    """A connection string, or the account key: exactly one of them."""

    connection_string: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    account_key: _Secret | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> AzureBlobCredentials:
        if (self.connection_string is None) == (self.account_key is None):
            raise ValueError("give exactly one of connection_string and account_key")
        return self


def _azure_check_sync(config: AzureBlobConfig, creds: AzureBlobCredentials) -> str:
    try:
        from azure.storage.blob import BlobServiceClient
    except ImportError as exc:
        raise _missing_library("azure") from exc
    if creds.connection_string:
        service = BlobServiceClient.from_connection_string(creds.connection_string)
    else:
        service = BlobServiceClient(
            f"https://{config.account}.blob.core.windows.net", credential=creds.account_key
        )
    try:
        service.get_container_client(config.container).get_container_properties(
            timeout=int(READ_TIMEOUT)
        )
    except Exception as exc:  # azure.core raises many types; report the kind only
        raise ConnectionFailed(
            f"Azure refused container {config.container!r}: {type(exc).__name__}"
        ) from exc
    return f"container {config.container!r} is reachable"


async def _azure_check(config: AzureBlobConfig, creds: AzureBlobCredentials) -> str:
    return await asyncio.to_thread(_azure_check_sync, config, creds)


# -- HTTP APIs: GitHub, GitLab, Hugging Face, container registries -----------------------------


@functools.cache
def _tls() -> ssl.SSLContext:
    # Built once: loading the CA bundle costs more than a whole check against a fast API.
    return httpx.create_ssl_context()


def _http() -> httpx.AsyncClient:
    # No redirects: a check must not be bounced to another host with our credentials.
    return httpx.AsyncClient(
        verify=_tls(),
        timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
        follow_redirects=False,
        headers={"User-Agent": "inwire-core"},
    )


async def _get(http: httpx.AsyncClient, service: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        return await http.get(url, **kwargs)
    except httpx.TimeoutException as exc:
        raise ConnectionFailed(
            f"{service} did not answer in time ({urlsplit(url).netloc})"
        ) from exc
    except httpx.HTTPError as exc:
        raise ConnectionFailed(
            f"could not reach {service} at {urlsplit(url).netloc}: {type(exc).__name__}"
        ) from exc


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _refused(service: str, response: httpx.Response) -> ConnectionFailed:
    status = response.status_code
    if status == 401:
        return ConnectionFailed(f"{service} rejected the credentials (401 Unauthorized)")
    if status == 403:
        return ConnectionFailed(
            f"{service} refused access (403 Forbidden): missing permission or rate limited"
        )
    return ConnectionFailed(f"{service} answered {status} {response.reason_phrase}".rstrip())


class GitHubConfig(KindModel):
    """A GitHub organization or user, on github.com or GitHub Enterprise Server."""

    owner: str = Field(
        pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9\-]{0,38})$", description="Organization or user"
    )
    api_url: HttpURL = Field(
        default="https://api.github.com", description="https://<host>/api/v3 for GHES"
    )


class TokenCredentials(KindModel):
    """An access token."""

    token: _Secret


async def _github_check(config: GitHubConfig, creds: TokenCredentials) -> str:
    headers = {
        "Authorization": f"Bearer {creds.token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    async with _http() as http:
        me = await _get(http, "GitHub", f"{config.api_url}/user", headers=headers)
        if me.status_code != 200:
            raise _refused("GitHub", me)
        login = _json(me).get("login", "?")
        owner = await _get(
            http, "GitHub", f"{config.api_url}/users/{quote(config.owner)}", headers=headers
        )
        if owner.status_code == 404:
            raise ConnectionFailed(
                f"token is valid (user {login}) but owner {config.owner!r} was not found"
            )
        if owner.status_code != 200:
            raise _refused("GitHub", owner)
    return f"authenticated as {login}; owner {config.owner!r} found"


class GitLabConfig(KindModel):
    """A GitLab group, or a project in it, on gitlab.com or a self-managed instance."""

    group: str = Field(
        min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.\-]+(?:/[A-Za-z0-9_.\-]+)*$"
    )
    project: str | None = Field(
        default=None, min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.\-]+$"
    )
    url: HttpURL = Field(default="https://gitlab.com", description="Base URL of the instance")


async def _gitlab_check(config: GitLabConfig, creds: TokenCredentials) -> str:
    headers = {"PRIVATE-TOKEN": creds.token}
    api = f"{config.url}/api/v4"
    async with _http() as http:
        me = await _get(http, "GitLab", f"{api}/user", headers=headers)
        if me.status_code != 200:
            raise _refused("GitLab", me)
        username = _json(me).get("username", "?")
        if config.project:
            path, noun = f"{config.group}/{config.project}", "project"
            url = f"{api}/projects/{quote(path, safe='')}"
        else:
            path, noun = config.group, "group"
            url = f"{api}/groups/{quote(path, safe='')}"
        target = await _get(http, "GitLab", url, headers=headers)
        if target.status_code == 404:
            raise ConnectionFailed(
                f"token is valid (user {username}) but {noun} {path!r} was not found "
                "or is not visible to it"
            )
        if target.status_code != 200:
            raise _refused("GitLab", target)
    return f"authenticated as {username}; {noun} {path!r} found"


class ContainerRegistryConfig(KindModel):
    """An OCI / Docker registry (Docker Hub, GHCR, Harbor, ECR, a local registry)."""

    registry: str = Field(
        max_length=255,
        pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?(?::[0-9]{1,5})?$",
        description="Registry host, optionally with a port (ghcr.io, registry.local:5000)",
    )
    namespace: str = Field(
        min_length=1, max_length=255, pattern=r"^[a-z0-9]+(?:[._\-/][a-z0-9]+)*$"
    )
    scheme: Literal["https", "http"] = Field(
        default="https", description="http only for a local registry without TLS"
    )


class RegistryCredentials(KindModel):
    """A username and password (or access token used as the password)."""

    username: _Text
    password: _Secret


_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


async def _registry_check(config: ContainerRegistryConfig, creds: RegistryCredentials) -> str:
    base = f"{config.scheme}://{config.registry}"
    basic = (creds.username, creds.password)
    async with _http() as http:
        first = await _get(http, "the registry", f"{base}/v2/", auth=basic)
        if first.status_code == 200:
            return f"registry {config.registry} accepted the credentials"
        challenge = first.headers.get("www-authenticate", "")
        if first.status_code != 401 or not challenge.lower().startswith("bearer "):
            raise _refused("the registry", first)
        # Token authentication (distribution spec, "Token Authentication Specification"):
        # trade the basic credentials for a bearer token at the realm, then retry.
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        realm = params.pop("realm", "")
        realm_scheme = urlsplit(realm).scheme
        if realm_scheme not in ("https", config.scheme) or not urlsplit(realm).hostname:
            raise ConnectionFailed("the registry named an unusable token service")
        params.setdefault("scope", f"repository:{config.namespace}/inwire-check:pull")
        grant = await _get(http, "the registry's token service", realm, params=params, auth=basic)
        if grant.status_code != 200:
            raise _refused("the registry's token service", grant)
        body = _json(grant)
        token = body.get("token") or body.get("access_token")
        if not token:
            raise ConnectionFailed("the registry's token service returned no token")
        second = await _get(
            http, "the registry", f"{base}/v2/", headers={"Authorization": f"Bearer {token}"}
        )
        if second.status_code != 200:
            raise _refused("the registry", second)
    return f"registry {config.registry} accepted the credentials"


class HuggingFaceConfig(KindModel):
    """The Hugging Face Hub (or a mirror), optionally one organization on it."""

    organization: str | None = Field(
        default=None, min_length=1, max_length=96, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
    )
    endpoint: HttpURL = Field(default="https://huggingface.co")


async def _huggingface_check(config: HuggingFaceConfig, creds: TokenCredentials) -> str:
    async with _http() as http:
        me = await _get(
            http,
            "Hugging Face",
            f"{config.endpoint}/api/whoami-v2",
            headers={"Authorization": f"Bearer {creds.token}"},
        )
        if me.status_code != 200:
            raise _refused("Hugging Face", me)
    data = _json(me)
    name = data.get("name", "?")
    if config.organization:
        orgs = {o.get("name") for o in data.get("orgs") or [] if isinstance(o, dict)}
        if config.organization not in orgs:
            raise ConnectionFailed(
                f"token is valid (user {name}) but not a member of "
                f"organization {config.organization!r}"
            )
        return f"authenticated as {name}; member of {config.organization!r}"
    return f"authenticated as {name}"


# -- PostgreSQL ----------------------------------------------------------------------------------


class PostgresConfig(KindModel):
    """A PostgreSQL database."""

    host: str = Field(
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9_.:\-\[\]]+$",
        description="Host name or address",
    )
    port: int = Field(default=5432, ge=1, le=65535)
    database: str = Field(min_length=1, max_length=63)
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = Field(
        default="prefer", description="As libpq's sslmode"
    )


class PostgresCredentials(KindModel):
    """A database user, with its password unless the server trusts the user without one."""

    user: Annotated[str, Field(min_length=1, max_length=63)]
    password: _Secret | None = None


async def _postgres_check(config: PostgresConfig, creds: PostgresCredentials) -> str:
    import asyncpg

    where = f"{config.host}:{config.port}"
    try:
        conn = await asyncpg.connect(
            host=config.host,
            port=config.port,
            user=creds.user,
            password=creds.password,
            database=config.database,
            ssl=config.sslmode,
            timeout=CONNECT_TIMEOUT,
            command_timeout=READ_TIMEOUT,
        )
    except asyncpg.InvalidPasswordError as exc:
        raise ConnectionFailed("the password was rejected") from exc
    except asyncpg.InvalidAuthorizationSpecificationError as exc:
        # The user name is a credential: reports name neither it nor the password.
        raise ConnectionFailed(f"the user was rejected ({exc.sqlstate})") from exc
    except asyncpg.InvalidCatalogNameError as exc:
        raise ConnectionFailed(f"database {config.database!r} does not exist") from exc
    except asyncpg.PostgresError as exc:
        raise ConnectionFailed(f"PostgreSQL refused the connection ({exc.sqlstate})") from exc
    except (OSError, TimeoutError, asyncpg.InterfaceError) as exc:
        raise ConnectionFailed(
            f"could not reach PostgreSQL at {where}: {type(exc).__name__}"
        ) from exc
    try:
        version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return f"connected to database {config.database!r} (PostgreSQL {version})"


# -- registry ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntegrationKind:
    """One kind of integration: its models and its connection check."""

    name: str
    title: str
    description: str
    config: type[KindModel]
    credentials: type[KindModel]
    check: Callable[[Any, Any], Awaitable[str]]


KINDS: Mapping[str, IntegrationKind] = {
    k.name: k
    for k in (
        IntegrationKind(
            "s3", "Amazon S3", "An S3 or S3-compatible bucket.", S3Config, S3Credentials, _s3_check
        ),
        IntegrationKind(
            "gcs",
            "Google Cloud Storage",
            "A GCS bucket, with a service account key.",
            GCSConfig,
            GCSCredentials,
            _gcs_check,
        ),
        IntegrationKind(
            "azure_blob",
            "Azure Blob Storage",
            "A blob container of a storage account.",
            AzureBlobConfig,
            AzureBlobCredentials,
            _azure_check,
        ),
        IntegrationKind(
            "github",
            "GitHub",
            "A GitHub organization or user, with a personal access token.",
            GitHubConfig,
            TokenCredentials,
            _github_check,
        ),
        IntegrationKind(
            "gitlab",
            "GitLab",
            "A GitLab group or project, with an access token.",
            GitLabConfig,
            TokenCredentials,
            _gitlab_check,
        ),
        IntegrationKind(
            "container_registry",
            "Container registry",
            "An OCI/Docker registry namespace, with a username and password.",
            ContainerRegistryConfig,
            RegistryCredentials,
            _registry_check,
        ),
        IntegrationKind(
            "huggingface",
            "Hugging Face Hub",
            "The Hugging Face Hub, with an access token.",
            HuggingFaceConfig,
            TokenCredentials,
            _huggingface_check,
        ),
        IntegrationKind(
            "postgres",
            "PostgreSQL",
            "A PostgreSQL database, with a user and password.",
            PostgresConfig,
            PostgresCredentials,
            _postgres_check,
        ),
    )
}


def _problems(model: type[KindModel], data: Mapping[str, Any], field: str) -> list[dict[str, str]]:
    try:
        model.model_validate(dict(data))
    except ValidationError as exc:
        return [
            {
                "field": ".".join([field, *(str(p) for p in e["loc"])]),
                "message": e["msg"].removeprefix("Value error, "),
                "type": e["type"],
            }
            for e in exc.errors(include_input=False, include_url=False)
        ]
    return []


def validate(
    kind: IntegrationKind,
    *,
    config: Mapping[str, Any] | None = None,
    credentials: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Config and credentials checked against the kind, as JSON-ready dicts without nulls.

    Every bad field of both is reported in one 400; only locations and messages, never the
    input, since credentials are secret.
    """
    details: list[dict[str, str]] = []
    if config is not None:
        details += _problems(kind.config, config, "config")
    if credentials is not None:
        details += _problems(kind.credentials, credentials, "credentials")
    if details:
        fields = ", ".join(sorted({d["field"] for d in details}))
        raise Invalid(f"Invalid input: {fields}", details=list(details))

    def dump(model: type[KindModel], data: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if data is None:
            return None
        return model.model_validate(dict(data)).model_dump(mode="json", exclude_none=True)

    return dump(kind.config, config), dump(kind.credentials, credentials)
