"""Reads Parquet files written by the Swift writer with pyarrow and DuckDB and compares every value,
every type and the metadata (codec, encodings, statistics, logical types, key-value metadata) with
what the writer was asked to write.

usage: check_files.py MANIFEST.json
The manifest is a list of cases: {"path", "rows", "codec", "key_value_metadata", "columns": [
  {"name", "kind", "list", "arrow_type", "duckdb_type", "logical_type", "encodings" (exact set or null),
   "values": [per row: null | value | [elements]]}]}
Canonical values: strings as str, bytes as hex, integers as int, floats as IEEE bit patterns (int) or
"nan", booleans as bool, timestamps as counts of their unit, dates as days.
Prints one line per problem; exits 1 if there are any.
"""
import json
import math
import struct
import sys

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

problems = []


def problem(case, text):
    problems.append(f"{case['path']}: {text}")


def canon(kind, v):
    if v is None:
        return None
    if kind == "double":
        if math.isnan(v):
            return "nan"
        return struct.unpack("<Q", struct.pack("<d", v))[0]
    if kind == "float":
        if math.isnan(v):
            return "nan"
        return struct.unpack("<I", struct.pack("<f", v))[0]
    if kind in ("binary", "fixed"):
        return bytes(v).hex()
    if kind == "uuid":
        if isinstance(v, (bytes, bytearray)):
            return bytes(v).hex()
        if isinstance(v, str):
            return v.replace("-", "")
        return v.bytes.hex()
    if kind == "uint64" and v < 0:
        return v + (1 << 64)
    return v


def canon_row(column, v):
    if v is None:
        return None
    if column["list"]:
        return [canon(column["kind"], x) for x in v]
    return canon(column["kind"], v)


def compare(case, reader, column, got):
    want = column["values"]
    name = column["name"]
    if len(got) != len(want):
        problem(case, f"{reader}: column {name}: {len(got)} rows, expected {len(want)}")
        return
    shown = 0
    for i, (g, w) in enumerate(zip(got, want)):
        g = canon_row(column, g)
        if g != w:
            problem(case, f"{reader}: column {name} row {i}: got {g!r:.200}, expected {w!r:.200}")
            shown += 1
            if shown >= 5:
                return


def arrow_values(column, array):
    kind = column["kind"]
    target = None
    if kind.startswith("timestamp"):
        target = pa.int64()
    elif kind == "date":
        target = pa.int32()
    if target is not None:
        array = array.cast(pa.list_(target) if column["list"] else target)
    if kind == "uuid" and isinstance(array.type, pa.ExtensionType):
        array = pa.chunked_array([c.storage for c in array.chunks], type=array.type.storage_type)
    if kind == "uuid" and column["list"] and isinstance(array.type.value_type, pa.ExtensionType):
        pass
    return array.to_pylist()


def duckdb_expression(column):
    q = '"' + column["name"].replace('"', '""') + '"'
    kind = column["kind"]

    def scalar(x):
        if kind == "timestamp_ms":
            return f"epoch_ms({x})"
        if kind == "timestamp_us":
            return f"epoch_us({x})"
        if kind == "timestamp_ns":
            return f"epoch_ns({x})"
        if kind == "date":
            return f"({x} - DATE '1970-01-01')"
        if kind == "json":
            return f"{x}::VARCHAR"
        return x

    if column["list"]:
        inner = scalar("x")
        return q if inner == "x" else f"list_transform({q}, lambda x: {inner})"
    return scalar(q)


def check_arrow(case):
    path = case["path"]
    table = pq.read_table(path)
    if table.num_rows != case["rows"]:
        problem(case, f"pyarrow: {table.num_rows} rows, expected {case['rows']}")
    for column in case["columns"]:
        field = table.schema.field(column["name"])
        if str(field.type) != column["arrow_type"]:
            problem(case, f"pyarrow: column {column['name']} has type {field.type}, expected {column['arrow_type']}")
        compare(case, "pyarrow", column, arrow_values(column, table.column(column["name"])))


def check_duckdb(case):
    path = case["path"]
    con = duckdb.connect()
    con.execute("SET threads TO 1")
    described = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
    types = {row[0]: row[1] for row in described}
    for column in case["columns"]:
        if types.get(column["name"]) != column["duckdb_type"]:
            problem(case, f"duckdb: column {column['name']} has type {types.get(column['name'])}, expected {column['duckdb_type']}")
    if not case["columns"]:
        return
    select = ", ".join(duckdb_expression(c) for c in case["columns"])
    rows = con.execute(f"SELECT {select} FROM read_parquet('{path}')").fetchall()
    if len(rows) != case["rows"]:
        problem(case, f"duckdb: {len(rows)} rows, expected {case['rows']}")
        return
    for index, column in enumerate(case["columns"]):
        compare(case, "duckdb", column, [row[index] for row in rows])


