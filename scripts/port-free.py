"""Exit 0 when HOST:PORT (the first argument) can be listened on, 1 when something holds it."""

import socket
import sys

host, _, port = sys.argv[1].rpartition(":")
host = host.strip("[]") or "127.0.0.1"
family = socket.AF_INET6 if ":" in host else socket.AF_INET
with socket.socket(family, socket.SOCK_STREAM) as probe:
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is free
    try:
        probe.bind((host, int(port)))
    except OSError:
        sys.exit(1)
