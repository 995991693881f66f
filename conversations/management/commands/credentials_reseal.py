"""`manage.py credentials_reseal`: seal every stored MCP credential with the newest key (key rotation)."""

from django.core.management.base import BaseCommand, CommandError

from ...mcp.credentials import credentials_reseal
from ...mcp.sealing import SealBroken


class Command(BaseCommand):
    help = (
        "Seal all stored MCP credentials again with the first key of CHAT_CREDENTIALS_KEYS; run it after "
        "putting a new key first, then drop the old key."
    )

    def handle(self, *args, **options) -> None:
        try:
            presets, users = credentials_reseal()
        except SealBroken as exc:
            raise CommandError(f"{exc} Nothing was changed.") from exc
        self.stdout.write(
            f"Resealed the shared credentials of {presets} preset(s) and {users} user credential(s)."
        )
