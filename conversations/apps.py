from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = "Conversations"

    def ready(self) -> None:
        # Register the system checks, the sign-in hand-over and the sign-out's end of sockets.
        from . import checks  # noqa: F401
        from .accounts import handover  # noqa: F401
        from .relay import (
            cluster,
            instance,
            logouts,  # noqa: F401
        )

        instance.hooks_install(cluster.HOOKS)
