"""Reads an Iceberg table of a SQL (sqlite) catalog with Spark 3.5 and Apache
Iceberg's Java runtime 1.10.2 (the reference implementation), for Weir's
tests: the table is loaded from the metadata file the catalog names. Prints
one JSON document: the rows (JSON objects sorted by their JSON text) and, with
`--key COL`, for every snapshot the values of COL held by more than one row.

usage: read_spark.py CATALOG_DB CATALOG_NAME NAMESPACE.TABLE [--key COL]
"""
import glob
import json
import os
import sys

import catalog

from pyspark.sql import SparkSession


def runtime_jar():
    import snowpark_connect_deps_iceberg as deps

    jars = glob.glob(os.path.join(os.path.dirname(deps.__file__), "jars", "iceberg-spark-runtime-3.5_2.12-*.jar"))
    if not jars:
        raise SystemExit("no iceberg-spark-runtime-3.5_2.12 jar in snowpark_connect_deps_iceberg")
    return jars[0]


def main():
    db, name, table, _, key = catalog.args(sys.argv[1:])
    location = catalog.metadata_location(db, name, table)
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.jars", runtime_jar())
        .config("spark.ui.enabled", "false")
        # The driver and block manager listen on loopback only.
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    df = spark.read.format("iceberg").load(location)
    texts = sorted(json.dumps(r.asDict(), sort_keys=True, default=str) for r in df.collect())
    out = {"rows": [json.loads(x) for x in texts]}
    if key is not None:
        with open(location.removeprefix("file://")) as f:
            meta = json.load(f)
        dups = {}
        for s in meta.get("snapshots", []):
            at = spark.read.format("iceberg").option("snapshot-id", s["snapshot-id"]).load(location)
            twice = at.groupBy(key).count().where("count > 1").collect()
            dups[str(s["snapshot-id"])] = sorted(str(r[key]) for r in twice)
        out["duplicates_by_snapshot"] = dups
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
