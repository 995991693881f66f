"""Child processes for the tests and the bench: the stand-in, instances of the app (Daphne, runserver), a
private Redis and nginx with deploy/nginx.conf, each on a free port with its output in a log file.

Plain Python (no Django, no pytest): the bench imports it too (`import tests.processes` from the
repository root).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Self

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
DAPHNE = Path(sys.executable).with_name("daphne")
NGINX = Path("/usr/sbin/nginx")
NGINX_SITE = ROOT / "deploy" / "nginx.conf"
# scripts/serve.sh's Daphne flags (the production command), for instances behind nginx.
SERVE_FLAGS = (
    *("--proxy-headers", "--ping-interval", "20", "--ping-timeout", "30"),
    *("--websocket_timeout", "86400", "--websocket_connect_timeout", "5"),
    *("--http-timeout", "60", "--application-close-timeout", "10", "-v", "1"),
)
STANDIN_READY = "standin listening on "


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def proc_status_kib(pid: int, field: str) -> int:
    """A memory figure of a running process from /proc/<pid>/status, in KiB (`VmRSS`, `VmHWM`: its peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(f"no {field} in /proc/{pid}/status")


class Process(subprocess.Popen[bytes]):
    """A child process leading a session of its own, its stdout and stderr appended to `log` (stdout may
    be a pipe instead), so that stop() ends it and whatever it started."""

    def __init__(
        self,
        argv: Sequence[str | Path],
        log: Path,
        *,
        name: str = "",
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
        stdout: int | None = None,
    ) -> None:
        self.log = log
        self.name = name or Path(argv[0]).name
        self.parent = os.getpid()
        self.terminated = False
        with log.open("ab") as output:
            super().__init__(
                [str(arg) for arg in argv],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output if stdout is None else stdout,
                stderr=output,
                start_new_session=True,
            )
        RUNNING.add(self)

    def tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""

    def _group_signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def terminate_group(self) -> None:
        """SIGTERM to its process group, once: a second would cut a graceful shutdown short."""
        if not self.terminated and self.poll() is None:
            self.terminated = True
            self._group_signal(signal.SIGTERM)

    def stop(self, wait: float = 10) -> None:
        """SIGTERM to its process group, and SIGKILL if it has not exited after `wait` seconds. When it had
        already exited, SIGKILL to whatever it left in its group."""
        if self.poll() is None:
            self.terminate_group()
            try:
                self.wait(wait)
            except subprocess.TimeoutExpired:
                self._group_signal(signal.SIGKILL)
                self.wait()
        else:
            self._group_signal(signal.SIGKILL)
        if self.stdout is not None:
            self.stdout.close()
        RUNNING.discard(self)


RUNNING: set[Process] = set()


def processes_stop(wait: float = 3) -> None:
    """Stop every process this process started that is not stopped yet (on the way out, whatever
    happened: they lead sessions of their own, so nothing else would end them)."""
    for process in list(RUNNING):
        if process.parent == os.getpid():  # not a forked copy's
            with contextlib.suppress(Exception):
                process.stop(wait)


atexit.register(processes_stop)


def port_wait(port: int, process: Process, timeout: float = 30) -> None:
    """Return once something accepts on `port`; fail with the process's log if it exits first or if
    nothing accepts within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.name} exited with {process.returncode}:\n{process.tail()}")
        with socket.socket() as sock:
            if sock.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(
        f"{process.name}: nothing accepted on port {port} within {timeout:g} s:\n{process.tail()}"
    )


def standin_start(*args: str, log: Path, timeout: float = 30) -> tuple[Process, str]:
    """`python -m standin` with `args`, on a port it picks; return the process and its base
    URL, from the line it prints once its socket is bound."""
    argv = [sys.executable, "-m", "standin", "--host", HOST, "--port", "0", *args]
    process = Process(argv, log, name="standin", stdout=subprocess.PIPE)
    assert process.stdout is not None
    output = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in output:
        left = deadline - time.monotonic()
        ready = left > 0 and select.select([process.stdout], [], [], left)[0]
        chunk = os.read(process.stdout.fileno(), 4096) if ready else b""
        if not chunk:  # no line in time, or it exited
            process.stop()
            raise RuntimeError(f"the stand-in did not start within {timeout:g} s:\n{process.tail()}")
        output += chunk
    line = output.split(b"\n", 1)[0].decode(errors="replace")
    if not line.startswith(STANDIN_READY):
        process.stop()
        raise RuntimeError(f"unexpected stand-in output: {line!r}")
    return process, line.removeprefix(STANDIN_READY).strip()


class Server:
    """A process that serves on a port of its own, its output in `<log_dir>/<name>.log` (appended to when
    it is started again, on the same port)."""

    start_timeout: ClassVar[float] = 30
    stop_wait: ClassVar[float] = 10

    def __init__(
        self,
        name: str,
        log_dir: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
        port: int | None = None,
    ) -> None:
        self.name, self.log_dir, self.env, self.cwd = name, log_dir, env, cwd
        self.port = port or free_port()
        self.proc: Process | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    @property
    def log(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def launch(self) -> Self:
        """Start the process without waiting for its port (several servers can then start at once)."""
        if self.proc is not None:
            self.proc.stop()
        self.proc = Process(self.command(), self.log, name=self.name, env=self.env, cwd=self.cwd)
        return self

    def start(self, timeout: float | None = None) -> Self:
        """Launch the process unless it runs, and wait until its port accepts; one that does not in time
        is stopped."""
        if self.proc is None or self.proc.poll() is not None:
            self.launch()
        assert self.proc is not None
        try:
            port_wait(self.port, self.proc, self.start_timeout if timeout is None else timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(self.stop_wait)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def servers_start(servers: Sequence[Server]) -> None:
    """Start several servers at once (each imports its app while the others do); if one does not come up,
    stop them all."""
    for server in servers:
        server.launch()
    try:
        for server in servers:
            server.start()
    except BaseException:
        servers_stop(servers)
        raise


def servers_stop(servers: Sequence[Server]) -> None:
    """Stop several servers, their shutdowns running at the same time."""
    for server in servers:
        if server.proc is not None:
            server.proc.terminate_group()
    for server in servers:
        server.stop()


class HttpServer(Server):
    """A server of HTTP and WebSockets: the app, or nginx in front of it."""

    @property
    def origin(self) -> str:
        return f"http://{HOST}:{self.port}"

    def url(self, path: str = "") -> str:
        return self.origin + path

    def ws_url(self, session_id: str) -> str:
        """The chat page's socket of a conversation."""
        return self.url(f"/ws/chat/{session_id}/")


class DaphneServer(HttpServer):
    """One instance of the app (`daphne chatproject.asgi:application`), from `cwd` (another checkout of
    this project runs the same way), with our venv's Daphne."""

    stop_wait = 15

    def __init__(
        self, name: str, env: dict[str, str], log_dir: Path, *, flags: Sequence[str] = (), cwd: Path = ROOT
    ) -> None:
        super().__init__(name, log_dir, env=env, cwd=cwd)
        self.flags = list(flags)

    def command(self) -> list[str]:
        return [str(DAPHNE), "-b", HOST, "-p", str(self.port), *self.flags, "chatproject.asgi:application"]


class RunServer(HttpServer):
    """The app under `manage.py runserver`, without its autoreloader unless `reloader` (as `make run`)."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path, *, reloader: bool = False) -> None:
        super().__init__(name, log_dir, env=env)
        self.reloader = reloader

    def command(self) -> list[str]:
        reload = [] if self.reloader else ["--noreload"]
        return [sys.executable, "manage.py", "runserver", f"{HOST}:{self.port}", *reload]

    def interrupt(self) -> None:
        """Ctrl-C in its terminal: SIGINT to its whole process group (with the reloader, parent and child)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGINT)


