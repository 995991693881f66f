"""Messages form threads: each follows a parent, and a conversation points at the leaf of its active branch.

Existing conversations were linear, so each message's parent is the one before it and the last one is the
current leaf. `threads_backfill` takes the models as arguments so a test can run it on today's models.
"""

import django.db.models.deletion
from django.db import migrations, models

BATCH_SIZE = 1000


def threads_backfill(conversation_model, message_model, *, batch_size=BATCH_SIZE):
    """Chain the messages of every conversation without a current leaf, in (created_at, id) order.

    One ordered pass over the messages; parents and leaves are written with bulk_update in batches, so
    memory stays bounded on a large table. Return how many conversations were chained.
    """
    rows = (
        message_model.objects.filter(conversation__current_message__isnull=True)
        .order_by("conversation_id", "created_at", "id")
        .values_list("id", "conversation_id")
    )
    messages, leaves = [], []
    conversation_id = previous_id = None
    chained = 0

    def leaf_add():
        nonlocal chained
        leaves.append(conversation_model(pk=conversation_id, current_message_id=previous_id))
        chained += 1
        if len(leaves) >= batch_size:
            conversation_model.objects.bulk_update(leaves, ["current_message"])
            leaves.clear()

    for message_id, owner_id in rows.iterator(chunk_size=batch_size):
        if owner_id != conversation_id:
            if conversation_id is not None:
                leaf_add()
            conversation_id, previous_id = owner_id, None
        messages.append(message_model(pk=message_id, parent_id=previous_id))
        previous_id = message_id
        if len(messages) >= batch_size:
            message_model.objects.bulk_update(messages, ["parent"])
            messages.clear()
    if conversation_id is not None:
        leaf_add()
    if messages:
        message_model.objects.bulk_update(messages, ["parent"])
    if leaves:
        conversation_model.objects.bulk_update(leaves, ["current_message"])
    return chained


def threads_fill(apps, schema_editor):
    threads_backfill(apps.get_model("conversations", "Conversation"), apps.get_model("conversations", "Message"))


class Migration(migrations.Migration):
    dependencies = [("conversations", "0006_lease_owner_is_an_instance_id")]

    operations = [
        migrations.AddField(
            model_name="conversation",
            name="current_message",
            field=models.ForeignKey(
                blank=True,
                help_text="The leaf of the active branch; unset, the newest message.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="conversations.message",
            ),
        ),
        migrations.AddField(
            model_name="message",
            name="parent",
            field=models.ForeignKey(
                blank=True,
                help_text="The message this one follows in its thread; its siblings share it.",
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="children",
                to="conversations.message",
            ),
        ),
        # Last: data written here leaves deferred FK checks pending, which a later ALTER TABLE would refuse.
        migrations.RunPython(threads_fill, migrations.RunPython.noop),
    ]
