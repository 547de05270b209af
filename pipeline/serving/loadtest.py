"""A small load generator: concurrent predict requests, with latency percentiles.

Each of `concurrency` threads sends one request at a time, as closed-loop
clients do, so throughput is what the server sustains at that concurrency.
Requests are encoded before the clock starts: the latencies measure the
server and the network, not this process's JSON or tf.Example encoding.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.serving.client import PredictClient, Request, ServingError
from pipeline.serving.rows import Row


@dataclass(frozen=True)
class LoadTestResult:
    """What a load test measured; latencies cover successful requests only.

    Attributes:
        protocol: "REST" or "gRPC".
        target: The model asked, as `Target.describe` names it.
        endpoint: Where it was asked.
        concurrency: Concurrent workers.
        batch_size: Rows per request.
        seconds: The measured window (after the warm-up) in seconds.
        warmup_seconds: Seconds of requests left out of the figures.
        requests: Requests completed in the window, failed ones included.
        errors: Requests that failed.
        first_error: The first failure's message; None if none failed.
        latencies_ms: Successful requests' latencies, sorted.
    """

    protocol: str
    target: str
    endpoint: str
    concurrency: int
    batch_size: int
    seconds: float
    warmup_seconds: float
    requests: int
    errors: int
    first_error: str | None
    latencies_ms: tuple[float, ...]

    @property
    def qps(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def rows_per_second(self) -> float:
        """Rows of successful requests per second."""
        ok = self.requests - self.errors
        return ok * self.batch_size / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, p: float) -> float | None:
        """The p-th percentile latency in ms (nearest rank); None without successes."""
        return percentile(self.latencies_ms, p)


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """The nearest-rank p-th percentile of sorted values.

    Args:
        sorted_values: Values in ascending order.
        p: Percentile in (0, 100].

    Returns:
        The smallest value with at least p% of the values at or below it;
        None for no values.

    Raises:
        ValueError: p is outside (0, 100].
    """
    if not 0 < p <= 100:
        raise ValueError(f"a percentile is in (0, 100], found {p}")
    if not sorted_values:
        return None
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


def batches(rows: Sequence[Row], batch_size: int) -> list[list[Row]]:
    """Requests' rows, round-robin over `rows` until every row is used once.

    The last batch wraps around to the first rows so that every request
    carries exactly `batch_size` rows.

    Args:
        rows: The rows to draw from.
        batch_size: Rows per request.

    Returns:
        ceil(len(rows) / batch_size) batches.

    Raises:
        ValueError: No rows, or `batch_size` below 1.
    """
    if not rows:
        raise ValueError("a load test needs at least one row")
    if batch_size < 1:
        raise ValueError(f"the batch size must be at least 1, found {batch_size}")
    count = math.ceil(len(rows) / batch_size)
    return [
        [rows[(start + i) % len(rows)] for i in range(batch_size)]
        for start in range(0, count * batch_size, batch_size)
    ]


def run_load_test(
    client: PredictClient,
    rows: Sequence[Row],
    *,
    concurrency: int = 4,
    batch_size: int = 64,
    duration: float | None = 10.0,
    requests: int | None = None,
    warmup: float = 0.0,
) -> LoadTestResult:
    """Sends requests from `concurrency` threads and measures them.

    Args:
        client: Shared by all workers (clients are thread-safe).
        rows: Rows to draw requests from, round-robin.
        concurrency: Workers, each with one request in flight.
        batch_size: Rows per request.
        duration: Seconds to measure after the warm-up; None with `requests`.
        requests: Stop after this many measured requests instead of a duration.
        warmup: Seconds of requests before measuring, left out of the figures
            (connections opened, the server's first-call costs paid).

    Returns:
        The figures of the measured window.

    Raises:
        ValueError: A setting is out of range, or neither or both of
            `duration` and `requests` were given.
    """
    if concurrency < 1:
        raise ValueError(f"the concurrency must be at least 1, found {concurrency}")
    if (duration is None) == (requests is None):
        raise ValueError("give a load test either a duration or a request count")
    if duration is not None and duration <= 0:
        raise ValueError(f"the duration must be positive, found {duration}")
    if requests is not None and requests < 1:
        raise ValueError(f"the request count must be at least 1, found {requests}")
    if warmup < 0:
        raise ValueError(f"the warm-up must not be negative, found {warmup}")
    encoded = [client.encode(batch) for batch in batches(rows, batch_size)]

    lock = threading.Lock()
    next_batch = 0
    issued = 0
    latencies: list[float] = []
    errors: list[str] = []
    last_end = 0.0
    crashed: list[Exception] = []
    start = time.monotonic()
    measure_from = start + warmup
    deadline = measure_from + duration if duration is not None else math.inf

    def take() -> tuple[Request, bool] | None:
        """The next request and whether it counts; None when the test is over."""
        nonlocal next_batch, issued
        now = time.monotonic()
        measured = now >= measure_from
        with lock:
            if crashed or now >= deadline or (requests is not None and issued >= requests):
                return None
            if measured:
                issued += 1
            request = encoded[next_batch % len(encoded)]
            next_batch += 1
        return request, measured

    def worker() -> None:
        nonlocal last_end
        try:
            while (taken := take()) is not None:
                request, measured = taken
                began = time.perf_counter()
                error = None
                try:
                    client.send(request)
                except ServingError as failure:
                    error = str(failure)
                elapsed_ms = (time.perf_counter() - began) * 1000
                if not measured:
                    continue
                with lock:
                    last_end = max(last_end, time.monotonic())
                    if error is None:
                        latencies.append(elapsed_ms)
                    else:
                        errors.append(error)
        except Exception as bug:
            # Anything but a failed request is a bug here: stop the other
            # workers and raise it in the caller rather than lose it in a thread.
            with lock:
                crashed.append(bug)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if crashed:
        raise crashed[0]
    return LoadTestResult(
        protocol=client.protocol,
        target=client.target.describe(),
        endpoint=client.target.endpoint,
        concurrency=concurrency,
        batch_size=batch_size,
        seconds=max(0.0, last_end - measure_from),
        warmup_seconds=warmup,
        requests=len(latencies) + len(errors),
        errors=len(errors),
        first_error=errors[0] if errors else None,
        latencies_ms=tuple(sorted(latencies)),
    )


def format_result(result: LoadTestResult) -> str:
    """The report a person reads: throughput, errors and latency percentiles.

    Args:
        result: What `run_load_test` returned.

    Returns:
        A few lines of text, without a trailing newline.
    """

    def ms(p: float) -> str:
        value = result.percentile(p)
        return "n/a" if value is None else f"{value:.1f}"

    warmup = f" after {result.warmup_seconds:g}s warm-up" if result.warmup_seconds else ""
    lines = [
        f"loadtest {result.protocol} {result.endpoint} {result.target}: "
        f"{result.concurrency} workers, {result.batch_size} rows per request, "
        f"{result.seconds:.1f}s measured{warmup}",
        f"requests {result.requests}, errors {result.errors}, "
        f"{result.qps:.1f} requests/s, {result.rows_per_second:.1f} rows/s",
        f"latency ms: p50 {ms(50)}  p95 {ms(95)}  p99 {ms(99)}  max {ms(100)}",
    ]
    if result.first_error is not None:
        lines.append(f"first error: {result.first_error}")
    return "\n".join(lines)
