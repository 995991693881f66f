"""Files in a conversation: the store, the checks and decoding of untrusted uploads (in a sandboxed
worker pool, with budgets), OCR, and the parts a request sends upstream."""
