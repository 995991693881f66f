"""Background jobs on Procrastinate's queue in Postgres, run by `manage.py chat_worker`: the policy they
share (`policy`), the periodic upkeep that was cron's (`periodic`), a dead worker's jobs given to another
(`stalled`), cancellation (`control`) and the worker itself (`worker`). A job calls features, and tells a
page of its progress through the relay's fan-out (`relay.outside`)."""
