"""Two exports side by side in TF Serving's Python session (the platform config's options and threads), their
calls interleaved so that a drift in the machine's speed falls on both: batch-1 p50 over the first ``--questions``
held-out questions (the order alternating question by question), batch-16 rate (each export twice, the order
swapped), and on how many questions the two gave identical outputs.

    tf-qa export --demo --matmul-dtype bfloat16 --parallel-branches 2 --output /tmp/a
    tf-qa export --demo --matmul-dtype bfloat16 --parallel-branches 2 --window-length-multiple 8 --output /tmp/b
    python benchmarks/ab_exports.py /tmp/a/1 /tmp/b/1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_setup import load_questions, version_folder
from bench_workers import _timed
from served import cpu_name

from tf_qa import console
from tf_qa.arguments import positive_int


def session_caller(path: str):
    """``call(cases) -> outputs`` of ``answer_top_k`` on the SavedModel version at ``path``, as TF Serving runs it."""
    from tf_qa.saved_model.session import load_session, run_signature
    from tf_qa.signatures import TOP_K_SIGNATURE, answer_top_k_inputs

    session, signatures = load_session(path)

    def call(cases):
        inputs = answer_top_k_inputs([q for q, _ in cases], [c for _, c in cases])
        return run_signature(session, signatures[TOP_K_SIGNATURE], inputs)

    return call


def compare(path_a: str, path_b: str, cases) -> dict:
    """Exports A and B on ``cases`` in TF Serving's session, their calls interleaved: ``{"p50_ms": {...},
    "rate": {...}, "identical": n}`` (batch-1 p50, batch-16 q/s by export; questions with identical outputs)."""
    calls = {"A": session_caller(path_a), "B": session_caller(path_b)}
    for call in calls.values():  # warm: the first calls build the graph's kernels
        for i in range(5):
            call(cases[i : i + 1])
        call(cases[:16])
    seconds, same = {"A": [], "B": []}, 0
    for i in range(len(cases)):
        outputs = {}
        for name in ("A", "B") if i % 2 == 0 else ("B", "A"):
            elapsed, outputs[name] = _timed(lambda: calls[name](cases[i : i + 1]))
            seconds[name].append(elapsed)
        same += all(np.array_equal(outputs["A"][key], outputs["B"][key]) for key in outputs["A"])
    batches = [cases[i : i + 16] for i in range(0, len(cases) - 15, 16)]
    rate = {"A": 0.0, "B": 0.0}
    for order in (("A", "B"), ("B", "A")):
        for name in order:
            elapsed = sum(_timed(lambda: calls[name](batch))[0] for batch in batches)
            rate[name] += 16 * len(batches) / elapsed / 2
    p50 = {name: 1000 * float(np.median(values)) for name, values in seconds.items()}
    return {"p50_ms": p50, "rate": rate, "identical": same}


def print_comparison(result: dict, questions: int) -> None:
    print(f"{cpu_name()}; {questions} held-out questions, TF Serving's Python session")
    for label, values in (("batch-1 p50 ms", result["p50_ms"]), ("batch-16 q/s", result["rate"])):
        print(f"{label:15s} A {values['A']:.2f}  B {values['B']:.2f}  (B/A {values['B'] / values['A']:.3f})")
    print(f"identical outputs: {result['identical']}/{questions}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=version_folder, help="SavedModel version folder A")
    parser.add_argument("b", type=version_folder, help="SavedModel version folder B")
    parser.add_argument("--questions", type=positive_int, default=200, help="held-out questions asked")
    parser.add_argument("--verbose", action="store_true", help="also show the libraries' own messages")
    args = parser.parse_args()
    if not args.verbose:
        console.quiet()
    from tf_qa.saved_model.platform_config import read_platform_config
    from tf_qa.saved_model.session import use_session_threads

    use_session_threads(read_platform_config().session_config)
    cases, _ = load_questions(args.questions, held_out=True)
    print_comparison(compare(args.a, args.b, cases), len(cases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
