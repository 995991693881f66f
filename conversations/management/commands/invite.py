"""`manage.py invite [--email E] [--group G ...] [--base-url URL]`: make an invitation; its link is printed
alone on the last line (and mailed to E when mail is configured), and shown nowhere again."""

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from ...accounts.invites import invite_create, mail_configured


class Command(BaseCommand):
    help = "Invite a colleague: a one-time link to make an account; the last line is the link."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--email", default="", help="Where to mail the link (when mail is configured).")
        parser.add_argument(
            "--group",
            action="append",
            default=[],
            metavar="NAME",
            help="A group the new account joins (repeat for more).",
        )
        parser.add_argument(
            "--base-url",
            default="",
            help="The chat's address, e.g. https://chat.example.com (default: CHAT_PUBLIC_URL).",
        )

    def handle(self, *args, **options) -> None:
        base_url = options["base_url"] or settings.CHAT_PUBLIC_URL
        if not base_url.startswith(("https://", "http://")):
            raise CommandError(
                "Set CHAT_PUBLIC_URL (or pass --base-url) to the chat's address, e.g. https://chat.example.com."
            )
        groups = list(Group.objects.filter(name__in=options["group"]))
        if missing := sorted(set(options["group"]) - {group.name for group in groups}):
            raise CommandError(f"No group named {', '.join(map(repr, missing))}.")
        try:
            made = invite_create(base_url=base_url, email=options["email"], groups=groups)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        if made.mailed:
            self.stdout.write(f"Mailed to {made.invite.email}.")
        elif made.invite.email:
            reason = (
                "mailing it failed" if mail_configured() else "mail is not configured (DJANGO_EMAIL_HOST)"
            )
            self.stdout.write(f"Not mailed: {reason}; pass the link on yourself.")
        expiry = f"{made.invite.expires_at:%Y-%m-%d %H:%M} UTC"
        self.stdout.write(
            f"Invitation {made.invite.pk}, for one account, until {expiry}. It is shown only now:"
        )
        self.stdout.write(made.link)
