"""`rollout start|promote|abort|status`: canary rollouts behind the TLS front.

The steps, the routes and the gate are in pipeline/serving/rollout.py; this
module reads the arguments, builds the wait and the gate from the config and
prints what happened.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
from typing import TYPE_CHECKING, Any

from pipeline.cli import common
from pipeline.cli.serving import add_security_args, credentials_of
from pipeline.config import DEFAULT_CONFIG

if TYPE_CHECKING:
    from pipeline.cli.common import Commands
    from pipeline.config import PipelineConfig
    from pipeline.serving.rollout import Rollout, State


def _rollout(args: argparse.Namespace, config: PipelineConfig | None = None) -> Rollout:
    from pipeline.cli.registry import registry_of
    from pipeline.serving import rollout as rollout_lib

    config = config or common.load_config(args)
    registry = registry_of(config)
    settings = config.rollout
    wait = None
    if settings.endpoint:
        wait = _waiter(settings.endpoint, registry.model_name, settings.wait_timeout_s, args)
    return rollout_lib.Rollout(registry, settings, wait, lambda text: common.say(args, text))


def _waiter(endpoint: str, model: str, timeout_s: float, args: argparse.Namespace) -> Any:
    """Waits, through the front with the track pinned, until a track has a version AVAILABLE."""
    from pipeline.serving import rollout as rollout_lib
    from pipeline.serving import status as status_lib

    credentials = credentials_of(args)
    credentials.check_rest(endpoint)

    def wait(track: str, version: int) -> None:
        def fetch(number: int | None) -> list[status_lib.VersionStatus]:
            return status_lib.rest_status(
                endpoint,
                model,
                number,
                credentials=credentials,
                headers={rollout_lib.TRACK_HEADER: track},
            )

        common.say(args, f"waiting for the {track} track to load version {version}...")
        outcome = status_lib.wait_until_settled(fetch, model, version, timeout_s)
        if not outcome.ok:
            raise rollout_lib.RolloutFailed(
                f"the {track} track: {outcome.message}; traffic did not move"
            )
        common.say(args, f"the {track} track: {outcome.message} ({outcome.waited_s:.0f} s)")

    return wait


def _print_state(args: argparse.Namespace, model: str, state: State, extra: dict[str, Any]) -> None:
    """-o json: the state a step left (the text lines were said as it went)."""
    if common.wants_json(args):
        common.print_json({"model": model, **dataclasses.asdict(state), **extra})


def _start(args: argparse.Namespace) -> int:
    rollout = _rollout(args)
    weight = args.weight if args.weight is not None else rollout.config.steps[0]
    state = rollout.start(args.version, weight)
    _print_state(args, rollout.model, state, {})
    return 0


def _promote(args: argparse.Namespace) -> int:
    from pipeline.serving import rollout as rollout_lib

    rollout = _rollout(args)
    settings = rollout.config
    verdict = None
    if not args.no_gate:
        if not settings.prometheus_url:
            raise common.UsageError(
                "rollout.prometheus_url is not set: the gate reads the tracks from Prometheus "
                "(or --no-gate, recorded as such)"
            )
        query = rollout_lib.prometheus_query(settings.prometheus_url)

        def verdict() -> rollout_lib.Verdict:
            judged = rollout_lib.gate_verdict(query, settings, rollout.model)
            for name, figures in (("stable", judged.stable), ("canary", judged.canary)):
                rate = "-" if figures.error_rate is None else f"{figures.error_rate:.2%}"
                p99 = "-" if figures.p99_ms is None else f"{figures.p99_ms:.1f} ms"
                common.say(
                    args,
                    f"  {name:6}  {figures.requests:8.0f} requests  errors {rate:>7}  p99 {p99}"
                    f"  (last {settings.window})",
                )
            return judged

    state, judged = rollout.promote(verdict, args.expect)
    _print_state(args, rollout.model, state, {"gate": judged.to_dict() if judged else None})
    return 0


def _abort(args: argparse.Namespace) -> int:
    rollout = _rollout(args)
    state = rollout.abort(args.reason or "")
    _print_state(args, rollout.model, state, {})
    return 0


def _when(text: str) -> datetime.datetime:
    """An argparse type: an ISO 8601 time; without a zone, UTC."""
    try:
        # Python 3.10's fromisoformat does not read a trailing Z.
        when = datetime.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 time such as 2026-12-02T14:00:00+00:00, got {text!r}"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)


def _status(args: argparse.Namespace) -> int:
    from pipeline.cli.registry import registry_of
    from pipeline.serving import rollout as rollout_lib

    registry = registry_of(common.load_config(args))
    events = registry.deployments()
    if args.at is not None:
        state = rollout_lib.at(registry, args.at)
        if common.wants_json(args):
            common.print_json(
                {
                    "model": registry.model_name,
                    "at": args.at.isoformat(),
                    "state": state and dataclasses.asdict(state),
                }
            )
        elif state is None:
            print(f"{args.at.isoformat()}: before {registry.model_name!r}'s first deployment event")
        else:
            print(f"{args.at.isoformat()}: {state.describe()}")
        return 0
    state = rollout_lib.current(registry)
    if common.wants_json(args):
        common.print_json(
            {"model": registry.model_name, **dataclasses.asdict(state), "events": events}
        )
        return 0
    print(f"{registry.model_name}: {state.describe()}")
    for event in events[-args.last :]:
        detail = rollout_lib.state_of(event)
        print(f"  {event['time']}  {event.get('action', '?'):8} {detail.describe()}")
    return 0


def register(commands: Commands) -> None:
    """Adds `rollout start|promote|abort|status` to the CLI.

    Args:
        commands: The CLI's subcommands; each command sets `handler`.
    """
    rollout = commands.add_parser(
        "rollout",
        help="canary rollouts behind the TLS front, gated by Prometheus",
        description="Serves a version on the canary track beside stable (overlays/canary), "
        "steps its share of the traffic up through rollout.steps while Prometheus shows its "
        "error rate and p99 latency within margins of stable's, and records every step in "
        "the registry (docs/serving.md, 'Canary rollouts').",
    )
    sub = rollout.add_subparsers(dest="rollout_command", metavar="COMMAND", required=True)
    start = sub.add_parser("start", help="serve VERSION on the canary track with a share")
    start.add_argument("version", metavar="VERSION", help="version number, label or 'latest'")
    start.add_argument(
        "--weight",
        type=int,
        metavar="PERCENT",
        help="the canary's share of requests (default: the first of rollout.steps)",
    )
    promote = sub.add_parser(
        "promote",
        help="next step of rollout.steps if the gate passes; the last makes the canary stable",
    )
    promote.add_argument(
        "--from",
        dest="expect",
        type=int,
        metavar="PERCENT",
        help="step only from this weight; at any other, do nothing (a retried job steps once)",
    )
    promote.add_argument(
        "--no-gate",
        action="store_true",
        help="step without reading Prometheus (recorded in the deployment event)",
    )
    abort = sub.add_parser("abort", help="all traffic back to stable")
    abort.add_argument("--reason", help="recorded in the deployment event")
    status = sub.add_parser("status", help="what serves now, and the last deployment events")
    status.add_argument(
        "--at", type=_when, metavar="TIME", help="what served at TIME (ISO 8601; UTC if no zone)"
    )
    status.add_argument(
        "--last", type=common.at_least_one, default=10, metavar="N", help="events shown (10)"
    )
    for parser, handler in ((start, _start), (promote, _promote), (abort, _abort)):
        add_security_args(parser)
        parser.set_defaults(handler=handler)
    status.set_defaults(handler=_status)
    for parser in (start, promote, abort, status):
        common.add_config_args(parser, DEFAULT_CONFIG)
        common.add_output_arg(parser)