class JobWorker(Server):
    """`manage.py chat_worker`, started once it takes jobs (it serves no port)."""

    READY = "Starting worker on"

    def command(self) -> list[str]:
        return [sys.executable, "manage.py", "chat_worker"]

    def start(self, timeout: float | None = None) -> Self:
        if self.proc is None or self.proc.poll() is not None:
            self.launch()
        assert self.proc is not None
        deadline = time.monotonic() + (self.start_timeout if timeout is None else timeout)
        while self.READY not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start taking jobs:\n{self.proc.tail()}")
            time.sleep(0.05)
        return self


def server_env(*, database_name: str, redis_url: str, standin_url: str, **extra: str) -> dict[str, str]:
    """The environment of a test's instance on the test database, a Redis and the stand-in."""
    database_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/chat")
    base = database_url.rsplit("/", 1)[0]
    return {
        **os.environ,
        "DATABASE_URL": f"{base}/{database_name}",
        "REDIS_URL": redis_url,
        "DEDALUS_BASE_URL": standin_url,
        "DEDALUS_AS_URL": standin_url,
        "DEDALUS_API_KEY": "test-key",
        "DJANGO_SECRET_KEY": "test-only-secret-key-not-for-production",
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CHAT_LOG_LEVEL": "INFO",
        "CHAT_DB_POOL_MAX": "8",
        **extra,
    }


