"""Canary rollouts: two TF Serving tracks behind the TLS front, a weight, a gate.

The stable and canary tracks are separate TF Servings (overlays/canary),
because TF Serving labels its metrics by model, not by version
(tensorflow/serving#1970): only a backend of its own gives the canary
metrics of its own. The front (nginx) splits requests between them by
weight, over REST and gRPC alike, from the routes file written here; the
`X-Serving-Track` header pins a request to a track, and requests with the
same `X-Client-Id` land on the same track at a given weight (A/B cohorts).

Each step writes the files the cluster applies (each track's model config,
the front's routes), runs the configured apply command, and records a
deployment event in the registry, with the labels `stable` and `canary`
kept in step. Repeating a step changes nothing and records nothing, but
writes and applies again, so an apply that failed can simply be rerun.

The promotion gate reads both tracks' error rate and p99 latency from
Prometheus' HTTP API over a window, from TF Serving's own metrics.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from components import contracts
from components.errors import UserError
from components.registry import model_config
from components.registry.store import Registry
from pipeline.serving.client import ServingError

if TYPE_CHECKING:
    from pipeline.config import RolloutConfig, RolloutTrack

STABLE, CANARY = contracts.STABLE_LABEL, contracts.CANARY_LABEL
TRACKS = (STABLE, CANARY)
# The header that pins a request to a track, and the one that keeps a
# client's requests on one track (nginx reads them as $http_x_...).
TRACK_HEADER = "X-Serving-Track"
COHORT_HEADER = "X-Client-Id"
REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY_BUCKET = ":tensorflow:serving:request_latency_bucket"


class RolloutError(UserError, RuntimeError):
    """A rollout step that cannot be taken as asked; nothing was changed."""


class RolloutFailed(ServingError):
    """A system a step needs failed: the apply command, a track's load, Prometheus."""


class GateClosed(RolloutFailed):
    """The canary does not behave well enough to take more traffic; nothing was changed."""


@dataclass(frozen=True)
class State:
    """What serves now: the stable version, the canary version and its weight (percent)."""

    stable: int | None
    canary: int | None
    weight: int

    def describe(self) -> str:
        if self.stable is None:
            return "no stable version (label one: `registry label stable N`)"
        if self.canary is None:
            return f"version {self.stable} takes all traffic (no canary)"
        return (
            f"stable version {self.stable} takes {100 - self.weight}%, canary version "
            f"{self.canary} {self.weight}%"
        )


def _is_version(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0)


def state_of(event: dict[str, Any], source: str = "deployments.json") -> State:
    """The state a deployment event recorded.

    Raises:
        RolloutError: The event's versions or weight are not what `rollout` writes.
    """
    state = State(event.get("stable"), event.get("canary"), event.get("weight", 0))
    if not (_is_version(state.stable) and _is_version(state.canary)) or not (
        isinstance(state.weight, int) and 0 <= state.weight <= 100
    ):
        raise RolloutError(
            f"{source}: the event of {event.get('time')} has stable={state.stable!r}, "
            f"canary={state.canary!r}, weight={state.weight!r}; expected version numbers "
            "(or null) and a weight in 0..100"
        )
    return state


def event_time(event: dict[str, Any], source: str = "deployments.json") -> datetime.datetime:
    """When a deployment event happened (timezone-aware).

    Raises:
        RolloutError: Its time is not an ISO 8601 time with a zone.
    """
    try:
        when = datetime.datetime.fromisoformat(event["time"])
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise RolloutError(f"{source}: {event['time']!r} is not an ISO 8601 time with a zone")
    return when


def current(registry: Registry) -> State:
    """The state the last deployment event left; before any, the `stable` label alone."""
    events = registry.deployments()
    if events:
        return state_of(events[-1])
    return State(registry.labels().get(STABLE), None, 0)


def at(registry: Registry, when: datetime.datetime) -> State | None:
    """What served at `when` (timezone-aware), from the deployment events; None before the first."""
    found = None
    for event in registry.deployments():
        if event_time(event) > when:
            break
        found = state_of(event)
    return found


