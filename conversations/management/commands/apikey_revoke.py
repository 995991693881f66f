"""`manage.py apikey_revoke KEY_OR_PREFIX`: revoke an API key, named by the key or by its prefix as the
page and the admin show it; it stops working at once on every instance."""

from django.core.management.base import BaseCommand, CommandError

from ...apikeys.keys import api_key_find, api_keys_revoke
from ...models import ApiKey


class Command(BaseCommand):
    help = "Revoke an API key, named by the whole key or by its prefix (dck_ and 8 characters)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("key_or_prefix")

    def handle(self, *args, **options) -> None:
        row = api_key_find(options["key_or_prefix"])
        if row is None:
            raise CommandError("No API key by that key or prefix.")
        if not api_keys_revoke(ApiKey.objects.filter(pk=row.pk)):
            self.stdout.write(f"API key {row.prefix}… was already revoked.")
            return
        self.stdout.write(f"Revoked API key {row.prefix}… of {row.user.get_username()}.")
