"""A reply's streaming instance is `streamed_by`: "owner" names whoever owns a conversation."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("conversations", "0008_anonymous_session_keys_hashed")]

    operations = [
        migrations.RenameField(model_name="message", old_name="lease_owner", new_name="streamed_by"),
    ]
