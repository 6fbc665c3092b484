"""Workers: execute runs and report to the API (the only process that owns the database)."""
