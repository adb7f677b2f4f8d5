"""Real-service helpers for tests (Redis, Dovecot IMAP, Chromium)."""
