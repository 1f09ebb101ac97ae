"""Peak server memory against context length: one context of 10k, 100k and 1M characters, tiny and base models.

The exports raise ``--max-text-bytes`` and ``--max-windows`` so that 1M characters is allowed. For each size it
prints the server's peak RSS minus its RSS before the request (``tf-qa serve`` in a subprocess, peak reset
before each request), the time, and the ratio of memory to the 10k row, which stays near the length ratio when
memory is linear in the input.

    python benchmarks/memory_vs_length.py [--sizes tiny base] [--workdir /tmp/tf-qa-runs]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from served import MODEL_NAME, SIZES, Served, export_seeded, random_words

from tf_qa.client import QAClient

LENGTHS = (10_000, 100_000, 1_000_000)
RAISED_LIMITS = ("--max-text-bytes", "2000000", "--max-windows", "8192")


def context(chars: int) -> str:
    return random_words(chars, seed=chars)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", choices=SIZES, default=list(SIZES))
    parser.add_argument("--workdir", default="/tmp/tf-qa-runs")
    args = parser.parse_args()
    for size in args.sizes:
        repository = export_seeded(args.workdir, size, *RAISED_LIMITS)
        with Served(repository) as served, QAClient(served.target, MODEL_NAME, timeout=600, retries=0) as client:
            client.answer("Warm up?", context(2_000))
            print(f"{size} model: idle RSS {served.rss_mb():.0f} MB")
            first = None
            for length in LENGTHS:
                text = context(length)
                served.reset_peak()
                before = served.rss_mb()
                started = time.monotonic()
                answer = client.answer("What is the capital?", text)
                seconds = time.monotonic() - started
                grown = served.peak_rss_mb() - before
                first = first or (grown, length)
                print(
                    f"  {length:>9,} chars: peak - before {grown:7.0f} MB  ({grown / max(first[0], 1):6.1f}x for "
                    f"{length / first[1]:5.0f}x the length)  {seconds:6.2f} s  answer {answer['answer'][:30]!r}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
