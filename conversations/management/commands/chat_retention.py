from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations.chat.upkeep import conversations_purge


class Command(BaseCommand):
    help = (
        "Delete conversations (with their messages) untouched for N days, in batches; safe while the server "
        "serves. N comes from --days or CHAT_RETENTION_DAYS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, help="Age in days (default: CHAT_RETENTION_DAYS).")
        parser.add_argument("--batch-size", type=int, default=500, help="Conversations per transaction.")
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be deleted.")

    def handle(
        self, *args: object, days: int | None, batch_size: int, dry_run: bool, **options: object
    ) -> None:
        days = days if days is not None else settings.CHAT_RETENTION_DAYS
        if not days or days < 1:
            raise CommandError("Give --days N (N >= 1) or set CHAT_RETENTION_DAYS.")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        count = conversations_purge(older_than_days=days, batch_size=batch_size, dry_run=dry_run)
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(f"{verb} {count} conversation(s) untouched for {days} day(s)")