class RedisServer(Server):
    """A private redis-server without persistence, which a test can stop and start again on its port."""

    def __init__(self, log_dir: Path) -> None:
        port = free_port()
        super().__init__(f"redis-{port}", log_dir, port=port)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def command(self) -> list[str]:
        return ["redis-server", "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no"]


class MotoServer(Server):
    """A real S3-compatible server for the attachment storage (moto in server mode), in memory."""

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)]


class Nginx(HttpServer):
    """nginx in the foreground, in a prefix of its own, with deploy/nginx.conf itself as the site: its
    upstream `server` lines replaced by one per port of `upstream_ports` (same options), its `listen` and
    `access_log` swapped for this one's. `nofile` raises the workers' open-files limit."""

    start_timeout = 10

    def __init__(
        self,
        prefix: Path,
        upstream_ports: Sequence[int],
        *,
        binary: Path = NGINX,
        worker_connections: int = 256,
        nofile: int | None = None,
    ) -> None:
        super().__init__("nginx", prefix, cwd=prefix)
        self.prefix, self.upstream_ports, self.binary = prefix, list(upstream_ports), binary
        self.worker_connections, self.nofile = worker_connections, nofile

    @property
    def access_log(self) -> Path:
        return self.prefix / "access.log"

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    def site(self) -> str:
        site = NGINX_SITE.read_text()
        servers = re.findall(
            r"^([ \t]*)server 127\.0\.0\.1:(800[12])( [^;\n]*)?;[ \t]*\n", site, re.MULTILINE
        )
        if [server[1] for server in servers] != ["8001", "8002"]:
            raise RuntimeError(f"{NGINX_SITE}: expected the upstream lines for ports 8001 and 8002")
        indent, _, options = servers[0]
        lines = "".join(f"{indent}server 127.0.0.1:{port}{options};\n" for port in self.upstream_ports)
        first = re.compile(r"^[ \t]*server 127\.0\.0\.1:8001[^;\n]*;[ \t]*\n", re.MULTILINE)
        second = re.compile(r"^[ \t]*server 127\.0\.0\.1:8002[^;\n]*;[ \t]*\n", re.MULTILINE)
        site = second.sub("", first.sub(lambda _: lines, site, count=1), count=1)
        for old, new in (
            ("    listen 80;", f"    listen {HOST}:{self.port};"),
            ("access_log /var/log/nginx/chat.access.log chat;", f"access_log {self.access_log} chat;"),
        ):
            if site.count(old) != 1:
                raise RuntimeError(f"{NGINX_SITE} should contain {old!r} exactly once")
            site = site.replace(old, new)
        return site

    def configure(self) -> None:
        (self.prefix / "chat.conf").write_text(self.site())
        temp = self.prefix / "temp"
        temp.mkdir(exist_ok=True)  # nginx makes the temp directories, not their parent
        kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        main = [
            "user root;" if os.geteuid() == 0 else "",  # root's workers would be `nobody`
            "worker_processes 1;",
            f"worker_rlimit_nofile {self.nofile};" if self.nofile else "",
            f"pid {self.prefix / 'nginx.pid'};",
            f"error_log {self.log} info;",
            f"events {{ worker_connections {self.worker_connections}; }}",
            "http {",
            *(f"    {kind}_temp_path {temp / kind};" for kind in kinds),
            f"    access_log {self.access_log};",
            f"    include {self.prefix / 'chat.conf'};",
            "}",
            "",
        ]
        self.conf.write_text("\n".join(main))

    def command(self) -> list[str]:
        files = ["-p", str(self.prefix), "-c", str(self.conf), "-e", str(self.log)]
        return [str(self.binary), *files, "-g", "daemon off;"]

    def launch(self) -> Self:
        if not self.binary.exists():
            raise RuntimeError(f"nginx not found at {self.binary} (apt-get install nginx)")
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.configure()
        return super().launch()

    def access_lines(self, needle: str) -> list[str]:
        if not self.access_log.exists():
            return []
        return [line for line in self.access_log.read_text().splitlines() if needle in line]
