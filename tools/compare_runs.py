#!/usr/bin/env python3
"""compare_runs.py: whether two run folders of the ewnet programs hold the same results.

    tools/compare_runs.py BEFORE AFTER [ENTRY...]

Every file under BEFORE must be under AFTER and the reverse (under the ENTRY files and folders
only, when given); the folder locks (.ewnet-lock, holding a process id) and run-folder markers
(.ewnet-run, holding a random token) are passed over. Files are compared by what they hold, with
only the wall-clock figures left out (they differ from run to run by nature):
  .json          parsed; the members time_elapsed_s, seconds, seconds_per_epoch and
                 images_per_second are left out wherever they stand
  log.csv        the column time_elapsed_s left out
  .safetensors   every tensor (dtype, shape, bytes) bitwise; the metadata entry by entry, a JSON
                 entry parsed as above (a training history's per-epoch seconds too)
  .out .err      console text with the times left out (hh:mm:ss, "N s", "N images/s")
  anything else  bytes
Either folder's path, where a file names it, is read as "<RUN>", so runs written to two
folders compare. Prints one line per difference and exits 1 when there is any, 0 when none.
Used to show that a change of the code left the programs' results bitwise as they were.
"""
import json
import os
import re
import struct
import sys

TIME_KEYS = {"time_elapsed_s", "seconds", "seconds_per_epoch", "images_per_second"}
HISTORY_KEY = "ewnet.train.history"


