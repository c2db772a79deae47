"""Record store: interface in base.py, backends sqlite.py and redis.py."""

from control.store.base import (
    AlreadyExists,
    NotFound,
    Record,
    Store,
    StoreError,
    UniqueConflict,
    VersionConflict,
)

__all__ = [
    "AlreadyExists",
    "NotFound",
    "Record",
    "Store",
    "StoreError",
    "UniqueConflict",
    "VersionConflict",
]
