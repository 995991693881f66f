from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = "Conversations"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .relay import cluster, instance

        instance.hooks_install(cluster.HOOKS)