def parse_duration(text: str) -> float:
    """Seconds of a PromQL duration such as 5m (rollout.window's form)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return float(text[:-1]) * units[text[-1]]


def render_routes(
    stable: RolloutTrack, canary: RolloutTrack, weight: int, key: str = "$request_id"
) -> str:
    """The front's routes.conf: both tracks' upstreams and the canary's share.

    Args:
        stable: The stable track (its rest and grpc host:port).
        canary: The canary track.
        weight: The canary's share of requests, in percent.
        key: What split_clients hashes when a request has no X-Client-Id.
    """
    lines = [
        "# Written by `python -m pipeline rollout`; edits by hand are overwritten.",
        f"# The canary takes {weight}% of the requests."
        if weight
        else "# No canary traffic: every request to the stable track.",
    ]
    for name, track in ((STABLE, stable), (CANARY, canary)):
        for protocol in ("rest", "grpc"):
            lines += [
                f"upstream tf_serving_{protocol}_{name} {{",
                f"    server {getattr(track, protocol)};",
                "    keepalive 16;",
                "}",
            ]
    header = "$http_" + TRACK_HEADER.lower().replace("-", "_")
    cohort = "$http_" + COHORT_HEADER.lower().replace("-", "_")
    if weight == 0:
        split = ['map "" $rollout_track {', f"    default {STABLE};", "}"]
    else:
        split = [
            "# One client id, one track (A/B cohorts); without one, each request on its own.",
            f"map {cohort} $rollout_key {{",
            f'    "" {key};',
            f"    default {cohort};",
            "}",
            "split_clients $rollout_key $rollout_track {",
            f"    {weight}% {CANARY};",
            f"    * {STABLE};",
            "}",
        ]
    lines += split
    lines += [
        f"# {TRACK_HEADER}: stable or canary pins a request to that track.",
        f"map {header} $serving_track {{",
        f"    {STABLE} {STABLE};",
        f"    {CANARY} {CANARY};",
        "    default $rollout_track;",
        "}",
    ]
    return "\n".join(lines) + "\n"


# -- the promotion gate ------------------------------------------------------------------


@dataclass(frozen=True)
class TrackFigures:
    """One track over the gate's window, from Prometheus."""

    requests: float
    errors: float
    p99_ms: float | None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass(frozen=True)
class Verdict:
    """The gate's answer, with the figures it judged."""

    passed: bool
    reasons: tuple[str, ...]
    stable: TrackFigures
    canary: TrackFigures

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "stable": asdict(self.stable),
            "canary": asdict(self.canary),
        }


Query = Callable[[str], list[dict[str, Any]]]


def prometheus_query(url: str, timeout_s: float = 10.0) -> Query:
    """An instant-query function on Prometheus' HTTP API (/api/v1/query).

    The function raises RolloutFailed, naming the URL, when Prometheus is
    unreachable or answers an error (a bad expression, a timeout).
    """

    def query(promql: str) -> list[dict[str, Any]]:
        address = f"{url.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            with urllib.request.urlopen(address, timeout=timeout_s) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as error:
            try:
                detail = json.loads(error.read()).get("error", error.reason)
            except ValueError:
                detail = error.reason
            raise RolloutFailed(f"Prometheus {url}: {error.code} {detail} for {promql}") from None
        except (OSError, ValueError) as error:
            raise RolloutFailed(f"Prometheus {url}: cannot query ({error})") from None
        if body.get("status") != "success":
            raise RolloutFailed(f"Prometheus {url}: {body.get('error', body)} for {promql}")
        try:
            result: list[dict[str, Any]] = body["data"]["result"]
        except (KeyError, TypeError):
            raise RolloutFailed(
                f"Prometheus {url}: an answer without data.result: {body}"
            ) from None
        return result

    return query


def _scalar(result: list[dict[str, Any]]) -> float | None:
    """The one value of an aggregated instant vector; None when it is empty or NaN."""
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if value != value else value  # NaN: no samples (0/0, an empty histogram)


