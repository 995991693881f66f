"""A reply's cost, and the daily-usage view summing it."""

from django.db import migrations, models

from ._usage_view import DAILY_USAGE_VIEW, around_usage_view

DAILY_USAGE_VIEW_WITH_COST = """
CREATE VIEW conversations_dailyusage AS
SELECT row_number() OVER (ORDER BY date(m.created_at), c.owner_key, m.model) AS id,
       date(m.created_at) AS day,
       c.owner_key AS owner_key,
       c.user_id AS user_id,
       m.model AS model,
       count(*) AS replies,
       coalesce(sum(m.prompt_tokens), 0) AS prompt_tokens,
       coalesce(sum(m.completion_tokens), 0) AS completion_tokens,
       coalesce(sum(m.total_tokens), 0) AS total_tokens,
       sum(m.cost) AS cost
FROM conversations_message m
JOIN conversations_conversation c ON c.id = m.conversation_id
WHERE m.role = 'assistant'
GROUP BY date(m.created_at), c.owner_key, c.user_id, m.model
"""


class Migration(migrations.Migration):

    dependencies = [
        ("conversations", "0015_mcp_credentials"),
    ]

    operations = around_usage_view(
        migrations.AddField(
            model_name="message",
            name="cost",
            field=models.DecimalField(
                blank=True,
                decimal_places=8,
                help_text="USD, from its tokens and its model's catalog prices when it ended (empty: unpriced).",
                max_digits=16,
                null=True,
            ),
        ),
        before=DAILY_USAGE_VIEW,
        after=DAILY_USAGE_VIEW_WITH_COST,
    )
