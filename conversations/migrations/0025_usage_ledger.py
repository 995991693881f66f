"""The usage ledger: one entry per billed call, which deleting a conversation never touches. Every reply
that already ended gets its entry (so no usage is lost), and the daily-usage view reads the ledger."""

from importlib import import_module

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


MESSAGE_VIEW = import_module("conversations.migrations.0016_reply_cost").DAILY_USAGE_VIEW_WITH_COST

BACKFILL = """
INSERT INTO conversations_usageentry (kind, owner_key, user_id, conversation_id, message_id, model,
    agent_slug, prompt_tokens, completion_tokens, total_tokens, cost, created_at)
SELECT 'reply', c.owner_key, c.user_id, m.conversation_id, m.id, m.model, m.agent_slug, m.prompt_tokens,
       m.completion_tokens, m.total_tokens, m.cost, COALESCE(m.finished_at, m.created_at)
FROM conversations_message m
JOIN conversations_conversation c ON c.id = m.conversation_id
WHERE m.role = 'assistant' AND m.status <> 'streaming'
"""

LEDGER_VIEW = """
CREATE VIEW conversations_dailyusage AS
SELECT row_number() OVER (ORDER BY date(u.created_at), u.owner_key, u.model) AS id,
       date(u.created_at) AS day,
       u.owner_key AS owner_key,
       u.user_id AS user_id,
       u.model AS model,
       sum(CASE WHEN u.kind = 'reply' THEN 1 ELSE 0 END) AS replies,
       coalesce(sum(u.prompt_tokens), 0) AS prompt_tokens,
       coalesce(sum(u.completion_tokens), 0) AS completion_tokens,
       coalesce(sum(u.total_tokens), 0) AS total_tokens,
       sum(u.cost) AS cost
FROM conversations_usageentry u
GROUP BY date(u.created_at), u.owner_key, u.user_id, u.model
"""

DROP_VIEW = "DROP VIEW conversations_dailyusage"


class Migration(migrations.Migration):

    dependencies = [
        ('conversations', '0024_share_tools_without_server'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='UsageEntry',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('reply', 'Reply'), ('title', 'Title'), ('ocr', 'Ocr')], max_length=16)),
                ('owner_key', models.CharField(help_text="The owner's namespace when it was billed.", max_length=80)),
                ('conversation_id', models.BigIntegerField(blank=True, help_text='Kept after it is deleted.', null=True)),
                ('message_id', models.BigIntegerField(blank=True, help_text="The reply, for a reply's entry.", null=True)),
                ('model', models.CharField(blank=True, max_length=200)),
                ('agent_slug', models.CharField(blank=True, max_length=64)),
                ('prompt_tokens', models.PositiveIntegerField(blank=True, null=True)),
                ('completion_tokens', models.PositiveIntegerField(blank=True, null=True)),
                ('total_tokens', models.PositiveIntegerField(blank=True, null=True)),
                ('pages', models.PositiveIntegerField(blank=True, help_text='The pages an OCR call read.', null=True)),
                ('cost', models.DecimalField(blank=True, decimal_places=8, help_text='USD.', max_digits=16, null=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'usage entry',
                'verbose_name_plural': 'usage entries',
                'indexes': [models.Index(fields=['owner_key', 'created_at'], name='usage_owner_created')],
                'constraints': [models.UniqueConstraint(condition=models.Q(('kind', 'reply')), fields=('message_id',), name='one_usage_entry_per_reply')],
            },
        ),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
        migrations.RunSQL(DROP_VIEW, MESSAGE_VIEW),
        migrations.RunSQL(LEDGER_VIEW, DROP_VIEW),
    ]
