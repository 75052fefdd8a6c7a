#!/usr/bin/env python3
"""Import conformance: no line that a reference JSON parser (Python's, strict) accepts as
an object is counted malformed by cclog. Reads `cclog import --json`'s report on stdin."""

import json
import sys


def strict_object(line: bytes) -> bool:
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    try:
        return isinstance(json.loads(line.decode("utf-8"), parse_constant=refuse), dict)
    except (UnicodeDecodeError, ValueError):
        return False


report = json.load(sys.stdin)
wrong = []
for malformed in report["malformed_lines"]:
    with open(malformed["path"], "rb") as transcript:
        lines = transcript.read().split(b"\n")
    line = lines[malformed["line"] - 1]
    if strict_object(line):
        wrong.append(f'{malformed["path"]}:{malformed["line"]} ({malformed["reason"]})')
if wrong:
    print("conformance: cclog counted valid JSON objects as malformed:", *wrong, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print(f'conformance: {len(report["malformed_lines"])} malformed lines, none of them a JSON object')
