"""Anonymous session keys are bearer credentials: rows keep only their keyed digest (see owners.py).

The digest depends on SECRET_KEY, so this migration must run with the SECRET_KEY the server runs with.
It cannot be reversed: a digest does not give the key back, so going back leaves anonymous
conversations under owner keys the old code does not find.
"""

from django.db import migrations, models
from django.db.models import Q

# The live function, not a frozen copy: the rows must carry exactly the digest the server computes.
from conversations.owners import session_key_digest

BATCH_SIZE = 500


def session_keys_hash(apps, schema_editor):
    Conversation = apps.get_model("conversations", "Conversation")
    anonymous = Conversation.objects.filter(Q(owner_key__startswith="s:") | ~Q(owner_session_key=""))
    last_pk = 0
    while batch := list(anonymous.filter(pk__gt=last_pk).order_by("pk")[:BATCH_SIZE]):
        for conversation in batch:
            if conversation.owner_key.startswith("s:"):
                conversation.owner_key = f"s:{session_key_digest(conversation.owner_key[2:])}"
            if conversation.owner_session_key:
                conversation.owner_session_key = session_key_digest(conversation.owner_session_key)
        Conversation.objects.bulk_update(batch, ["owner_key", "owner_session_key"])
        last_pk = batch[-1].pk


class Migration(migrations.Migration):
    dependencies = [("conversations", "0007_message_threads_and_branches")]

    operations = [
        migrations.AlterField(
            model_name="conversation",
            name="owner_key",
            field=models.CharField(
                help_text="The owner's namespace: u:<user id>, s:<digest of the browser session key> or public.",
                max_length=80,
            ),
        ),
        migrations.AlterField(
            model_name="conversation",
            name="owner_session_key",
            field=models.CharField(
                blank=True,
                db_index=True,
                help_text="The digest of the anonymous browser session that owns it (never the key itself).",
                max_length=64,
            ),
        ),
        migrations.RunPython(session_keys_hash, migrations.RunPython.noop),
    ]
