"""The ``easel`` command: ``worker``, ``stub-webui``, ``submit`` and ``demo``.

Flags override the environment (``EASEL_*``, ``REDIS_URL``) and ``.env``; see README and ``.env.example``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from common.errors import EaselError, InvalidRequest, QueueUnreachable, describe_validation_error
from common.models import text_problem
from common.settings import ConfigurationError, Settings


def load_settings(**flags: Any) -> Settings:
    """Settings from the environment, with the flags that were given taking precedence."""
    return Settings(**{k: v for k, v in flags.items() if v is not None})


def _add_redis_flags(parser: argparse.ArgumentParser, default: object = None) -> None:
    parser.add_argument("--redis-url", default=default, help="Redis URL (default: $REDIS_URL)")
    parser.add_argument("--prefix", dest="redis_prefix", default=default,
                        help="Redis key prefix (default: $EASEL_REDIS_PREFIX)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="easel", description="Self-hosted image generation for Discord.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = commands.add_parser("worker", help="run a GPU worker in front of one WebUI")
    _add_redis_flags(worker)
    worker.add_argument("--webui-url", help="the WebUI's base URL (default: $EASEL_WEBUI_URL)")
    worker.add_argument("--backend", choices=["a1111", "comfyui"],
                        help="the server's kind (default: $EASEL_BACKEND, else detected from the URL)")
    worker.add_argument("--name", dest="worker_name", help="worker name (default: $EASEL_WORKER_NAME or host name)")
    worker.add_argument("--gateway", dest="gateway_url", help="a volunteer node: the gateway's https:// URL")
    worker.add_argument("--token", dest="node_token", help="the node's token (default: $EASEL_NODE_TOKEN)")
    worker.add_argument("--drain", action="store_true",
                        help="tell the running worker of this name to finish its task, take no more and stop")

    listing = commands.add_parser("workers", help="list the live workers")
    _add_redis_flags(listing)
    listing.add_argument("--json", action="store_true")
    from easel.nodes_cli import add_gateway_command, add_node_commands

    add_node_commands(listing, _add_redis_flags)
    add_gateway_command(commands, _add_redis_flags)

    queue = commands.add_parser("queue", help="show the queue in fair order with positions and ETAs")
    _add_redis_flags(queue)
    queue.add_argument("--json", action="store_true")

    cancel = commands.add_parser("cancel", help="cancel tasks (JOB.N) or whole jobs (JOB)")
    _add_redis_flags(cancel)
    cancel.add_argument("ids", nargs="+", metavar="ID")
    cancel.add_argument("--by", default="an operator", help="who cancels (shown to the owner)")

    stub = commands.add_parser("stub-webui", help="run a stand-in WebUI: A1111, Forge Neo, SD.Next or ComfyUI (no GPU)")
    stub.add_argument("--flavor", choices=("a1111", "forge-neo", "sdnext", "comfyui"), default="a1111",
                      help="which server it stands in for (default a1111)")
    stub.add_argument("--host", default="127.0.0.1")
    stub.add_argument("--port", type=int, default=7860)
    stub.add_argument("--step-ms", type=float, default=30.0, help="time per sampling step (default 30)")
    stub.add_argument("--load-ms", type=float, default=1000.0, help="time to switch checkpoints (default 1000)")

    submit = commands.add_parser("submit", help="queue a job on a running stack and save its images")
    _add_redis_flags(submit)
    from easel.submit import add_request_flags  # local: keeps `easel worker` start-up light

    add_request_flags(submit)

    bot = commands.add_parser("bot", help="run the Discord bot (needs DISCORD_TOKEN)")
    _add_redis_flags(bot)

    from easel.jobs_cli import add_jobs_commands, add_sweep_command
    from easel.workflows_cli import add_workflows_commands

    add_sweep_command(commands, _add_redis_flags)
    add_jobs_commands(commands, _add_redis_flags)
    add_workflows_commands(commands, _add_redis_flags)
    from easel.web_cli import add_web_command

    add_web_command(commands, _add_redis_flags)

    demo = commands.add_parser("demo", help="run the whole path on this machine with the stub WebUI")
    demo.add_argument("--out", help="output folder (default ./easel-output)")
    demo.add_argument("--step-ms", type=float, default=40.0, help="stub time per sampling step (default 40)")
    demo.add_argument("--backend", choices=("a1111", "comfyui"), default="a1111",
                      help="which server the stub stands in for (comfyui also runs a custom workflow)")
    demo.add_argument("--web", action="store_true",
                      help="then serve the web gallery (easel web --local) over the demo's jobs until Ctrl-C")
    return parser


# Text from the command line that no request model checks (the models name their own fields), by its flag: a lone
# surrogate (invalid UTF-8 in argv) or a control character is refused before it can reach Redis or the job store.
_PLAIN_TEXT = {"owner": "--owner", "actor": "--as", "by": "--by", "ids": "ID", "id": "ID", "job": "JOB"}


def _check_plain_text(args: argparse.Namespace) -> None:
    for dest, flag in _PLAIN_TEXT.items():
        value = getattr(args, dest, None)
        for text in value if isinstance(value, list) else [value]:
            problem = text_problem(text) if isinstance(text, str) else None
            if problem is not None:
                raise InvalidRequest([f"{flag}: {problem}"])


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _check_plain_text(args)
        return _dispatch(args)
    except (ConfigurationError, QueueUnreachable) as exc:  # a missing or wrong setting; Redis does not answer
        print(f"easel: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print("easel: invalid setting: " + "; ".join(describe_validation_error(exc)), file=sys.stderr)
        return 2
    except EaselError as exc:
        print(f"easel: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _worker(args: argparse.Namespace) -> int:
    settings = load_settings(redis_url=args.redis_url, redis_prefix=args.redis_prefix,
                             webui_url=args.webui_url, worker_name=args.worker_name,
                             gateway_url=args.gateway_url, node_token=args.node_token,
                             backend=args.backend)
    if args.drain:
        from easel.admin import drain

        return drain(settings)
    from workers.main import run

    settings.require_webui_url()
    if not settings.gateway_url:  # a volunteer node never reaches Redis
        _wait_for_redis(settings, "worker")
    run(settings)
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "worker":
        return _worker(args)
    if args.command in ("workers", "gateway") and (args.command == "gateway" or args.nodes_command):
        from easel import nodes_cli

        settings = load_settings(redis_url=args.redis_url, redis_prefix=args.redis_prefix)
        return (nodes_cli.run_gateway if args.command == "gateway" else nodes_cli.run_nodes)(args, settings)
    if args.command in ("workers", "queue", "cancel"):
        from easel import admin

        settings = load_settings(redis_url=args.redis_url, redis_prefix=args.redis_prefix)
        if args.command == "cancel":
            return admin.cancel(settings, args.ids, args.by)
        return (admin.workers if args.command == "workers" else admin.queue)(settings, args.json)
    if args.command == "stub-webui":
        from easel.stubs import run_stub

        run_stub(args.flavor, args.host, args.port, step_ms=args.step_ms, load_ms=args.load_ms)
        return 0
    if args.command == "submit":
        from easel.submit import submit

        return submit(args, load_settings(redis_url=args.redis_url, redis_prefix=args.redis_prefix))
    if args.command == "bot":
        from bot.main import run as run_bot

        settings = load_settings(redis_url=args.redis_url, redis_prefix=args.redis_prefix)
        settings.require_discord_token()
        _wait_for_redis(settings, "bot")
        run_bot(settings)
        return 0
    if args.command in ("sweep", "jobs"):
        from easel import jobs_cli

        settings = load_settings(redis_url=args.redis_url, redis_prefix=args.redis_prefix)
        return (jobs_cli.run_sweep if args.command == "sweep" else jobs_cli.run_jobs)(args, settings)
    if args.command == "workflows":
        from easel import workflows_cli

        return workflows_cli.run(args, load_settings(redis_url=args.redis_url, redis_prefix=args.redis_prefix))
    if args.command == "web":
        from easel import web_cli

        return web_cli.run_web(args, load_settings(redis_url=args.redis_url, redis_prefix=args.redis_prefix))
    if args.command == "demo":
        from easel.demo import demo

        return demo(out=args.out, step_ms=args.step_ms, backend=args.backend, serve_web=args.web)
    raise AssertionError(args.command)


def _wait_for_redis(settings: Settings, what: str) -> None:
    """Long-running commands start once Redis answers, waiting out an outage for EASEL_REDIS_OUTAGE_S."""
    from common.connection import wait_for_redis

    asyncio.run(wait_for_redis(settings, what))


if __name__ == "__main__":
    sys.exit(main())
