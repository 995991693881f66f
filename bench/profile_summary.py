"""Summarise a py-spy raw (collapsed-stack) profile: top functions by self time, by inclusive time,
and self time per package.

usage: .venv/bin/python bench/profile_summary.py PROFILE.txt [--top 25]
(`python -m bench --py-spy PATH` writes PROFILE.txt files under bench/results/logs/<timestamp>/.)
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

FRAME_RE = re.compile(r"^(?P<func>.*) \((?P<file>[^():]+)(?::(?P<line>\d+))?\)$")


def frame_key(frame: str, *, with_line: bool = False) -> str:
    match = FRAME_RE.match(frame)
    if not match:
        return frame
    where = match["file"] + (f":{match['line']}" if with_line and match["line"] else "")
    return f"{match['func']} ({where})"


def package(frame: str) -> str:
    match = FRAME_RE.match(frame)
    if not match:
        return "?"
    path = match["file"]
    return path.split("/", 1)[0] if "/" in path else path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    with open(args.profile, encoding="utf-8", errors="replace") as f:
        for raw in f:
            stack, _, count = raw.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = stack.split(";")
            total += n
            self_time[frame_key(frames[-1], with_line=True)] += n
            packages[package(frames[-1])] += n
            for key in {frame_key(fr) for fr in frames}:
                inclusive[key] += n

    def show(title: str, counter: Counter[str]) -> None:
        print(f"\n{title}")
        for key, n in counter.most_common(args.top):
            print(f"  {100 * n / total:5.1f}%  {key}")

    print(f"{total} samples")
    show("self time by package (leaf frame's top-level module)", packages)
    show("self time by function", self_time)
    show("inclusive time by function", inclusive)


if __name__ == "__main__":
    main()
