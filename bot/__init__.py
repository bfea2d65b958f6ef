"""The Discord front end (discord.py). It talks to Easel only through ``common`` (EaselClient, events, models)."""
