"""Load and fault run: concurrent clients mixing good and bad requests against ``tf-qa serve`` for minutes, while
a new version is published and the server is killed (``kill -9``) and restarted once.

Good requests are compared with the same export's answers computed in this process (the SavedModel loaded with
TensorFlow, no server), so a wrong answer is counted as one; bad requests must be refused with INVALID_ARGUMENT.
Failures inside the restart window (from the kill until the new server is serving, plus one second) are counted
apart. The server's RSS is sampled every second.

    python benchmarks/load_and_faults.py [--minutes 5.5] [--clients 8] [--size tiny] [--workdir /tmp/tf-qa-runs]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from served import MODEL_NAME, SIZES, WORDS, Served, export_seeded

from tf_qa import errors
from tf_qa.client import QAClient

#: Bad requests and what each must get: (question, context, top_k).
BAD = [
    ("   ", "Paris is nice.", 1),
    ("Where?", "", 1),
    (b"caf\xc3", "Paris.", 1),
    ("Where?", "Paris.", 0),
    ("Where?", "Paris.", 5000),
    ("Where?", "a " * 140_000, 1),
]


def good_cases(count: int, seed: int = 7) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [
        (
            f"What {rng.choice(WORDS)} {rng.choice(WORDS)}?",
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 900))) + ".",
        )
        for _ in range(count)
    ]


def expected_answers(version_dir: Path, cases) -> list[tuple]:
    """The export's own answers, computed in-process (no server involved)."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    out = signature(question=tf.constant([q for q, _ in cases]), context=tf.constant([c for _, c in cases]))
    return [
        (a.decode(), int(s), int(e)) for a, s, e in zip(out["answer"].numpy(), out["start"].numpy(), out["end"].numpy())
    ]


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.sent = self.wrong = self.refused_as_expected = 0
        self.failures: list[tuple[float, str]] = []  # (time, error)
        self.latencies: list[float] = []

    def add(self, **counts) -> None:
        with self.lock:
            for key, value in counts.items():
                if key == "failure":
                    self.failures.append(value)
                elif key == "latency":
                    self.latencies.append(value)
                else:
                    setattr(self, key, getattr(self, key) + value)


def client_loop(target: str, cases, expected, tally: Tally, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    with QAClient(target, MODEL_NAME, timeout=30, retries=0) as client:
        while not stop.is_set():
            started = time.monotonic()
            try:
                if rng.random() < 0.2:
                    question, context, top_k = rng.choice(BAD)
                    try:
                        client.answer(question, context, top_k=top_k)
                        tally.add(sent=1, wrong=1)
                    except errors.InvalidRequest:
                        tally.add(sent=1, refused_as_expected=1)
                    continue
                index = rng.randrange(len(cases))
                result = client.answer(*cases[index])
                tally.add(
                    sent=1,
                    latency=time.monotonic() - started,
                    wrong=int((result["answer"], result["start"], result["end"]) != expected[index]),
                )
            except errors.TFQAError as error:
                tally.add(sent=1, failure=(time.monotonic(), f"{type(error).__name__}: {str(error)[:80]}"))
                time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.5)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--size", choices=SIZES, default="tiny")
    parser.add_argument("--workdir", default="/tmp/tf-qa-runs")
    args = parser.parse_args()
    source = export_seeded(args.workdir, args.size)
    repository = Path(args.workdir) / "load-run" / MODEL_NAME
    shutil.rmtree(repository.parent, ignore_errors=True)
    shutil.copytree(source / "1", repository / "1")
    cases = good_cases(64)
    expected = expected_answers(repository / "1", cases)
    duration = args.minutes * 60
    tally, stop, rss = Tally(), threading.Event(), []
    served = Served(repository, extra_args=("--poll-seconds", "1")).start()
    began = time.monotonic()
    clients = [
        threading.Thread(target=client_loop, args=(served.target, cases, expected, tally, stop, i))
        for i in range(args.clients)
    ]
    for thread in clients:
        thread.start()
    restart_window, published = None, False
    while (elapsed := time.monotonic() - began) < duration:
        if served.alive():
            rss.append((elapsed, served.rss_mb()))
        if restart_window is None and elapsed > duration * 0.45:
            print(
                f"[{elapsed:5.0f}s] kill -9 the server (RSS {served.rss_mb():.0f} MB), then start it again", flush=True
            )
            killed = time.monotonic()
            served.kill()
            served.start()
            restart_window = (killed, time.monotonic() + 1.0)
            print(
                f"[{time.monotonic() - began:5.0f}s] serving again after {restart_window[1] - 1 - killed:.1f}s",
                flush=True,
            )
        if not published and elapsed > duration * 0.7:
            shutil.copytree(repository / "1", repository.parent / ".tmp-2")
            (repository.parent / ".tmp-2").rename(repository / "2")
            published = True
            print(f"[{elapsed:5.0f}s] published version 2 (RSS {served.rss_mb():.0f} MB)", flush=True)
        time.sleep(1.0)
    stop.set()
    for thread in clients:
        thread.join(60)
    served.stop()
    report(tally, rss, restart_window, duration, args)
    return 0


def report(tally: Tally, rss, restart_window, duration: float, args) -> None:
    in_window = [f for f in tally.failures if restart_window and restart_window[0] <= f[0] <= restart_window[1]]
    other = [f for f in tally.failures if f not in in_window]
    latencies = sorted(tally.latencies)
    second = [mb for t, mb in rss if 60 <= t < 120]
    last = [mb for t, mb in rss if t >= duration - 60]
    print(f"{args.clients} clients, {duration / 60:.1f} min, {args.size} model")
    print(
        f"requests sent {tally.sent}; good answered {len(latencies)}, wrong answers {tally.wrong}; bad refused as "
        f"expected {tally.refused_as_expected}"
    )
    print(f"failures in the restart window {len(in_window)}; other failures {len(other)}")
    for _, error in other[:5]:
        print(f"  {error}")
    if latencies:
        print(
            f"latency of good requests: p50 {statistics.median(latencies) * 1000:.1f} ms, "
            f"p99 {latencies[int(0.99 * (len(latencies) - 1))] * 1000:.1f} ms"
        )
    if second and last:
        mean2, mean_last = statistics.mean(second), statistics.mean(last)
        print(
            f"server RSS: minute 2 {mean2:.0f} MB, last minute {mean_last:.0f} MB "
            f"({(mean_last / mean2 - 1) * 100:+.1f}%)"
        )


if __name__ == "__main__":
    sys.exit(main())
