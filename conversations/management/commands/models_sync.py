from django.core.management.base import BaseCommand, CommandError

from conversations.agents.catalog import CatalogUnavailable, catalog_fetch, catalog_sync


class Command(BaseCommand):
    help = (
        "Read the Dedalus API's model list (GET /v1/models) into the chat models: capabilities, token limits "
        "and prices. New models are added disabled; models no longer listed are marked unlisted."
    )

    def handle(self, *args: object, **options: object) -> None:
        try:
            result = catalog_sync(catalog_fetch())
        except CatalogUnavailable as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"{len(result.updated)} model(s) updated, {len(result.added)} added (disabled): "
            f"{', '.join(result.added) or 'none'}; no longer listed: {', '.join(result.unlisted) or 'none'}"
        )
