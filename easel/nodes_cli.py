"""``easel workers invite|revoke|ban|ls|acl`` and ``easel gateway``: volunteer nodes and trusted direct workers.

``invite`` prints a node token once (Redis keeps only its hash); ``revoke`` and ``ban`` cut the node off through
the gateway within seconds and put its running task back; ``ban --rerun SINCE`` also re-queues what it made since
then. ``acl`` prints the Redis ``ACL SETUSER`` line for one trusted direct worker.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from common.connection import open_redis
from common.errors import InvalidRequest, NotFound
from common.nodes import NodeStore, check_name
from common.queue.keys import ARQ_IN_PROGRESS_PREFIX, ARQ_JOB_PREFIX, ARQ_RESULT_PREFIX, Keys
from common.registry import Registry, WorkerInfo
from common.settings import Settings

ACL_CATEGORIES = "-@all +@read +@write +@scripting +@transaction +@pubsub +@connection -@dangerous"


def add_node_commands(workers: argparse.ArgumentParser, add_redis_flags: Callable[..., None]) -> None:
    sub = workers.add_subparsers(dest="nodes_command", metavar="ACTION")
    invite = sub.add_parser("invite", help="issue a node token for a volunteer GPU (shown once)")
    invite.add_argument("name")
    invite.add_argument("--max-pixels", type=int, help="largest width x height the node is given")
    invite.add_argument("--checkpoints", help="comma-separated checkpoints it may run (default: any)")
    revoke = sub.add_parser("revoke", help="revoke a node's token: disconnected within 5 s, its task back in line")
    revoke.add_argument("name")
    ban = sub.add_parser("ban", help="ban a node and optionally re-queue what it made")
    ban.add_argument("name")
    ban.add_argument("--rerun", metavar="SINCE", help="re-queue its results since SINCE (e.g. 2h, 30m, ISO time)")
    sub.add_parser("ls", help="list node tokens and whether each is connected")
    acl = sub.add_parser("acl", help="print the Redis ACL SETUSER line for one trusted direct worker")
    acl.add_argument("name")
    for parser in (invite, revoke, ban, sub.choices["ls"], acl):
        # The flags may come before or after the action: the action's parser must not reset what `workers` read.
        add_redis_flags(parser, default=argparse.SUPPRESS)


def add_gateway_command(commands: argparse._SubParsersAction, add_redis_flags: Callable[..., None]) -> None:
    gateway = commands.add_parser("gateway", help="run the worker gateway volunteer nodes connect to")
    add_redis_flags(gateway)
    gateway.add_argument("--listen", default="0.0.0.0:8443", help="HOST:PORT (default 0.0.0.0:8443)")
    gateway.add_argument("--tls-cert", help="certificate chain (PEM); without it, plain HTTP behind a TLS proxy")
    gateway.add_argument("--tls-key", help="the certificate's private key (PEM)")


def run_gateway(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.server import serve

    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        raise InvalidRequest([f"--listen: {args.listen!r} is not HOST:PORT"])
    if bool(args.tls_cert) != bool(args.tls_key):
        raise InvalidRequest(["--tls-cert and --tls-key go together"])
    settings.require_redis_url()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(settings, host, int(port), cert=args.tls_cert, key=args.tls_key))
    return 0


def run_nodes(args: argparse.Namespace, settings: Settings) -> int:
    if args.nodes_command == "acl":
        print(acl_line(check_name(args.name), settings.redis_prefix, secrets.token_urlsafe(24)))
        return 0
    return asyncio.run(_run(args, settings))


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    settings.require_redis_url()
    redis = await open_redis(settings)
    try:
        store = NodeStore(redis, Keys(settings.redis_prefix))
        if args.nodes_command == "invite":
            checkpoints = args.checkpoints.split(",") if args.checkpoints else None
            try:
                token = await store.invite(args.name, max_pixels=args.max_pixels, checkpoints=checkpoints)
            except ValueError as exc:
                raise InvalidRequest([str(exc)]) from None
            print(f"node {args.name} invited; its token (shown once, keep it secret):\n{token}\n"
                  f"on the node: easel worker --gateway https://GATEWAY --token {token} "
                  "--webui-url http://127.0.0.1:7860")
            return 0
        if args.nodes_command == "ls":
            live = {w.name: w for w in await _live(redis, settings)}
            for record in await store.all():
                worker = live.get(record.name)
                limits = f"max_pixels={record.max_pixels or '-'} checkpoints={','.join(record.checkpoints) or 'any'}"
                state = worker.state.value if worker else "offline"
                print(f"{record.name:24} {record.status:8} {state:10} {limits}")
            return 0
        since = parse_since(args.rerun) if args.nodes_command == "ban" and args.rerun else None
        revoked = await store.revoke(args.name, ban=args.nodes_command == "ban")
        if revoked is None:
            raise NotFound(f"no node named {args.name!r}; `easel workers ls` lists them")
        print(f"node {args.name} {revoked.status}; the gateway disconnects it within 5 s and puts its task back")
        if since is not None:
            from easel.rerun import rerun_made_by

            count = await rerun_made_by(settings, args.name, since)
            print(f"re-queued {count} task(s) it finished since {since.isoformat(timespec='seconds')}")
        return 0
    finally:
        await redis.aclose()


async def _live(redis: Redis, settings: Settings) -> list[WorkerInfo]:
    return await Registry(redis, Keys(settings.redis_prefix), ttl_s=settings.worker_ttl_s).live()


_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``2h``, ``30m``, ``1d`` ago, or an ISO time (UTC if it has no zone)."""
    now = now or datetime.now(UTC)
    match = _SPAN.match(text.strip())
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return now - timedelta(**{unit: float(match.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequest([f"--rerun: {text!r} is neither a span (2h, 30m, 1d) nor an ISO time"]) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def acl_line(name: str, prefix: str, password: str) -> str:
    """The ACL SETUSER line of a trusted direct worker: Easel's keys and channels, no admin or dangerous commands.

    arq's per-task keys (``arq:job:``, ``arq:result:``, ``arq:in-progress:``) have no deployment prefix, so they
    are listed on their own; a trusted worker can read results, which is why untrusted GPUs use the gateway.
    """
    keys = " ".join(f"~{p}*" for p in (prefix, ARQ_JOB_PREFIX, ARQ_RESULT_PREFIX, ARQ_IN_PROGRESS_PREFIX))
    return f"ACL SETUSER easel-worker-{name} on >{password} resetkeys {keys} resetchannels &{prefix}* {ACL_CATEGORIES}"
