"""Create the bucket ``INWIRE_STORAGE_URL`` names, if missing (compose's ``storage-init``).

Run once before the services start: ``python /app/bin/create_bucket.py``. It validates the
URL with the same parser the services use (``inwire.kit.storage``), waits for the S3 server
to answer, creates the bucket (an existing one is fine) and gives it an
``AbortIncompleteMultipartUpload`` rule, so uploads of a process killed mid-way are cleaned
up (see ``S3ObjectStore``). Credentials come from boto3's chain (``AWS_ACCESS_KEY_ID``...).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit


def s3_client(url: str) -> tuple[Any, str]:
    """A boto3 client for the S3 server of ``url`` and the bucket name."""
    import boto3
    from botocore.config import Config

    from inwire.kit.storage import S3ObjectStore, open_object_store

    store = open_object_store(url)  # raises Invalid for a malformed URL
    if not isinstance(store, S3ObjectStore):
        raise ValueError(f"not an s3:// URL: {url!r}")
    options = {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}
    style = options.get("addressing_style")
    session = boto3.session.Session(
        profile_name=options.get("profile"), region_name=options.get("region")
    )
    s3_config: Any = {"addressing_style": style} if style else {}
    client = session.client(
        "s3", endpoint_url=options.get("endpoint_url"), config=Config(s3=s3_config)
    )
    return client, store.bucket


def create_bucket(client: Any, bucket: str, *, abort_after_days: int = 1) -> bool:
    """Create ``bucket`` unless it exists; True if it was created."""
    from botocore.exceptions import ClientError

    # Asked first: us-east-1 answers a create of a bucket one already owns with success.
    try:
        client.head_bucket(Bucket=bucket)
        created = False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
        created = True
    if created:
        try:
            region = client.meta.region_name
            if region and region != "us-east-1":
                client.create_bucket(
                    Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region}
                )
            else:
                client.create_bucket(Bucket=bucket)
        except ClientError as exc:
            # Made meanwhile by someone else running this (several `up`s at once).
            if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise
            created = False
    rule = {
        "ID": "inwire-abort-incomplete-uploads",
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": abort_after_days},
    }
    try:
        client.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": [rule]}
        )
    except ClientError as exc:
        # Some S3-compatible servers clean stale uploads themselves and refuse the rule.
        sys.stderr.write(f"create_bucket: lifecycle rule not set: {exc}\n")
    return created


def wait_for_server(client: Any, deadline: float) -> None:
    """Return once the S3 server answers a request, or raise the last error at ``deadline``."""
    from botocore.exceptions import BotoCoreError, ClientError

    while True:
        try:
            client.list_buckets()
            return
        except (BotoCoreError, ClientError):
            if time.monotonic() >= deadline:
                raise
            time.sleep(1)


def main(argv: Sequence[str] | None = None) -> int:
    """Create the bucket; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("INWIRE_STORAGE_URL", ""))
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for S3")
    args = parser.parse_args(argv)
    if not args.url:
        sys.stderr.write("create_bucket: set INWIRE_STORAGE_URL or pass --url\n")
        return 2
    try:
        client, bucket = s3_client(args.url)
        wait_for_server(client, time.monotonic() + args.wait)
        created = create_bucket(client, bucket)
    except Exception as exc:
        sys.stderr.write(f"create_bucket: {type(exc).__name__}: {exc}\n")
        return 1
    sys.stdout.write(f"bucket {bucket}: {'created' if created else 'already there'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