def masked(value):
    """A parsed JSON value without its wall-clock members."""
    if isinstance(value, dict):
        return {k: "<time>" if k in TIME_KEYS else masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def masked_history(history):
    """A training history (History::to_json) without its times: per epoch [epoch, iteration,
    seconds, ...], the seconds third."""
    history = masked(history)
    for row in history.get("epochs", []):
        if len(row) > 2:
            row[2] = "<time>"
    return history


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    body = data[8 + size:]
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, t in header.items():
        start, end = t["data_offsets"]
        tensors[name] = (t["dtype"], tuple(t["shape"]), body[start:end])
    return meta, tensors


TIME_PATTERNS = [
    (re.compile(r"\d\d:\d\d:\d\d"), "<hh:mm:ss>"),
    (re.compile(r"\d+(\.\d+)? s\b"), "<N> s"),
    (re.compile(r"\d+ images/s"), "<N> images/s"),
]


def console(text):
    for pattern, replacement in TIME_PATTERNS:
        text = pattern.sub(replacement, text)
    return text.splitlines()


def first_difference(a, b, where=""):
    """Where two parsed values first differ ("" when equal)."""
    if type(a) is not type(b):
        return f"{where or 'value'}: {a!r} against {b!r}"
    if isinstance(a, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if k not in a or k not in b:
                return f"{where}.{k}: only in {'the first' if k in a else 'the second'}"
            d = first_difference(a[k], b[k], f"{where}.{k}")
            if d:
                return d
        if list(a) != list(b):
            return f"{where or 'object'}: members in another order"
        return ""
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{where or 'array'}: {len(a)} items against {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{where}[{i}]")
            if d:
                return d
        return ""
    return "" if a == b else f"{where or 'value'}: {a!r} against {b!r}"


class Comparison:
    def __init__(self, before, after):
        self.roots = (os.path.abspath(before), os.path.abspath(after))
        self.differences = []

    def text(self, side, path):
        with open(path, encoding="utf-8", errors="replace") as f:
            return self.unrooted(side, f.read())

    def unrooted(self, side, text):
        # Either folder's path: a run in one may read data another wrote.
        for root in sorted(self.roots, key=len, reverse=True):
            text = text.replace(root, "<RUN>")
        return text

    def differ(self, name, what):
        self.differences.append(f"{name}: {what}")

    def compare_json(self, name, a, b, history=False):
        fix = masked_history if history else masked
        d = first_difference(fix(json.loads(a)), fix(json.loads(b)))
        if d:
            self.differ(name, d)

    def compare_csv(self, name, a, b):
        rows = []
        for text in (a, b):
            lines = [line.split(",") for line in text.splitlines()]
            column = lines[0].index("time_elapsed_s") if lines and "time_elapsed_s" in lines[0] else -1
            rows.append([[c for i, c in enumerate(r) if i != column] for r in lines])
        if rows[0] != rows[1]:
            for i, (x, y) in enumerate(zip(*rows)):
                if x != y:
                    return self.differ(name, f"line {i + 1}: {','.join(x)} against {','.join(y)}")
            self.differ(name, f"{len(rows[0])} lines against {len(rows[1])}")

    def compare_safetensors(self, name, pa, pb):
        (ma, ta), (mb, tb) = read_safetensors(pa), read_safetensors(pb)
        if set(ta) != set(tb):
            self.differ(name, f"tensors only on one side: {sorted(set(ta) ^ set(tb))[:5]}")
        for t in sorted(set(ta) & set(tb)):
            if ta[t] != tb[t]:
                self.differ(name, f"tensor {t} differs (dtype, shape or bits)")
        if set(ma) != set(mb):
            self.differ(name, f"metadata only on one side: {sorted(set(ma) ^ set(mb))}")
        for k in sorted(set(ma) & set(mb)):
            a, b = self.unrooted(0, ma[k]), self.unrooted(1, mb[k])
            if a == b:
                continue
            try:
                self.compare_json(f"{name} metadata {k}", a, b, history=k == HISTORY_KEY)
            except json.JSONDecodeError:
                self.differ(name, f"metadata {k}: {a[:80]!r} against {b[:80]!r}")

    def compare_console(self, name, a, b):
        la, lb = console(a), console(b)
        for i, (x, y) in enumerate(zip(la, lb)):
            if x != y:
                return self.differ(name, f"line {i + 1}:\n    {x}\n    {y}")
        if len(la) != len(lb):
            self.differ(name, f"{len(la)} lines against {len(lb)}")

    def compare_file(self, rel):
        pa, pb = (os.path.join(root, rel) for root in self.roots)
        if rel.endswith(".safetensors"):
            return self.compare_safetensors(rel, pa, pb)
        with open(pa, "rb") as f:
            raw_a = f.read()
        with open(pb, "rb") as f:
            raw_b = f.read()
        if raw_a == raw_b:
            return
        a, b = self.text(0, pa), self.text(1, pb)
        if rel.endswith(".json"):
            self.compare_json(rel, a, b)
        elif os.path.basename(rel) == "log.csv":
            self.compare_csv(rel, a, b)
        elif rel.endswith((".out", ".err")):
            self.compare_console(rel, a, b)
        elif a != b:
            self.differ(rel, "contents differ")

    def run(self, entries):
        files = []
        for root in self.roots:
            found = set()
            for entry in entries or ["."]:
                top = os.path.join(root, entry)
                if os.path.isfile(top):
                    found.add(os.path.normpath(entry))
                for folder, _, names in os.walk(top):
                    for n in names:
                        if n not in (".ewnet-lock", ".ewnet-run"):
                            found.add(os.path.relpath(os.path.join(folder, n), root))
            files.append(found)
        for rel in sorted(files[0] ^ files[1]):
            self.differ(rel, f"only in {'the first' if rel in files[0] else 'the second'} folder")
        for rel in sorted(files[0] & files[1]):
            self.compare_file(rel)
        return len(files[0] | files[1])


def main(argv):
    if len(argv) < 3 or not all(os.path.isdir(d) for d in argv[1:3]):
        print("usage: " + __doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    c = Comparison(argv[1], argv[2])
    count = c.run(argv[3:])
    for d in c.differences:
        print(d)
    print(f"{count} files compared, {len(c.differences)} differences")
    return 1 if c.differences else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
