"""The chat models the data migration seeds, put back after a test's flush or truncation removed them."""

from __future__ import annotations

import importlib

from conversations.models import ChatModel

SEED_MODELS = importlib.import_module("conversations.migrations.0002_seed_chat_models").SEED_MODELS


def chat_models_seed() -> None:
    """Create each seeded model that is missing, as the migration left it."""
    for name, label, is_default, position in SEED_MODELS:
        ChatModel.objects.get_or_create(
            name=name, defaults={"label": label, "is_default": is_default, "position": position}
        )
