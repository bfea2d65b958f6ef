"""The job layer of the front ends (the bot, the CLI, the web): what users do with whole jobs, over a durable store.

It serves front ends only: ``workers/`` and ``common/`` never import it.
"""
