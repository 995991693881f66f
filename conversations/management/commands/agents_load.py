from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations.agents.definitions import AgentFileError, agents_load, agents_parse


class Command(BaseCommand):
    help = (
        'Create or update agents from a YAML or JSON file {"agents": [{"slug", "name", "description", '
        '"instructions", "models", "settings", "mcp_servers", "default", "groups"}]}, by slug. The whole '
        "file loads, or nothing changes and every problem of the file is listed, each with its agent and "
        "field."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="The YAML or JSON file of agents.")

    def handle(self, *args: object, file: Path, **options: object) -> None:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from exc
        try:
            created, updated = agents_load(agents_parse(text))
        except AgentFileError as exc:
            if len(exc.problems) == 1:
                raise CommandError(f"{file}: {exc.problems[0]} Nothing was changed.") from exc
            listed = "\n".join(f"  - {problem}" for problem in exc.problems)
            raise CommandError(
                f"{file}: {len(exc.problems)} problems. Nothing was changed.\n{listed}"
            ) from exc
        self.stdout.write(f"{file}: {created} agent(s) created, {updated} updated")
