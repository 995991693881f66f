"""Shares taken before a tool's MCP server was left out of snapshots: drop it from their tool activity
(its URL may carry a token). The shared page filters at read time too; this clears what is stored."""

from django.db import migrations

# The fields a shared tool activity keeps (shares.SHARED_TOOL_FIELDS when this was written).
KEPT = ("phase", "name", "arguments", "result", "is_error", "duration_ms")


def tool_servers_drop(apps, schema_editor):
    Share = apps.get_model("conversations", "Share")
    for share in Share.objects.only("pk", "messages").iterator(chunk_size=100):
        messages = [
            {
                **message,
                "tools": [
                    {key: value for key, value in activity.items() if key in KEPT}
                    for activity in message.get("tools") or []
                ],
            }
            for message in share.messages
        ]
        if messages != share.messages:
            Share.objects.filter(pk=share.pk).update(messages=messages)


class Migration(migrations.Migration):
    dependencies = [("conversations", "0023_attachment_text_bytes")]

    operations = [migrations.RunPython(tool_servers_drop, migrations.RunPython.noop)]
