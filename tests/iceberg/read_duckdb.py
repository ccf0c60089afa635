"""Reads an Iceberg table of a SQL (sqlite) or REST catalog with DuckDB's iceberg
extension, an independent reader that applies equality and position deletes
(PyIceberg 0.12 refuses equality deletes), for Weir's tests of upsert sinks.
Prints one JSON document: the table's rows (JSON objects sorted by their JSON
text), its snapshots in commit order (id, parent, sequence number, summary,
as the table's metadata file lists them) and its files by content; with
`--key COL`, also for every snapshot the values of COL held by more than one
row at that snapshot.

usage: read_duckdb.py CATALOG_DB|http://REST_CATALOG CATALOG_NAME NAMESPACE.TABLE [SNAPSHOT_ID] [--key COL]
"""
import json
import os
import sys

import catalog

import duckdb


def extension(package, name):
    mod = __import__(package)
    root = os.path.join(os.path.dirname(mod.__file__), "extensions")
    for dirpath, _, files in os.walk(root):
        if f"{name}.duckdb_extension" in files:
            return os.path.join(dirpath, f"{name}.duckdb_extension")
    raise SystemExit(f"no {name}.duckdb_extension under {root}")


def main():
    db, name, table, snapshot, key = catalog.args(sys.argv[1:])
    location = catalog.metadata_location(db, name, table).removeprefix("file://").removeprefix("file:")
    con = duckdb.connect(config={"allow_unsigned_extensions": "true", "autoinstall_known_extensions": "false"})
    con.execute(f"LOAD '{extension('duckdb_extension_avro', 'avro')}'")
    con.execute(f"LOAD '{extension('duckdb_extension_iceberg', 'iceberg')}'")
    args = f"'{location}'" + (f", snapshot_from_id => {snapshot}" if snapshot is not None else "")
    cur = con.execute(f"SELECT * FROM iceberg_scan({args})")
    cols = [d[0] for d in cur.description]
    rows = [dict(zip(cols, r)) for r in cur.fetchall()]
    texts = sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)
    with open(location) as f:
        meta = json.load(f)
    snaps = sorted(meta.get("snapshots", []), key=lambda s: s["sequence-number"])
    # The live files: a compaction's manifests also list the files it removed.
    files = con.execute(f"SELECT content, file_path FROM iceberg_metadata({args}) WHERE status <> 'DELETED'").fetchall()
    out = {
        "rows": [json.loads(x) for x in texts],
        "snapshots": [
            {
                "id": s["snapshot-id"],
                "parent": s.get("parent-snapshot-id"),
                "sequence_number": s["sequence-number"],
                "summary": s["summary"],
            }
            for s in snaps
        ],
        # DuckDB 1.5.5 names a data file's content EXISTING; delete files' by kind.
        "files": sorted([k if k in ("POSITION_DELETES", "EQUALITY_DELETES") else "DATA", p] for k, p in files),
        "identifier_fields": [
            f["name"]
            for s in meta["schemas"]
            if s["schema-id"] == meta["current-schema-id"]
            for f in s["fields"]
            if f["id"] in s.get("identifier-field-ids", [])
        ],
    }
    if key is not None:
        out["duplicates_by_snapshot"] = {
            str(s["snapshot-id"]): [
                str(r[0])
                for r in con.execute(
                    f"SELECT \"{key}\" FROM iceberg_scan('{location}', snapshot_from_id => {s['snapshot-id']}) GROUP BY 1 HAVING count(*) > 1 ORDER BY 1"
                ).fetchall()
            ]
            for s in snaps
        }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
