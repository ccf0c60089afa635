"""How long each row version took from its source to an Iceberg snapshot, read
with DuckDB (an independent reader): for every snapshot committed at or after
--since (ms since the epoch), the data files it added (live at it, not at its
parent), and for each row of those files the snapshot's commit time
(`timestamp-ms`) minus the row's column COL (ms since the epoch, stamped by
the source when the row changed). Prints one JSON list of
{"key": KEY, "changed_at": MS, "lag_ms": MS}, KEY being column --key.

usage: lag_duckdb.py CATALOG_DB|http://REST_CATALOG CATALOG_NAME NAMESPACE.TABLE --key KEY --changed COL --since MS
"""
import json
import sys

import catalog
import duckdb
from read_duckdb import extension


def option(argv, name):
    i = argv.index(name)
    value = argv[i + 1]
    del argv[i : i + 2]
    return value


def main():
    argv = sys.argv[1:]
    changed = option(argv, "--changed")
    since = int(option(argv, "--since"))
    db, name, table, _, key = catalog.args(argv)
    location = catalog.metadata_location(db, name, table).removeprefix("file://").removeprefix("file:")
    with open(location) as f:
        meta = json.load(f)
    snaps = sorted(meta.get("snapshots", []), key=lambda s: s["sequence-number"])
    con = duckdb.connect(config={"allow_unsigned_extensions": "true", "autoinstall_known_extensions": "false"})
    con.execute(f"LOAD '{extension('duckdb_extension_avro', 'avro')}'")
    con.execute(f"LOAD '{extension('duckdb_extension_iceberg', 'iceberg')}'")

    def data_files(snapshot_id):
        rows = con.execute(
            f"SELECT file_path FROM iceberg_metadata('{location}', snapshot_from_id => {snapshot_id}) "
            "WHERE status <> 'DELETED' AND content NOT IN ('POSITION_DELETES', 'EQUALITY_DELETES')"
        ).fetchall()
        return {r[0] for r in rows}

    out = []
    before = None
    for i, s in enumerate(snaps):
        if s["timestamp-ms"] < since:
            continue
        if before is None:
            before = data_files(snaps[i - 1]["snapshot-id"]) if i > 0 else set()
        now = data_files(s["snapshot-id"])
        for path in sorted(now - before):
            local = path.removeprefix("file://").removeprefix("file:")
            for k, c in con.execute(f'SELECT "{key}", "{changed}" FROM read_parquet(?)', [local]).fetchall():
                if c is not None:
                    out.append({"key": k, "changed_at": c, "lag_ms": s["timestamp-ms"] - c})
        before = now
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
