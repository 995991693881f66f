"""Seed the three models of the original chat page; the admin edits them afterwards."""

from django.db import migrations

SEED_MODELS = [
    ("openai/gpt-5.1", "GPT-5.1", True, 10),
    ("anthropic/claude-opus-4-5-20251101", "Opus 4.5", False, 20),
    ("google/gemini-3-pro-preview", "Gemini 3", False, 30),
]


def seed_chat_models(apps, schema_editor):
    ChatModel = apps.get_model("conversations", "ChatModel")
    for name, label, is_default, position in SEED_MODELS:
        ChatModel.objects.get_or_create(
            name=name, defaults={"label": label, "is_default": is_default, "position": position}
        )


def unseed_chat_models(apps, schema_editor):
    ChatModel = apps.get_model("conversations", "ChatModel")
    ChatModel.objects.filter(name__in=[name for name, *_ in SEED_MODELS]).delete()


class Migration(migrations.Migration):
    dependencies = [("conversations", "0001_initial")]

    operations = [migrations.RunPython(seed_chat_models, unseed_chat_models)]
