"""``easel web``: the web gallery and live dashboard, a front end over the job layer (``jobs/``) and the queue.

Server-rendered (Starlette + Jinja2), live by server-sent events, with a little vanilla JS for selection. It never
imports ``workers/`` or ``bot/``: what it shares with them is in ``common/`` and ``jobs/``.
"""
