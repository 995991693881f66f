"""Conversations move into per-owner namespaces: (owner_key, session_id) is unique, session_id alone not."""

from django.db import migrations, models


def owner_keys_fill(apps, schema_editor):
    Conversation = apps.get_model("conversations", "Conversation")
    for conversation in Conversation.objects.all().iterator():
        if conversation.user_id is not None:
            conversation.owner_key = f"u:{conversation.user_id}"
        elif conversation.owner_session_key:
            conversation.owner_key = f"s:{conversation.owner_session_key}"
        else:
            conversation.owner_key = "public"
        conversation.save(update_fields=["owner_key"])


class Migration(migrations.Migration):
    dependencies = [("conversations", "0003_reply_leases_and_client_ids")]

    operations = [
        migrations.AddField(
            model_name="conversation",
            name="owner_key",
            field=models.CharField(
                default="public",
                help_text="The owner's namespace: u:<user id>, s:<browser session key> or public.",
                max_length=80,
            ),
            preserve_default=False,
        ),
        migrations.RunPython(owner_keys_fill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="conversation",
            name="session_id",
            field=models.CharField(help_text="The id in the page and socket URL.", max_length=64),
        ),
        migrations.AddConstraint(
            model_name="conversation",
            constraint=models.UniqueConstraint(
                fields=("owner_key", "session_id"), name="one_conversation_per_owner_and_id"
            ),
        ),
    ]
