"""An organisation's side of the chat: groups that decide who may use which agent and model, and
budgets per group and per user, read from the usage ledger."""
