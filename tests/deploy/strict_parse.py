#!/usr/bin/env python3
"""Parses every text file ewnet wrote with strict readers: UTF-8 decoding that refuses any invalid
byte, then json, xml.etree or csv, and a safetensors file's header as the safetensors library
reads it (8-byte length, UTF-8 JSON). With --names, the class and file names the outputs must
hold (one per line of that file, UTF-8) are looked for in what was parsed.

Usage: strict_parse.py [--names FILE] FILE...   (by extension: .json .svg .csv .safetensors)
Exit status 0 when every file parses, 1 otherwise.
"""
import csv
import io
import json
import struct
import sys
import xml.etree.ElementTree as ET


def text_of(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", errors="strict")


def strings_in(value, out):
    if isinstance(value, str):
        out.add(value)
    elif isinstance(value, list):
        for v in value:
            strings_in(v, out)
    elif isinstance(value, dict):
        for k, v in value.items():
            out.add(k)
            strings_in(v, out)
    return out


def main(argv):
    names = []
    if argv[:1] == ["--names"]:
        names = [n for n in text_of(argv[1]).split("\x00") if n]
        argv = argv[2:]
    seen = set()
    status = 0
    for path in argv:
        try:
            if path.endswith(".json"):
                strings_in(json.loads(text_of(path)), seen)
            elif path.endswith(".svg"):
                for e in ET.parse(path).iter():
                    if e.text:
                        seen.add(e.text)
            elif path.endswith(".csv"):
                for row in csv.reader(io.StringIO(text_of(path), newline="")):
                    seen.update(row)
            elif path.endswith(".safetensors"):
                with open(path, "rb") as f:
                    n = struct.unpack("<Q", f.read(8))[0]
                    header = json.loads(f.read(n).decode("utf-8", errors="strict"))
                for k, v in header.get("__metadata__", {}).items():
                    seen.add(v)
                    try:
                        strings_in(json.loads(v), seen)
                    except ValueError:
                        pass
            else:
                raise ValueError("unknown kind of file")
            print(f"ok: {path}")
        except Exception as e:  # noqa: BLE001 - every failure is reported
            print(f"FAILED: {path}: {type(e).__name__}: {e}")
            status = 1
    for n in names:
        if not any(n in s for s in seen):
            print(f"FAILED: the name {n!r} is in none of the outputs")
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
