"""Memory allocators under one runtime: the export in TensorFlow's C++ runtime (the native runner), or ONNX
Runtime's pipeline, in one process per allocator (``LD_PRELOAD``), the processes taking turns on the same
held-out questions, so that a drift in the machine's speed falls on all of them.

    python benchmarks/ab_allocators.py /tmp/int8/1 [--batch-size 16] [--context-words 10]
    python benchmarks/ab_allocators.py --onnx DIR/onnx/int8.onnx --checkpoint-pt DIR/checkpoint-pt

Prints each allocator's p50, its ratio to glibc's malloc (the median of the paired ratios, and the ratio of the
medians) and its process's peak resident memory. An allocator that is not installed is left out, saying so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_setup import load_questions, version_folder
from grpc_overhead import cut_contexts, timed_blocks
from served import cpu_name, status_mb

from tf_qa import console
from tf_qa.arguments import positive_int
from tf_qa.saved_model.allocator import TCMALLOC, library_installed

#: Each allocator's library for LD_PRELOAD ("": glibc's own malloc).
ALLOCATORS = {"glibc malloc": "", "jemalloc": "libjemalloc.so.2", "TCMalloc": TCMALLOC}


@contextmanager
def preloaded(library: str):
    """``LD_PRELOAD`` set to ``library`` while the block starts its processes."""
    before = os.environ.get("LD_PRELOAD")
    os.environ["LD_PRELOAD"] = library
    try:
        yield
    finally:
        if before is None:
            del os.environ["LD_PRELOAD"]
        else:
            os.environ["LD_PRELOAD"] = before


def native_side(stack: ExitStack, version_dir: str, library: str, groups: list):
    """(call(group index), pid): the export in a native runner started with ``library`` preloaded."""
    from tf_qa import signatures as contract
    from tf_qa.saved_model.native import NativeSession

    with preloaded(library):
        session = stack.enter_context(NativeSession(version_dir))
    inputs = [contract.answer_top_k_inputs([q for q, _ in g], [c for _, c in g]) for g in groups]
    return (lambda index: session.run("answer_top_k", inputs[index])), session.pid


def onnx_side(stack: ExitStack, onnx: str, checkpoint_pt: str, library: str, cases_file: str):
    """(call(case index), pid): ONNX Runtime's pipeline in a child process started with ``library`` preloaded."""
    command = [sys.executable, __file__, "--onnx-child", onnx, checkpoint_pt, cases_file]
    env = {**os.environ, "LD_PRELOAD": library, "TF_CPP_MIN_LOG_LEVEL": "3"}
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    stack.callback(child.wait, 30)
    stack.callback(child.stdin.close)
    if child.stdout.readline().strip() != "ready":
        raise RuntimeError("ONNX Runtime's pipeline did not start")

    def call(index: int) -> None:
        child.stdin.write(f"{index}\n")
        child.stdin.flush()
        child.stdout.readline()

    return call, child.pid


def onnx_child(onnx: str, checkpoint_pt: str, cases_file: str) -> None:
    """Answers the case indices read on stdin, a line each, with ONNX Runtime's pipeline."""
    from bench_workers import onnx_pipeline

    pipe = onnx_pipeline(onnx, checkpoint_pt)
    cases = json.loads(Path(cases_file).read_text())
    for question, context in cases[:3]:
        pipe(question=question, context=context)
    print("ready", flush=True)
    for line in sys.stdin:
        question, context = cases[int(line)]
        pipe(question=question, context=context)
        print("done", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("version_dir", nargs="?", type=version_folder, help="SavedModel version folder")
    parser.add_argument("--onnx", help="ONNX Runtime's pipeline on this .onnx model instead of an export")
    parser.add_argument("--checkpoint-pt", help="the PyTorch checkpoint folder of --onnx's weights (the tokenizer)")
    parser.add_argument("--questions", type=positive_int, default=150, help="held-out questions asked")
    parser.add_argument("--batch-size", type=positive_int, default=1, help="questions a request (the export only)")
    parser.add_argument("--rounds", type=positive_int, default=3, help="times each request is sent to each side")
    parser.add_argument("--block", type=positive_int, default=25, help="requests a side answers before the next")
    parser.add_argument("--context-words", type=positive_int, help="cut each context to its first N words")
    parser.add_argument("--onnx-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--verbose", action="store_true", help="also show the libraries' own messages")
    args = parser.parse_args()
    if args.onnx_child:
        onnx_child(*args.onnx_child)
        return 0
    if bool(args.version_dir) == bool(args.onnx) or bool(args.onnx) != bool(args.checkpoint_pt):
        parser.error("give a version folder, or --onnx with --checkpoint-pt")
    if not args.verbose:
        console.quiet()
    cases, _ = load_questions(args.questions, held_out=True)
    cases = cut_contexts(cases, args.context_words) if args.context_words else cases
    batch = 1 if args.onnx else args.batch_size
    groups = [cases[i : i + batch] for i in range(0, len(cases) - batch + 1, batch)]
    installed = {name: lib for name, lib in ALLOCATORS.items() if not lib or library_installed(lib)}
    for name in ALLOCATORS.keys() - installed.keys():
        print(f"{name} left out: {ALLOCATORS[name]} is not installed")
    runtime = "ONNX Runtime's pipeline" if args.onnx else f"the export in the native runner, batch {batch}"
    cut = f", contexts cut to {args.context_words} words" if args.context_words else ""
    print(f"{cpu_name()}; {runtime}; {len(groups)} requests x {args.rounds}{cut}, blocks of {args.block}")
    with ExitStack() as stack, tempfile.TemporaryDirectory() as workdir:
        cases_file = Path(workdir) / "cases.json"
        cases_file.write_text(json.dumps(cases))
        sides = {
            name: onnx_side(stack, args.onnx, args.checkpoint_pt, lib, str(cases_file))
            if args.onnx
            else native_side(stack, args.version_dir, lib, groups)
            for name, lib in installed.items()
        }
        calls = {name: call for name, (call, _) in sides.items()}
        indices = [(index,) for index in range(len(groups))]  # each side's call takes a request's index
        timed_blocks(calls, indices[:10], 1, 10, pause=0.2)  # warm: the first calls build the kernels
        seconds = timed_blocks(calls, indices, args.rounds, args.block, pause=0.2)
        rss = {name: status_mb(pid, "VmHWM:") for name, (_, pid) in sides.items()}
    base = np.array(seconds["glibc malloc"])
    for name, values in seconds.items():
        values = np.array(values)
        print(
            f"{name:13s} p50 {1000 * np.median(values):7.2f} ms  x glibc: paired {np.median(values / base):.3f}, "
            f"of the medians {np.median(values) / np.median(base):.3f}; peak RSS {rss[name]:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
