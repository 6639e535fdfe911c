"""Where Flowdesk keeps files (read by ``config/settings.py``): Django's ``STORAGES``.

Archives (``manage.py archive_processes``) and files attached to cases each go to a directory by
default, or to an S3-compatible bucket when one is named (``pip install ".[s3]"``; credentials
from the usual ``AWS_*`` variables or the instance role; ``FLOWDESK_ARCHIVE_S3_ENDPOINT`` for MinIO
and friends). Stored files are never overwritten.
"""

from __future__ import annotations

import os


def directory_or_bucket(*, directory: str, bucket: str, prefix: str) -> dict:
    """One storage: ``bucket`` (under ``prefix``) when set, else the filesystem ``directory``."""
    if not bucket:
        return {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": directory},
        }
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": os.environ.get("FLOWDESK_ARCHIVE_S3_ENDPOINT") or None,
            "location": prefix,
            "file_overwrite": False,
        },
    }


def storages(*, archive_dir, archive_bucket, attachments_dir, attachments_bucket) -> dict:
    return {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "flowdesk_attachments": directory_or_bucket(
            directory=attachments_dir, bucket=attachments_bucket, prefix="flowdesk-attachments"
        ),
        # hashed, compressed, cached for good (WhiteNoise serves them; tests.settings keeps plain
        # names for the in-process client only)
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
        "flowdesk_archive": directory_or_bucket(
            directory=archive_dir,
            bucket=archive_bucket,
            prefix=os.environ.get("FLOWDESK_ARCHIVE_S3_PREFIX", "flowdesk-archive"),
        ),
    }
