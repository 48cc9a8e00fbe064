"""Stores: engines, table definitions, migrations, the group-committing writer and blob directories."""

from ferryman.store import tables
from ferryman.store.blobs import BlobStore, LocalBlobStore
from ferryman.store.engine import create_engine
from ferryman.store.faults import is_outage
from ferryman.store.migrate import migrate
from ferryman.store.writer import StoreWriter

__all__ = ["BlobStore", "LocalBlobStore", "StoreWriter", "create_engine", "is_outage", "migrate", "tables"]
