"""Attachments count the bytes of their stored text in the quotas: a text file is kept twice (its file
and its `text`), a PDF keeps its text layer beside its file."""

from django.db import migrations, models

BATCH = 500


def text_bytes_fill(apps, schema_editor):
    attachment_model = apps.get_model("conversations", "Attachment")
    rows = attachment_model.objects.exclude(text="").only("pk", "text")
    for row in rows.iterator(chunk_size=BATCH):
        row.text_bytes = len(row.text.encode("utf-8", "surrogatepass"))
        row.save(update_fields=["text_bytes"])


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0022_conversation_title_source"),
    ]

    operations = [
        migrations.AddField(
            model_name="attachment",
            name="text_bytes",
            field=models.PositiveIntegerField(
                default=0,
                help_text="The UTF-8 bytes of `text`: stored too, so counted with `size` in the quotas.",
            ),
        ),
        migrations.RunPython(text_bytes_fill, migrations.RunPython.noop),
    ]
