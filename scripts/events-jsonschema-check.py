#!/usr/bin/env python3
"""Judges events with JSON Schema (schemas/<version>.json), for the differential test of the Swift decoder.

Input (stdin): one event per line, base64-encoded (the exact bytes the decoder saw).
Output (stdout): one line per event, "1" accepted or "0 <why>" rejected.

Besides the schema, the same transport rules as the server: strict UTF-8 (no lone surrogates), no
duplicate keys, no NaN/Infinity, nesting at most 32 deep (the event is depth 1), at most 32 KiB.
"""
import base64, json, sys, pathlib
from jsonschema import Draft202012Validator

root = pathlib.Path(__file__).resolve().parent.parent
validators = {v: Draft202012Validator(json.loads((root / "schemas" / f"{v}.json").read_text()),
                                      format_checker=Draft202012Validator.FORMAT_CHECKER)
              for v in ("1.0", "1.1")}

class Reject(Exception):
    pass

def pairs(items):
    keys = [k for k, _ in items]
    if len(keys) != len(set(keys)):
        raise Reject("duplicate key")
    return dict(items)

def bad_constant(name):
    raise Reject("non-JSON constant " + name)

def depth(v):
    if isinstance(v, dict):
        return 1 + max((depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((depth(x) for x in v), default=0)
    return 0

def strings(v):
    if isinstance(v, dict):
        for k, x in v.items():
            yield k
            yield from strings(x)
    elif isinstance(v, list):
        for x in v:
            yield from strings(x)
    elif isinstance(v, str):
        yield v

def judge(raw):
    if len(raw) > 32 * 1024:
        return "too large"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "utf-8"
    try:
        obj = json.loads(text, object_pairs_hook=pairs, parse_constant=bad_constant)
    except Reject as e:
        return str(e)
    except (ValueError, RecursionError) as e:
        return "json: " + str(e)[:60]
    if not isinstance(obj, dict):
        return "not an object"
    if depth(obj) > 32:
        return "too deep"
    for s in strings(obj):
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            return "lone surrogate"
    version = obj.get("schema_version", "1.0")
    validator = validators.get(version) if isinstance(version, str) else None
    if validator is None:
        validator = validators["1.0"]
    errors = list(validator.iter_errors(obj))
    if errors:
        return "schema: " + errors[0].message[:80]
    return None

for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    why = judge(base64.b64decode(line))
    print("1" if why is None else "0 " + why.replace("\n", " "))
