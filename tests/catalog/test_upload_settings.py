"""Upload settings S3 sets bounds to: a presigned URL lasts at most 7 days, a part of a
multipart upload (but the last) is at least 5 MiB."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.catalog.settings import CatalogSettings

MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("upload_policy_ttl_seconds", 7 * 24 * 3600 + 1),
        ("upload_part_size_bytes", 5 * MIB - 1),
    ],
)
def test_values_storage_would_refuse_are_refused_at_start(setting: str, value: int) -> None:
    with pytest.raises(ValidationError, match=setting):
        CatalogSettings(**{setting: value})


def test_the_bounds_themselves_are_accepted() -> None:
    settings = CatalogSettings(
        upload_policy_ttl_seconds=7 * 24 * 3600, upload_part_size_bytes=5 * MIB
    )
    assert (settings.upload_policy_ttl_seconds, settings.upload_part_size_bytes) == (
        7 * 24 * 3600,
        5 * MIB,
    )
