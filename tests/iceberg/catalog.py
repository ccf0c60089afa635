"""What the readers of Weir's Iceberg tests share: their arguments and the
metadata file a SQL (sqlite) or REST catalog names for a table."""
import json
import sqlite3
import urllib.parse
import urllib.request


def args(argv):
    """(catalog db, catalog name, namespace.table, snapshot id or None, key
    column or None) of `DB NAME TABLE [SNAPSHOT_ID] [--key COL]`."""
    argv = list(argv)
    key = None
    if "--key" in argv:
        i = argv.index("--key")
        key = argv[i + 1]
        del argv[i : i + 2]
    db, name, table = argv[:3]
    snapshot = int(argv[3]) if len(argv) > 3 else None
    return db, name, table, snapshot, key


def metadata_location(db, name, table):
    """The table's current metadata file, as the catalog names it: a SQL
    catalog's row of it in sqlite file `db`, or, where `db` is a REST
    catalog's URI, its load-table answer."""
    ns, tname = table.rsplit(".", 1)
    if db.startswith(("http://", "https://")):
        ns = urllib.parse.quote(ns.replace(".", "\x1f"), safe="")
        with urllib.request.urlopen(f"{db.rstrip('/')}/v1/namespaces/{ns}/tables/{urllib.parse.quote(tname)}") as r:
            return json.load(r)["metadata-location"]
    with sqlite3.connect(db) as c:
        row = c.execute(
            "SELECT metadata_location FROM iceberg_tables WHERE catalog_name = ? AND table_namespace = ? AND table_name = ?",
            (name, ns, tname),
        ).fetchone()
    if row is None:
        raise SystemExit(f"no table {table} in catalog {name} of {db}")
    return row[0]
