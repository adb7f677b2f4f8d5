"""Getting results out of the service: webhooks, the read API and offline conversions."""
