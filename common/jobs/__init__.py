"""The job service: what users do with whole jobs (submit, follow, curate, export), over the durable store."""
