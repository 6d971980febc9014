#!/usr/bin/env python3
"""extract_example.py DOC NAME OUT: writes to OUT the C++ block of DOC that follows the line
<!-- compiled by tests/docs: NAME -->, as written, with a #line directive so that a compiler error
points into DOC. Exits 1 naming DOC and NAME when there is no such block."""
import os
import sys


def main(doc, name, out):
    with open(doc, encoding="utf-8") as f:
        lines = f.read().split("\n")
    marker = f"<!-- compiled by tests/docs: {name} -->"
    for i, line in enumerate(lines):
        if line.strip() != marker:
            continue
        if i + 1 >= len(lines) or lines[i + 1].strip() != "```cpp":
            break
        end = next((j for j in range(i + 2, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            break
        code = "\n".join(lines[i + 2:end]) + "\n"
        text = f'#line {i + 3} "{os.path.abspath(doc)}"\n' + code
        # Written only when it changes, so an unchanged document rebuilds nothing.
        if os.path.exists(out):
            with open(out, encoding="utf-8") as f:
                if f.read() == text:
                    return 0
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
        return 0
    print(f"{doc}: no ```cpp block after '{marker}'", file=sys.stderr)
    return 1


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
