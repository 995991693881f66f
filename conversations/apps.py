from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = "Conversations"

    def ready(self) -> None:
        from . import checks, handover  # noqa: F401  (register the system checks and the sign-in hand-over)
        from .relay import cluster, instance

        instance.hooks_install(cluster.HOOKS)
