"""The three seeded models think: say so in their capabilities, so a fresh install offers their reasoning
effort before its catalog is synced (a sync writes what the API says over it)."""

from django.db import migrations

SEEDED_THINKERS = ("openai/gpt-5.1", "anthropic/claude-opus-4-5-20251101", "google/gemini-3-pro-preview")


def seeded_models_think(apps, schema_editor):
    ChatModel = apps.get_model("conversations", "ChatModel")
    for model in ChatModel.objects.filter(name__in=SEEDED_THINKERS):
        if "thinking" not in (model.capabilities or {}):
            model.capabilities = {**(model.capabilities or {}), "thinking": True}
            model.save(update_fields=["capabilities"])


class Migration(migrations.Migration):
    dependencies = [("conversations", "0028_message_reasoning")]

    operations = [migrations.RunPython(seeded_models_think, migrations.RunPython.noop)]
