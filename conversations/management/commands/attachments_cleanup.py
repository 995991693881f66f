"""`manage.py attachments_cleanup`: remove uploads never sent, rows without files and files without rows."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from conversations.attachments.store import attachments_cleanup


class Command(BaseCommand):
    help = (
        "Remove attachments uploaded but never sent (older than --hours, default "
        "CHAT_ATTACHMENT_UNSENT_HOURS), rows whose file is gone and files no row names; report what it did."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--hours", type=float, help="Age of an unsent upload that is removed.")
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be removed.")

    def handle(self, *args: object, hours: float | None, dry_run: bool, **options: object) -> None:
        hours = settings.CHAT_ATTACHMENT_UNSENT_HOURS if hours is None else hours
        report = attachments_cleanup(unsent_hours=hours, dry_run=dry_run)
        verb = "would remove" if dry_run else "removed"
        failed = (
            f" ({report['not_deleted']} not deleted: the storage failed)" if report["not_deleted"] else ""
        )
        self.stdout.write(
            f"{verb} {report['unsent']} upload(s) never sent in {hours:g} h, "
            f"{report['rows_without_files']} row(s) without a file, "
            f"{report['files_without_rows']} file(s) without a row{failed}"
        )
