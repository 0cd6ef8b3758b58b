"""Reading a run's metric batches back, compacting them, and reading summaries.

A compacted file carries, in its Parquet key-value metadata, the names of the batch files it
covers; readers skip covered batches, so a reader racing with compaction sees each point once.
"""
from __future__ import annotations

import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import RecordNotFoundError
from .metrics import SCHEMA, shape_metrics, summarize, to_parquet_bytes
from .points import merge_summaries
from .records import RunRecords, now_ns

_COVERS = b"runyard.covers"
# names and kinds repeat: keep them dictionary-encoded in memory (2x faster reads and filters)
_DICT_COLUMNS = ["name", "kind"]
READ_SCHEMA = pa.schema([pa.field(f.name, pa.dictionary(pa.int32(), pa.string()))
                         if f.name in _DICT_COLUMNS else f for f in SCHEMA])


def _read_many(records: RunRecords, keys: list[str]) -> dict[str, pa.Table]:
    store = records.store
    if not keys:
        return {}
    if store.is_local:
        out = {}
        for key in keys:
            try:
                out[key] = _normalize(pq.read_table(store.path(key), read_dictionary=_DICT_COLUMNS))
            except FileNotFoundError:
                continue  # compacted away between listing and reading
        return out
    paths = {store.path(k): k for k in keys}
    blobs = store._call("read", keys[0], lambda: store.fs.cat(list(paths), on_error="omit"))  # noqa: SLF001
    return {paths[p]: _normalize(pq.read_table(io.BytesIO(b), read_dictionary=_DICT_COLUMNS))
            for p, b in blobs.items() if isinstance(b, (bytes, bytearray))}


def _normalize(table: pa.Table) -> pa.Table:
    """Batches from older writers may lack columns; give every table READ_SCHEMA."""
    if table.schema.remove_metadata() == READ_SCHEMA:
        return table
    meta = table.schema.metadata
    columns = [table.column(f.name).cast(f.type) if f.name in table.column_names
               else pa.nulls(table.num_rows, f.type) for f in READ_SCHEMA]
    return pa.Table.from_arrays(columns, schema=READ_SCHEMA.with_metadata(meta))


def read_metrics_table(records: RunRecords, run_id: str) -> pa.Table:
    """Every point of a run as one Arrow table with :data:`tracking.metrics.SCHEMA`."""
    prefix = records.run_key(run_id, "metrics")
    names = [n for n in records.store.list(prefix) if n.endswith(".parquet")]
    compacted = [n for n in names if n.startswith("compacted-")]
    tables = _read_many(records, [f"{prefix}/{n}" for n in compacted])
    covered: set[str] = set()
    for table in tables.values():
        meta = table.schema.metadata or {}
        covered.update(json.loads(meta.get(_COVERS, b"[]")))
    tables = {k: t for k, t in tables.items() if k.rsplit("/", 1)[-1] not in covered}
    batches = [n for n in names if n not in covered and not n.startswith("compacted-")]
    tables.update(_read_many(records, [f"{prefix}/{n}" for n in batches]))
    parts = [t.replace_schema_metadata(None) for t in tables.values()]
    return pa.concat_tables(parts) if parts else READ_SCHEMA.empty_table()


def get_metrics(records: RunRecords, run_id: str, name: str | None = None) -> dict[str, Any]:
    return shape_metrics(read_metrics_table(records, run_id), name)


def compact_metrics(records: RunRecords, run_id: str) -> int:
    """Merge a finished run's batches into one file and remove them; return points kept."""
    prefix = records.run_key(run_id, "metrics")
    names = [n for n in records.store.list(prefix) if n.endswith(".parquet")]
    if len(names) <= 1:
        return -1
    table = read_metrics_table(records, run_id)
    table = table.cast(SCHEMA).replace_schema_metadata({_COVERS: json.dumps(names).encode()})
    records.store.put_bytes(f"{prefix}/compacted-{now_ns():020d}.parquet",
                            to_parquet_bytes(table, compression_level=None))
    for name in names:
        records.store.delete(f"{prefix}/{name}")
    return table.num_rows


def read_summary(records: RunRecords, run_id: str) -> dict[str, dict]:
    """Per-metric last/min/max/count, merged over the run's writers (no series read)."""
    prefix = records.run_key(run_id, "summary")
    parts = []
    for name in records.store.list(prefix):
        try:
            parts.append(records.store.get_json(f"{prefix}/{name}"))
        except (RecordNotFoundError, ValueError):
            continue
    return merge_summaries(parts)


def rebuild_summary(records: RunRecords, run_id: str) -> dict[str, dict]:
    """Summary computed from the series themselves (when summaries are missing)."""
    return summarize(read_metrics_table(records, run_id))
