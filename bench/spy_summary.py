"""Summarise py-spy's collapsed stacks (`py-spy record --format raw`, as `bench/webhook.py --py-spy` writes):
the share of samples in which each function, or each module, is on the stack (inclusive), top first.

    .venv/bin/python bench/spy_summary.py /tmp/spy/plain-bot-*.txt [--top 40] [--modules]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def frames(stack: str) -> list[tuple[str, str]]:
    out = []
    for part in stack.split(";"):
        m = _FRAME.match(part.strip())
        if m:
            out.append((m["func"], m["file"]))
        else:
            out.append((part.strip(), ""))
    return out


def module_of(file: str) -> str:
    for marker in ("site-packages/", "lib/python3.11/", "/webperf/", "/wt/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    parts = file.split("/")
    return "/".join(parts[:2]) if len(parts) > 1 else parts[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--modules", action="store_true", help="group by module (package/first folder)")
    args = ap.parse_args()
    total, seen = 0, Counter[str]()
    for name in args.files:
        with open(name) as fh:
            for line in fh:
                stack, _, count = line.rstrip("\n").rpartition(" ")
                if not count.isdigit():
                    continue
                n = int(count)
                total += n
                keys = {module_of(f) if args.modules else f"{func} ({module_of(f)})" for func, f in frames(stack)}
                for key in keys:
                    seen[key] += n
    print(f"{total} samples")
    for key, n in seen.most_common(args.top):
        print(f"{100 * n / total:5.1f}%  {key}")


if __name__ == "__main__":
    main()
