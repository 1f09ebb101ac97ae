"""Overload run: closed-loop clients at 1x, 2x and 4x the server's capacity and at 64, then 1x again (recovery),
against ``tf-qa serve`` with its default ``--max-in-flight`` (32).

The server runs pinned to one core and the load generator (this process: a thread per client, each asking again as
soon as it has an answer or an error) to the other, where the machine has two or more; otherwise both share the
cores and the run says so. Clients are ``QAClient``s with a deadline; they follow the server's retry pushback
(``grpc-retry-pushback-ms``), so a refusal they cannot wait out within the deadline is what they report. Answers
are compared with the same export's answers computed in this process. Per level it prints goodput (answers per
second), refusals, errors, wrong answers, p50/p99 of answered requests and the server's RSS.

    python benchmarks/overload.py [--seconds 20] [--deadline 2] [--workdir /tmp/tf-qa-runs] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_and_faults import expected_answers, good_cases
from served import MODEL_NAME, Served, cpu_name, export_seeded

from tf_qa import errors
from tf_qa.client import QAClient


class Level:
    """What the clients of one level saw."""

    def __init__(self):
        self.lock = threading.Lock()
        self.started = time.perf_counter()
        self.latencies: list[float] = []
        self.answered_at: list[float] = []  # seconds since the level started
        self.refused = self.errors = self.wrong = 0

    def record(self, latency: float | None = None, refused: bool = False, error: bool = False, wrong: bool = False):
        with self.lock:
            if latency is not None:
                self.latencies.append(latency)
                self.answered_at.append(time.perf_counter() - self.started)
            self.refused += refused
            self.errors += error
            self.wrong += wrong


def client(target, requests, level: Level, stop: threading.Event, deadline: float, retries: int):
    """Asks each (questions, contexts, expected answers) request in turn, again as soon as it has an answer or an
    error, until ``stop``."""
    with QAClient(target, MODEL_NAME, timeout=deadline, retries=retries) as qa:
        index = 0
        while not stop.is_set():
            questions, contexts, want = requests[index % len(requests)]
            index += 1
            started = time.perf_counter()
            try:
                got = qa.answer_batch(questions, contexts)
            except errors.ResourceExhausted:
                level.record(refused=True)
                continue
            except errors.TFQAError:
                level.record(error=True)
                continue
            answers = [(a["answer"], a["start"], a["end"]) for a in got]
            level.record(latency=time.perf_counter() - started, wrong=answers != want)


def quantiles_ms(level: Level) -> dict:
    """p50 and p99 of the level's answered requests, in milliseconds."""
    latencies = sorted(level.latencies)
    quantile = lambda q: 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0  # noqa: E731
    return {"p50_ms": quantile(0.5), "p99_ms": quantile(0.99)}


def pin_load_generator() -> set[int] | None:
    """Pins this process (the load generator) away from the first core and returns that core for the server;
    None where the machine has one core (both share it). Prints the CPU and where each runs."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        print(f"CPU: {cpu_name()}; one core, shared by the server and the load generator")
        return None
    os.sched_setaffinity(0, set(cores[1:]))
    print(f"CPU: {cpu_name()}; server on core {cores[0]}, load generator on {cores[1:]}")
    return {cores[0]}


def run_clients(target: str, groups, seconds: float) -> None:
    """Closed-loop clients for ``seconds``: ``groups`` of (clients, requests, level, deadline, retries), client i
    of a group starting at its request 7 * i."""
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=client, args=(target, requests[i * 7 :] + requests[: i * 7], level, stop, deadline, retries)
        )
        for clients, requests, level, deadline, retries in groups
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(max(group[3] for group in groups) + 10)


def run_level(served: Served, clients: int, seconds: float, cases, expected, deadline: float, retries: int) -> dict:
    level = Level()
    requests = [([q], [c], [want]) for (q, c), want in zip(cases, expected)]
    run_clients(served.target, [(clients, requests, level, deadline, retries)], seconds)
    return {
        "clients": clients,
        "goodput_qps": len(level.latencies) / seconds,
        "answered": len(level.latencies),
        "refused": level.refused,
        "errors": level.errors,
        "wrong": level.wrong,
        **quantiles_ms(level),
        "server_rss_mb": served.rss_mb(),
        "answers_per_second": [sum(1 for t in level.answered_at if s <= t < s + 1) for s in range(int(seconds))],
    }


def recovered_after(per_second: list[int], capacity_qps: float) -> int | None:
    """Seconds until every later second answers at least 90% of the capacity figure (None: never)."""
    for second in range(len(per_second)):
        if all(count >= 0.9 * capacity_qps for count in per_second[second:]):
            return second
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="each level's length")
    parser.add_argument("--deadline", type=float, default=2.0, help="each request's deadline, in seconds")
    parser.add_argument("--workdir", default="/tmp/tf-qa-runs")
    parser.add_argument(
        "--retries",
        type=int,
        default=5,
        help="the clients' retries (0: a refused client asks again at once, as clients that ignore the pushback)",
    )
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    server_cpus = pin_load_generator()
    pinned = server_cpus is not None
    repository = export_seeded(args.workdir, "tiny")
    cases = good_cases(64)
    expected = expected_answers(repository / "1", cases)
    results = []
    with Served(repository, cpus=server_cpus) as served:
        run_level(served, 4, 3, cases, expected, args.deadline, args.retries)  # warm connections and kernels
        capacity = run_level(served, 8, args.seconds, cases, expected, args.deadline, args.retries)
        results.append({"level": "8 clients (capacity)", **capacity})
        print(_line(results[-1]))
        for name, clients in (("2x", 16), ("4x", 32), ("64 clients", 64), ("1x again (recovery)", 8)):
            level = run_level(served, clients, args.seconds, cases, expected, args.deadline, args.retries)
            results.append({"level": name, **level})
            print(_line(results[-1]))
    base = results[0]["goodput_qps"]
    for row in results[1:]:
        print(f"{row['level']}: goodput {row['goodput_qps'] / base:.2f}x the 8-client figure")
    recovery = results[-1]
    recovery["recovered_after_s"] = recovered_after(recovery["answers_per_second"], base)
    print(
        f"after the overload: answers per second {recovery['answers_per_second'][:12]}; at 90% of the 8-client "
        f"figure from second {recovery['recovered_after_s']} on"
    )
    if args.json:
        record = {"cpu": cpu_name(), "pinned": pinned, "retries": args.retries, "levels": results}
        Path(args.json).write_text(json.dumps(record, indent=1))
    return 0


def _line(row: dict) -> str:
    return (
        f"{row['level']:22} {row['clients']:3} clients: {row['goodput_qps']:7.1f} answers/s  refused {row['refused']:6}"
        f"  errors {row['errors']:4}  wrong {row['wrong']}  p50 {row['p50_ms']:6.1f} ms  p99 {row['p99_ms']:7.1f} ms"
        f"  server RSS {row['server_rss_mb']:.0f} MB"
    )


if __name__ == "__main__":
    sys.exit(main())
