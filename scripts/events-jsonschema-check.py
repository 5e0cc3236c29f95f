#!/usr/bin/env python3
"""Judges events with JSON Schema (schemas/<version>.json), for the differential test of the Swift decoder.

Input (stdin): one event per line, base64-encoded (the exact bytes the decoder saw).
Output (stdout): one line per event, "1" accepted or "0 <why>" rejected.

Besides the schema, the rules a schema cannot state, as the server applies them: strict UTF-8 (no
lone surrogates), no duplicate keys in the event object (nested unknown objects are kept as sent),
no NaN/Infinity, nesting at most 32 deep (the event is depth 1), at most 32 KiB, and a timestamp
within years 0001-9999 once in UTC.
"""
import base64, datetime, decimal, json, re, sys, pathlib
from jsonschema import Draft202012Validator

root = pathlib.Path(__file__).resolve().parent.parent
validators = {v: Draft202012Validator(json.loads((root / "schemas" / f"{v}.json").read_text()),
                                      format_checker=Draft202012Validator.FORMAT_CHECKER)
              for v in ("1.0", "1.1")}

class Reject(Exception):
    pass

class Members(dict):
    """An object's members, with whether a key came twice (only the event object's keys must be unique)."""
    duplicate = False

def pairs(items):
    members = Members(items)
    members.duplicate = len(members) != len(items)
    return members

def days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date, year 0 included (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468

def in_utc_range(text):
    """Whether a timestamp (the schema checks its form; no offset is UTC) names a real date and falls within years 0001-9999 in UTC."""
    m = re.match(r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.\d+)?(?:[Zz]|([+-])(\d\d)(?::?(\d\d))?)?$", text)
    if not m:
        return True
    year, month, day, hour, minute, second = (int(x) for x in m.groups()[:6])
    # A real date (the pattern lets February 30 through; the schema no longer has format date-time,
    # which is RFC 3339 alone, to check it).
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if day > [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]:
        return False
    seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    if m.group(7):
        seconds -= (1 if m.group(7) == "+" else -1) * (int(m.group(8)) * 3600 + int(m.group(9) or 0) * 60)
    return days_from_civil(1, 1, 1) * 86400 <= seconds <= days_from_civil(9999, 12, 31) * 86400 + 86399

class NonIntegral(float):
    """A number whose decimal text is not a whole number: never an integer to the schema, although
    its double may be (39465301988822401.6 rounds to a whole double). The server decides on the text."""
    def is_integer(self):
        return False

def number(text):
    """A JSON number with a fraction or exponent, decided on its decimal text as the server does: a
    whole value (1.0, 1e3, 9223372036854775807.0) is the exact integer, any other a float that is
    no integer."""
    value = decimal.Decimal(text)
    # Past 10^30 no field's range reaches: a double keeps the verdict (and 1e999999999 is not
    # turned into a billion digits).
    if value.is_finite() and value.adjusted() <= 30 and value == value.to_integral_value():
        return int(value)
    if value.is_finite() and value.adjusted() > 30:
        return float(text)
    return NonIntegral(text)

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
        obj = json.loads(text, object_pairs_hook=pairs, parse_constant=bad_constant, parse_float=number)
    except Reject as e:
        return str(e)
    except (ValueError, RecursionError) as e:
        return "json: " + str(e)[:60]
    if not isinstance(obj, dict):
        return "not an object"
    if obj.duplicate:
        return "duplicate key"
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
    if isinstance(obj.get("timestamp"), str) and not in_utc_range(obj["timestamp"]):
        return "timestamp not a real date, or outside years 0001-9999 in UTC"
    return None

for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    why = judge(base64.b64decode(line))
    print("1" if why is None else "0 " + why.replace("\n", " "))