def expected_min_max(column, values):
    kind = column["kind"]
    flat = []
    for v in values:
        if v is None:
            continue
        if column["list"]:
            flat.extend(x for x in v if x is not None)
        else:
            flat.append(v)
    if kind in ("double", "float"):
        fmt = "<d" if kind == "double" else "<f"
        ufmt = "<Q" if kind == "double" else "<I"
        floats = [struct.unpack(fmt, struct.pack(ufmt, v))[0] for v in flat if v != "nan"]
        if not floats:
            return None
        lo, hi = min(floats), max(floats)
        if lo == 0:
            lo = -0.0
        if hi == 0:
            hi = 0.0
        return (struct.unpack(ufmt, struct.pack(fmt, lo))[0], struct.unpack(ufmt, struct.pack(fmt, hi))[0])
    if not flat:
        return None
    if kind in ("string", "json"):
        keys = [v.encode("utf-8") for v in flat]
        return (min(keys), max(keys))
    if kind in ("binary", "fixed", "uuid"):
        keys = [bytes.fromhex(v) for v in flat]
        return (min(keys), max(keys))
    return (min(flat), max(flat))


def raw_min_max(column, statistics):
    kind = column["kind"]
    lo, hi = statistics.min_raw, statistics.max_raw
    if kind in ("double", "float"):
        return (canon(kind, lo), canon(kind, hi))
    if kind in ("string", "json", "binary", "fixed", "uuid"):
        lo = lo.encode("utf-8") if isinstance(lo, str) else bytes(lo)
        hi = hi.encode("utf-8") if isinstance(hi, str) else bytes(hi)
        return (lo, hi)
    if kind == "uint64":
        return (lo % (1 << 64), hi % (1 << 64))
    if kind in ("uint32",):
        return (lo % (1 << 32), hi % (1 << 32))
    return (lo, hi)


def check_metadata(case):
    parquet = pq.ParquetFile(case["path"])
    metadata = parquet.metadata
    kv = {k.decode(): v.decode() for k, v in (metadata.metadata or {}).items()}
    if kv != case.get("key_value_metadata", {}):
        problem(case, f"key-value metadata {kv}, expected {case.get('key_value_metadata')}")
    schema = parquet.schema
    leaf_index = {}
    for i in range(len(schema)):
        leaf_index[schema.column(i).path.split(".")[0]] = i
    for column in case["columns"]:
        logical = str(schema.column(leaf_index[column["name"]]).logical_type.type)
        if logical != column["logical_type"]:
            problem(case, f"column {column['name']}: logical type {logical}, expected {column['logical_type']}")
    start = 0
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        end = start + group.num_rows
        for column in case["columns"]:
            chunk = group.column(leaf_index[column["name"]])
            if chunk.compression != case["codec"]:
                problem(case, f"row group {g} column {column['name']}: codec {chunk.compression}, expected {case['codec']}")
            if column.get("encodings") is not None and sorted(chunk.encodings) != sorted(column["encodings"]):
                problem(case, f"row group {g} column {column['name']}: encodings {chunk.encodings}, expected {column['encodings']}")
            values = column["values"][start:end]
            statistics = chunk.statistics
            if statistics is None:
                problem(case, f"row group {g} column {column['name']}: no statistics")
                continue
            if column["list"]:
                nulls = sum(1 if v is None or len(v) == 0 else sum(1 for x in v if x is None) for v in values)
            else:
                nulls = sum(1 for v in values if v is None)
            if statistics.null_count != nulls:
                problem(case, f"row group {g} column {column['name']}: null_count {statistics.null_count}, expected {nulls}")
            expected = expected_min_max(column, values)
            if column.get("no_min_max"):
                expected = None
            if expected is None:
                if statistics.has_min_max:
                    problem(case, f"row group {g} column {column['name']}: has min/max, expected none")
            elif not statistics.has_min_max:
                problem(case, f"row group {g} column {column['name']}: no min/max, expected {expected!r:.200}")
            else:
                got = raw_min_max(column, statistics)
                if got != expected:
                    problem(case, f"row group {g} column {column['name']}: min/max {got!r:.200}, expected {expected!r:.200}")
        start = end
    if start != case["rows"]:
        problem(case, f"row groups hold {start} rows, expected {case['rows']}")
    if "row_groups" in case and metadata.num_row_groups != case["row_groups"]:
        problem(case, f"{metadata.num_row_groups} row groups, expected {case['row_groups']}")


def main():
    cases = json.load(open(sys.argv[1]))
    for case in cases:
        for check in (check_arrow, check_duckdb, check_metadata):
            try:
                check(case)
            except Exception as error:  # a reader refusing the file is a failure, with its message
                problem(case, f"{check.__name__}: {type(error).__name__}: {error}")
    for line in problems:
        print(line)
    print(f"checked {len(cases)} files, {len(problems)} problems")
    sys.exit(1 if problems else 0)


main()
