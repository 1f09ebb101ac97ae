"""Mixed load: light clients (one short question a request) beside heavy ones (32 long contexts a request) against
``tf-qa serve``, with its default window budget (``--max-windows-in-flight`` 512) and with admission by count
only (the budget out of reach), to show what admission by cost does for the light requests.

The server runs pinned to one core and the load generator (this process: a thread per closed-loop client) to the
other, where the machine has two or more. Light clients have a 2 s deadline and heavy ones 30 s; both follow the
server's retry pushback. Answers are compared with the export's own, computed in this process. Per setting and
class it prints questions answered per second, requests refused, wrong answers and p50/p99 per request.

    python benchmarks/mixed_load.py [--seconds 20] [--workdir /tmp/tf-qa-runs] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_and_faults import expected_answers, good_cases
from overload import Level, pin_load_generator, quantiles_ms, run_clients
from served import Served, cpu_name, export_seeded

LIGHT_CLIENTS, HEAVY_CLIENTS, HEAVY_BATCH = 8, 8, 32
SETTINGS = {"window budget 512 (default)": 512, "count only (budget 10^6)": 10**6}


def summary(level: Level, seconds: float, questions_per_request: int) -> dict:
    return {
        "questions_per_s": len(level.latencies) * questions_per_request / seconds,
        "answered_requests": len(level.latencies),
        "refused": level.refused,
        "errors": level.errors,
        "wrong": level.wrong,
        **quantiles_ms(level),
    }


def run_setting(served: Served, seconds: float, light, heavy) -> dict:
    levels = {"light": Level(), "heavy": Level()}
    groups = [(LIGHT_CLIENTS, light, levels["light"], 2.0, 5), (HEAVY_CLIENTS, heavy, levels["heavy"], 30.0, 5)]
    run_clients(served.target, groups, seconds)
    return {"light": summary(levels["light"], seconds, 1), "heavy": summary(levels["heavy"], seconds, HEAVY_BATCH)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="each setting's length")
    parser.add_argument("--workdir", default="/tmp/tf-qa-runs")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    server_cpus = pin_load_generator()
    repository = export_seeded(args.workdir, "tiny")
    pool = good_cases(256)
    light_cases = sorted(pool, key=lambda case: len(case[1]))[:64]  # the shortest: one window each
    heavy_cases = sorted(pool, key=lambda case: len(case[1]))[-HEAVY_BATCH:]  # the longest: about 4 windows each
    light = [([q], [c], [a]) for (q, c), a in zip(light_cases, expected_answers(repository / "1", light_cases))]
    heavy_answers = expected_answers(repository / "1", heavy_cases)
    heavy = [([q for q, _ in heavy_cases], [c for _, c in heavy_cases], heavy_answers)]
    results = {}
    for name, budget in SETTINGS.items():
        extra = ("--max-windows-in-flight", str(budget))
        with Served(repository, cpus=server_cpus, extra_args=extra) as served:
            run_setting(served, 3, light, heavy)  # warm connections and kernels
            results[name] = run_setting(served, args.seconds, light, heavy)
        for kind, row in results[name].items():
            print(
                f"{name:28} {kind:5}: {row['questions_per_s']:7.1f} questions/s  refused {row['refused']:5}  "
                f"errors {row['errors']}  wrong {row['wrong']}  p50 {row['p50_ms']:7.1f} ms  "
                f"p99 {row['p99_ms']:7.1f} ms"
            )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"cpu": cpu_name(), "pinned": server_cpus is not None, "settings": results}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
