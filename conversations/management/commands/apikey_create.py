"""`manage.py apikey_create USERNAME [--name NAME] [--expires-days N] [--scope ID ...]`: make an API key for
a user; the key is printed alone on the last line (scripts read it there), and shown nowhere again."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from ...apikeys.keys import api_key_create, expiry_from_days
from ...exceptions import ChatError


class Command(BaseCommand):
    help = "Make an API key for a user of the OpenAI-compatible API (/v1/); the last line is the key."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="What the key is for.")
        parser.add_argument("--expires-days", type=int, default=None, help="Days until it stops working.")
        parser.add_argument(
            "--scope",
            action="append",
            default=[],
            metavar="ID",
            help="An agent slug or model id the key may use (repeat for more); none: all the user may use.",
        )

    def handle(self, *args, **options) -> None:
        user = get_user_model()._default_manager.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user named {options['username']!r}.")
        try:
            row, key = api_key_create(
                user.pk,
                name=options["name"],
                expires_at=expiry_from_days(options["expires_days"]),
                scope=options["scope"],
            )
        except ChatError as exc:
            raise CommandError(exc.message) from exc
        expiry = f"expires {row.expires_at:%Y-%m-%d %H:%M} UTC" if row.expires_at else "never expires"
        self.stdout.write(f"API key {row.prefix}… for {user.get_username()}, {expiry}. It is shown only now:")
        self.stdout.write(key)
