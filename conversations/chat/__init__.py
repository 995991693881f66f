"""The conversation itself, free of any transport: turns and their admission (quotas), replies as
stored, thread shapes, reads for the page (selectors), upkeep (rename, pin, delete, retention), titles and
feedback. Nothing here imports the relay, the web views or the consumer."""
