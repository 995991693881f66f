"""Relay benchmark: our server beside the seed and the bare relay, against the same local stand-in.

Run it as `.venv/bin/python -m bench` from the repository root (see bench/README.md):

    servers.py    what runs: ours (Daphne), --before's checkout, the seed, the bare relay, nginx
    load.py       the WebSocket clients: stamped messages, every token checked and timed
    probes.py     CPU and memory from /proc, the bench database's counters, the servers' logs
    scenarios.py  the scenarios and the one runner every configuration of each goes through
    report.py     the tables and the lines under them
    __main__.py   the command line
"""

from __future__ import annotations

import sys


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
