"""An invitation mailed for real: `manage.py invite --email` in its own process, configured by the
environment (DJANGO_EMAIL_HOST, DJANGO_EMAIL_PORT, DJANGO_DEFAULT_FROM_EMAIL), sends its link over SMTP to
a mail server on loopback; a mail server that cannot be reached loses nothing but the mail."""

from __future__ import annotations

import email
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from email.message import Message

import pytest
from django.conf import settings
from django.test import Client

from conversations.models import Invite

from .processes import HOST, ROOT, free_port, server_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.subprocess]


class SmtpSink(socketserver.ThreadingTCPServer):
    """Just enough of an SMTP server to take mail (RFC 5321's commands, no extensions); keeps each
    message it receives."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__((HOST, 0), SmtpSession)
        self.received: list[Message] = []


class SmtpSession(socketserver.StreamRequestHandler):
    server: SmtpSink

    def reply(self, line: str) -> None:
        self.wfile.write(f"{line}\r\n".encode())

    def handle(self) -> None:
        self.reply("220 sink ready")
        while line := self.rfile.readline():
            verb = line.decode().strip().split(" ", 1)[0].upper()
            if verb == "DATA":
                self.reply("354 go on")
                body = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    body += chunk
                self.server.received.append(email.message_from_bytes(body))
                self.reply("250 kept")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:  # EHLO, HELO, MAIL, RCPT, RSET, NOOP
                self.reply("250 ok")


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    yield sink
    sink.shutdown()
    sink.server_close()


def invite_command(mail_port: int, *arguments: str) -> list[str]:
    """Run `manage.py invite` on the test database with mail at `mail_port`; its output's lines."""
    env = server_env(
        database_name=settings.DATABASES["default"]["NAME"],
        redis_url="",
        standin_url="http://127.0.0.1:9",
        DJANGO_EMAIL_HOST=HOST,
        DJANGO_EMAIL_PORT=str(mail_port),
        DJANGO_DEFAULT_FROM_EMAIL="chat@example.com",
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "invite", "--base-url", "https://chat.example.com", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()


def test_the_invite_command_mails_the_link_over_smtp(smtp_sink):
    lines = invite_command(smtp_sink.server_address[1], "--email", "xena@example.com")
    link = lines[-1]
    assert lines[0] == "Mailed to xena@example.com."
    (mail,) = smtp_sink.received
    assert mail["To"] == "xena@example.com"
    assert mail["From"] == "chat@example.com"
    assert mail["Subject"] == "Your invitation to Dedalus Chat"
    assert link in mail.get_payload(decode=True).decode()

    path = "/" + link.split("/", 3)[3]
    answer = Client().post(
        path, {"username": "xena", "password1": "a long pass phrase", "password2": "a long pass phrase"}
    )
    assert answer.status_code == 302
    assert Invite.objects.get().used_by.email == "xena@example.com"


def test_a_mail_server_out_of_reach_still_gives_the_link():
    lines = invite_command(free_port(), "--email", "yves@example.com")
    assert lines[0] == "Not mailed: mailing it failed; pass the link on yourself."
    assert lines[-1].startswith("https://chat.example.com/accounts/invite/")
    assert Invite.objects.get().email == "yves@example.com"
