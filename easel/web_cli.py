"""``easel web [--local] [--host H] [--port P]``: the web gallery and live dashboard (see web/)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from common.settings import Settings


def add_web_command(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                    add_redis_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    web = commands.add_parser("web", help="serve the web gallery: jobs, curation, the queue and the workers")
    add_redis_flags(web)
    web.add_argument("--local", action="store_true",
                     help="for one person on this machine: bind 127.0.0.1 and print a one-time login link")
    web.add_argument("--host", help="address to listen on (default: $EASEL_WEB_HOST or 127.0.0.1)")
    web.add_argument("--port", type=int, help="port to listen on (default: $EASEL_WEB_PORT or 8080)")


def run_web(args: argparse.Namespace, settings: Settings) -> int:
    from web.server import serve

    if args.local and args.host not in (None, "127.0.0.1"):
        print(f"easel web: --local always binds 127.0.0.1 (not {args.host}); drop --local to serve others")
        return 2
    serve(settings, local=args.local, host=args.host, port=args.port)
    return 0