def window_increase(series: str, window: str, by: str = "") -> str:
    """PromQL: how much counters grew over the window, new series included.

    increase() needs two samples of a series, so a series born inside the
    window (a canary's first errors: a new `status` value; its first
    latency buckets) loses its first sample's count. A series that did not
    exist a window ago started at zero within it: its whole value is its
    growth.
    """
    grouping = f" by ({by})" if by else ""
    return (
        f"sum{grouping} ((increase({series}[{window}]) and ({series} offset {window}))"
        f" or ({series} unless ({series} offset {window})))"
    )


def track_figures(query: Query, gate: RolloutConfig, model: str, track: str) -> TrackFigures:
    """Requests, errors and p99 latency of one track over the gate's window."""
    matchers = [f'model_name="{model}"', f'{gate.track_label}="{track}"']
    if gate.selector:
        matchers.append(gate.selector)
    selector = ", ".join(matchers)
    window = gate.window
    requests = _scalar(query(window_increase(f"{REQUEST_COUNT}{{{selector}}}", window)))
    errors = _scalar(query(window_increase(f'{REQUEST_COUNT}{{{selector}, status!="OK"}}', window)))
    buckets = window_increase(f"{REQUEST_LATENCY_BUCKET}{{{selector}}}", window, by="le")
    p99_us = _scalar(query(f"histogram_quantile(0.99, {buckets})"))
    return TrackFigures(requests or 0.0, errors or 0.0, None if p99_us is None else p99_us / 1000)


def judge(stable: TrackFigures, canary: TrackFigures, gate: RolloutConfig) -> Verdict:
    """Whether the canary may take more traffic, within the gate's margins of stable."""
    reasons = []
    if canary.requests < gate.min_requests:
        reasons.append(
            f"the canary served {canary.requests:.0f} requests in the last {gate.window}, "
            f"fewer than rollout.min_requests={gate.min_requests}: too few to judge; wait"
        )
    if stable.requests == 0:
        reasons.append(f"the stable track served no requests in the last {gate.window}")
    if not reasons:
        stable_rate, canary_rate = stable.error_rate or 0.0, canary.error_rate or 0.0
        if canary_rate > stable_rate + gate.max_error_rate_increase:
            reasons.append(
                f"error rate: canary {canary_rate:.2%}, stable {stable_rate:.2%}, more than "
                f"rollout.max_error_rate_increase={gate.max_error_rate_increase:g} above"
            )
        missing = [name for name, t in (("canary", canary), ("stable", stable)) if t.p99_ms is None]
        if missing:
            reasons.append(
                f"no request latency histogram for the {' and '.join(missing)} track in the "
                f"last {gate.window}: the p99 cannot be compared"
            )
        elif canary.p99_ms is not None and stable.p99_ms is not None:
            limit = stable.p99_ms * gate.max_p99_ratio + gate.p99_slack_ms
            if canary.p99_ms > limit:
                reasons.append(
                    f"p99 latency: canary {canary.p99_ms:.1f} ms, stable {stable.p99_ms:.1f} ms, "
                    f"over the {limit:.1f} ms allowed (rollout.max_p99_ratio="
                    f"{gate.max_p99_ratio:g} x stable + rollout.p99_slack_ms={gate.p99_slack_ms:g})"
                )
    return Verdict(not reasons, tuple(reasons), stable, canary)


def gate_verdict(query: Query, gate: RolloutConfig, model: str) -> Verdict:
    """Reads both tracks from Prometheus and judges the canary."""
    return judge(
        track_figures(query, gate, model, STABLE),
        track_figures(query, gate, model, CANARY),
        gate,
    )


# -- the steps ---------------------------------------------------------------------------


Wait = Callable[[str, int], None]  # (track, version): returns once it is AVAILABLE


