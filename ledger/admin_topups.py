"""Admin for top-ups, webhook events and redemption-code batches."""
