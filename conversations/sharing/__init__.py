"""Read-only links to a conversation's thread: the snapshot they show and how they are made, revoked
and continued."""
