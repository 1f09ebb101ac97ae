"""The int8 export against the 2-branch bf16 export it is built on: EM/F1 in two runtimes, alone against batched,
and speed.

``tf-qa export --matmul-dtype int8 --parallel-branches 2`` (``tf_qa.graph.int8``), calibrated on ``--calibration``
questions of the demo model's training articles (a seeded sample), against ``--matmul-dtype bfloat16
--parallel-branches 2 --window-length-multiple 8``. Prints EM/F1 on all the held-out questions of both exports,
in-process (TF2) and in TensorFlow's C++ runtime (``--native``), whether each gives the same answers alone as in
batches of 16, then ``ab_exports.py`` on the two (TF Serving's session, calls interleaved).

    python benchmarks/int8_fused.py --calibration 256 --output /tmp/int8-fused
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_setup import load_questions
from served import cpu_name

from tf_qa import console
from tf_qa.arguments import positive_int

BRANCHES_BF16 = {"matmul_dtype": "bfloat16", "parallel_branches": 2, "window_length_multiple": 8}
BRANCHES_INT8 = {"matmul_dtype": "int8", "parallel_branches": 2}


def export(checkpoint: str, output: Path, calibration=None) -> Path:
    """The 2-branch bf16 export of ``checkpoint``, or its int8 export calibrated on ``calibration`` if given
    (``tf-qa export --matmul-dtype int8 --parallel-branches 2``)."""
    from tf_qa.graph.options import ExportOptions
    from tf_qa.saved_model.export import export_model

    options = ExportOptions(**(BRANCHES_BF16 if calibration is None else BRANCHES_INT8))
    return export_model(checkpoint, output, options=options, report=lambda _: None, calibration=calibration)


def held_out_scores(version_dir: Path, *runtime: str) -> dict:
    """``tf-qa evaluate`` on all the held-out questions: its JSON figures."""
    from tf_qa.checkpoints import HELD_OUT_TITLES
    from tf_qa.cli import main
    from tf_qa.squad import SQUAD_V1_PART

    out = io.StringIO()
    command = ["evaluate", "--squad", str(SQUAD_V1_PART), "--articles", *HELD_OUT_TITLES, "--json"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):  # its progress bar
        assert main([*command, "--saved-model", str(version_dir), *runtime]) == 0
    return json.loads(out.getvalue().strip().splitlines()[-1])


def answers_alone_and_batched(version_dir: Path, cases) -> tuple[int, float]:
    """TF Serving's session on ``cases`` alone and in batches of 16: on how many the top answer and its span are
    the same, and the largest difference of its score."""
    from ab_exports import session_caller

    call = session_caller(str(version_dir))
    batched = [call(cases[i : i + 16]) for i in range(0, len(cases), 16)]
    same, largest = 0, 0.0
    for i in range(len(cases)):
        alone, batch = call(cases[i : i + 1]), batched[i // 16]
        same += all(np.array_equal(alone[key][0], batch[key][i % 16]) for key in ("answer", "start", "end"))
        largest = max(largest, float(np.max(np.abs(alone["score"][0] - batch["score"][i % 16]))))
    return same, largest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calibration", type=positive_int, default=256, help="training questions calibrating")
    parser.add_argument("--output", type=Path, default=None, help="folder for the two exports (default: temporary)")
    parser.add_argument("--questions", type=positive_int, default=200, help="held-out questions asked")
    parser.add_argument("--verbose", action="store_true", help="also show the libraries' own messages")
    args = parser.parse_args()
    if not args.verbose:
        console.quiet()
    from tf_qa.checkpoints import make_trained_demo_checkpoint
    from tf_qa.questions import demo_calibration_questions

    output = args.output or Path(tempfile.mkdtemp())
    checkpoint = make_trained_demo_checkpoint(output / "checkpoint")
    calibration = demo_calibration_questions(args.calibration)
    cases, _ = load_questions(args.questions, held_out=True)
    print(f"{cpu_name()}; the trained demo model, int8 calibrated on {calibration.describe()}")
    exports = {"bf16 2-branch": export(checkpoint, output / "bf16x2")}
    exports["int8 2-branch"] = export(checkpoint, output / "int8", calibration)
    for name, version_dir in exports.items():
        for runtime, flags in (("in-process", ()), ("C++ runtime", ("--native",))):
            scores = held_out_scores(version_dir, *flags)
            figures = f"EM {scores['exact_match']:5.2f}  F1 {scores['f1']:5.2f}  ({scores['total']} questions)"
            print(f"{name:18s} {runtime:12s} {figures}")
        same, largest = answers_alone_and_batched(version_dir, cases)
        print(f"{name:18s} alone and in batches of 16: same top answer {same}/{len(cases)}, score within {largest:.4f}")
    ab = [sys.executable, str(Path(__file__).with_name("ab_exports.py")), "--questions", str(args.questions)]
    for a, b in (("bf16 2-branch", "int8 2-branch"), ("int8 2-branch", "bf16 2-branch")):
        print(f"A = {a}, B = {b}:", flush=True)
        subprocess.run([*ab, str(exports[a]), str(exports[b])], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
