"""`manage.py chat_worker`: the background-jobs worker. Run any number, on any machine that reaches the
database; each takes jobs as they come and the periodic upkeep once per period across them all."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations.jobs.worker import worker_run


class Command(BaseCommand):
    help = (
        "Run background jobs and the periodic upkeep (retention, attachments' clean-up, model catalog) "
        "until SIGTERM or Ctrl-C, which let running jobs finish within CHAT_WORKER_DRAIN_SECONDS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--concurrency", type=int, help="Jobs run at once (default: CHAT_WORKER_CONCURRENCY)."
        )

    def handle(self, *args: object, concurrency: int | None, **options: object) -> None:
        concurrency = settings.CHAT_WORKER_CONCURRENCY if concurrency is None else concurrency
        if concurrency < 1:
            raise CommandError("--concurrency must be at least 1.")
        worker_run(concurrency=concurrency)
