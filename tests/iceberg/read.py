"""Reads an Iceberg table of a SQL (sqlite) or REST catalog with PyIceberg,
an independent reader, for Weir's tests: prints one JSON document with the
table's rows (as JSON objects, sorted by their JSON text), its snapshots in
commit order (id, parent, sequence number, summary) and its data files.

usage: read.py CATALOG_DB WAREHOUSE_DIR CATALOG_NAME NAMESPACE.TABLE [SNAPSHOT_ID]
       read.py http://REST_CATALOG WAREHOUSE_DIR CATALOG_NAME NAMESPACE.TABLE [SNAPSHOT_ID]
"""
import json
import sys

from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.catalog.sql import SqlCatalog


def main():
    db, warehouse, name, table = sys.argv[1:5]
    snapshot = int(sys.argv[5]) if len(sys.argv) > 5 else None
    if db.startswith(("http://", "https://")):
        catalog = RestCatalog(name, uri=db)
    else:
        catalog = SqlCatalog(name, uri=f"sqlite:///{db}", warehouse=f"file://{warehouse}")
    t = catalog.load_table(table)
    rows = t.scan(snapshot_id=snapshot).to_arrow().to_pylist()
    texts = sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)
    snaps = sorted(t.metadata.snapshots, key=lambda s: s.sequence_number)
    out = {
        "rows": [json.loads(x) for x in texts],
        "snapshots": [
            {
                "id": s.snapshot_id,
                "parent": s.parent_snapshot_id,
                "sequence_number": s.sequence_number,
                "timestamp_ms": s.timestamp_ms,
                "summary": {k: v for k, v in s.summary.additional_properties.items()} | {"operation": str(s.summary.operation.value)},
            }
            for s in snaps
        ],
        "files": sorted(f.file.file_path for f in t.scan(snapshot_id=snapshot).plan_files()),
        "partition_fields": [str(f.transform) + ":" + f.name for f in t.spec().fields],
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
