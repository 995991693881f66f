from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("conversations", "0030_api_keys")]

    operations = [
        migrations.AddField(
            model_name="conversation",
            name="source",
            field=models.CharField(
                choices=[("page", "Page"), ("api", "Api")],
                default="page",
                help_text="Where its turns come from: the chat page or the OpenAI-compatible API.",
                max_length=8,
            ),
        ),
    ]