@dataclass
class Rollout:
    """Takes rollout steps for one model of one registry.

    Attributes:
        registry: Where labels and deployment events are kept.
        config: The RolloutConfig.
        wait: Called with (track, version) after that track's model config
            changed, before traffic moves to it; raises RolloutError when
            the version does not become AVAILABLE. None: no wait.
        say: Where progress lines go.
    """

    registry: Registry
    config: RolloutConfig
    wait: Wait | None = None
    say: Callable[[str], None] = print
    clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.timezone.utc)

    @property
    def model(self) -> str:
        return self.registry.model_name

    def _write_track(self, track: str, version: int) -> None:
        side = getattr(self.config, track)
        if not side.model_config:
            raise RolloutError(f"rollout.{track}.model_config is not set")
        model_config.serve_only(side.model_config, self.model, version)

    def _write_routes(self, weight: int) -> None:
        if not self.config.routes_file:
            raise RolloutError("rollout.routes_file is not set")
        text = render_routes(self.config.stable, self.config.canary, weight)
        try:
            with open(self.config.routes_file, "w") as f:
                f.write(text)
        except OSError as error:
            raise RolloutError(f"rollout.routes_file {self.config.routes_file}: {error}") from None

    def _apply(self) -> None:
        command: Sequence[str] = self.config.apply_command
        if not command:
            self.say("rollout.apply_command is empty: files written, apply them yourself")
            return
        try:
            done = subprocess.run(
                list(command), capture_output=True, text=True, timeout=600, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise RolloutFailed(f"rollout.apply_command {list(command)}: {error}") from None
        if done.returncode != 0:
            output = (done.stderr or done.stdout).strip()[-2000:]
            raise RolloutFailed(
                f"rollout.apply_command {list(command)} exited {done.returncode}: {output}. "
                "The files are written; fix the cause and run the same rollout command again"
            )

    def _converge(self, state: State, wait_for: tuple[str, int] | None = None) -> None:
        """Writes and applies `state`; with `wait_for`, that track loads its version first.

        Traffic moves only once the track that gets it has the version: its
        model config goes out at the old weight, then the weight changes.
        """
        old = current(self.registry)
        if wait_for is not None:
            track, version = wait_for
            self._write_track(track, version)
            self._write_routes(old.weight if old.canary is not None else 0)
            self._apply()
            if self.wait is not None:
                try:
                    self.wait(track, version)
                except RolloutFailed as failure:
                    # The track's share must not keep a version it never
                    # showed AVAILABLE: back to what it served.
                    previous = old.stable if track == STABLE else old.canary
                    if previous is None:
                        raise
                    self._write_track(track, previous)
                    self._apply()
                    raise RolloutFailed(
                        f"{failure}; the {track} track's model config is back on version "
                        f"{previous} and applied again"
                    ) from None
        if state.stable is not None:
            self._write_track(STABLE, state.stable)
        if state.canary is not None:
            self._write_track(CANARY, state.canary)
        self._write_routes(state.weight if state.canary is not None else 0)
        self._apply()

    def _record(
        self, action: str, state: State, still_loaded: int | None = None, **extra: Any
    ) -> None:
        labels = {STABLE: state.stable, CANARY: state.canary}
        existing = self.registry.labels()
        for label, version in labels.items():
            if version is not None and existing.get(label) != version:
                self.registry.set_label(label, version)
            elif version is None and label in existing:
                self.registry.set_label(label, None)
        # An aborted canary stays loaded on its track: retention must keep it.
        served = (state.stable, state.canary, still_loaded)
        self.registry.set_served([v for v in served if v is not None])
        self.registry.record_deployment(
            {"action": action, **asdict(state), **{k: v for k, v in extra.items() if v is not None}}
        )

    def start(self, ref: str, weight: int) -> State:
        """Serves version `ref` on the canary track and gives it `weight` percent.

        Raises:
            RolloutError: No stable version yet, another canary in progress,
                a bad weight or a damaged version.
            RolloutFailed: The apply command or the canary's load failed.
        """
        if not 0 <= weight < 100:
            raise RolloutError(
                f"--weight {weight}: give the canary's first share, 0..99 (promote takes it to 100)"
            )
        version = self.registry.resolve(ref).number
        state = current(self.registry)
        if state.stable is None:
            raise RolloutError(
                f"{self.model!r} has no stable version to compare a canary with: label one "
                f"first (`registry label {STABLE} N`)"
            )
        if version == state.stable:
            raise RolloutError(f"version {version} is the stable version already")
        if state.canary not in (None, version):
            raise RolloutError(
                f"version {state.canary} is the canary at {state.weight}%; `rollout abort` "
                f"(or promote) it before starting version {version}"
            )
        problems = self.registry.verify(version)
        if problems:
            raise RolloutError(f"version {version} fails verify: {'; '.join(problems)}")
        target = State(state.stable, version, weight)
        if target == state:
            self._converge(target)
            self.say(f"already so: {target.describe()} (applied again, nothing recorded)")
            return target
        self._converge(target, wait_for=(CANARY, version) if state.canary != version else None)
        self._record("start", target)
        self.say(f"started: {target.describe()}")
        return target

    def next_weight(self, state: State) -> int:
        return next(step for step in self.config.steps if step > state.weight)

    def promote(
        self, verdict: Callable[[], Verdict] | None, expect: int | None = None
    ) -> tuple[State, Verdict | None]:
        """Steps the canary's weight up, or makes it stable at the last step, if the gate agrees.

        The gate judges the last `rollout.window`, so a step waits until the
        current weight has served for a whole window.

        Args:
            verdict: Reads the gate; None skips it (`--no-gate`, recorded).
            expect: The weight the caller means to step from (`--from`): at
                any other weight nothing is done, so a retried job does not
                step twice.

        Raises:
            RolloutError: No canary.
            RolloutFailed: The apply command, a load or Prometheus failed.
            GateClosed: The gate refused; nothing changed.
        """
        state = current(self.registry)
        if expect is not None and (state.canary is None or state.weight != expect):
            self.say(f"not at {expect}% ({state.describe()}): nothing done")
            return state, None
        if state.canary is None:
            raise RolloutError(
                f"no canary to promote ({state.describe()}); `rollout start VERSION` first"
            )
        judged = None
        if state.weight > 0 and verdict is not None:
            events = self.registry.deployments()
            window = parse_duration(self.config.window)
            if events:
                served_s = (self.clock() - event_time(events[-1])).total_seconds()
                if served_s < window:
                    raise GateClosed(
                        f"canary version {state.canary} stays at {state.weight}%: it has served "
                        f"at this weight for {served_s:.0f} s, less than the gate's window "
                        f"(rollout.window={self.config.window}); promote in "
                        f"{window - served_s:.0f} s"
                    )
            judged = verdict()
            if not judged.passed:
                raise GateClosed(
                    f"canary version {state.canary} stays at {state.weight}%: "
                    + "; ".join(judged.reasons)
                )
        step = self.next_weight(state)
        gate = judged.to_dict() if judged else ("skipped" if verdict is None else None)
        if step < 100:
            target = State(state.stable, state.canary, step)
            self._converge(target)
            self._record("promote", target, gate=gate)
            self.say(f"promoted: {target.describe()}")
            return target, judged
        # The last step: the stable track loads the canary's version, then
        # takes all traffic again; the canary track serves none.
        target = State(state.canary, None, 0)
        self._converge(target, wait_for=(STABLE, state.canary))
        self._record("promote", target, gate=gate, promoted=state.canary, replaced=state.stable)
        self.say(f"promoted: version {state.canary} is stable and takes all traffic")
        return target, judged

    def abort(self, reason: str = "") -> State:
        """Sends all traffic back to the stable track; the canary label goes."""
        state = current(self.registry)
        target = State(state.stable, None, 0)
        if state.canary is None:
            self._converge(target)
            self.say(f"nothing to abort: {state.describe()} (applied again, nothing recorded)")
            return target
        self._converge(target)
        self._record(
            "abort", target, still_loaded=state.canary, aborted=state.canary, reason=reason or None
        )
        self.say(f"aborted: canary version {state.canary} takes no traffic; {target.describe()}")
        return target
