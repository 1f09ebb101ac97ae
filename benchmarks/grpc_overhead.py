"""What a gRPC front end adds to a lone question, on this machine: one export answered eight ways, in blocks of
questions that take turns so that a drift in the machine's speed falls on all of them.

- ``session``: TF Serving's Python session in this process, no gRPC (the export's own time);
- ``native runner``: TensorFlow's C++ runtime in a child process on pipes (``tf_qa/saved_model/native.py``);
- ``least server``: the least Python gRPC server for the export (decode the request, run the signature, encode
  the response; grpcio's thread pool), asked by ``tf_qa.client.QAClient``;
- ``tf-qa serve``: tf-qa's server, asked the same way;
- ``C++ front end``: gRPC served from C++, the model in TensorFlow's C++ runtime in the same process, as in
  tensorflow_model_server (``tf_qa/server/native_grpc.py``), asked the same way; left out where it cannot be built;
- ``C++ client``: the same front end asked by a gRPC client in C++ (``grpc_client.cc``, Debian's gRPC; the same
  requests, each call timed by the client itself): what a client in a compiled language meets, where the ways
  above ask from Python's grpcio;
- ``empty answer``: the least server answering at once without running the model: gRPC's own round trip;
- ``ONNX Runtime``, with ``--onnx MODEL --checkpoint-pt DIR``: the bench's ONNX Runtime row, the transformers
  pipeline around an ONNX Runtime session of the same weights in this process, taking its turns with the others:
  the issue's batch-1 comparison with the machine's drift falling on both sides.

Both servers run in processes of their own and share this machine's cores with the client, as in the bench.

    tf-qa export --demo --matmul-dtype bfloat16 --parallel-branches 2 --window-length-multiple 8 --output /tmp/qa
    python benchmarks/grpc_overhead.py /tmp/qa/1
    python benchmarks/bench.py --model demo --exports int8x2 --output /tmp/bench   # its demo/onnx and checkpoint-pt
    python benchmarks/grpc_overhead.py /tmp/bench/demo/repository-int8x2/bench/1 \\
        --onnx /tmp/bench/demo/onnx/int8.onnx --checkpoint-pt /tmp/bench/demo/checkpoint-pt [--context-words 10]

``--context-words N`` cuts every context to its first N words: the time a question costs before its length does.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ab_exports import session_caller
from bench_setup import load_questions, version_folder
from bench_workers import _timed, onnx_pipeline
from served import MODEL_NAME, Served, cpu_name, free_port

from tf_qa import console
from tf_qa.arguments import positive_int
from tf_qa.saved_model.native import decode_frame, encode_frame

WAYS = (
    "session", "native runner", "least server", "tf-qa serve", "C++ front end", "C++ client", "empty answer",
    "ONNX Runtime",
)  # fmt: skip
CPP_CLIENT_SOURCE = Path(__file__).with_name("grpc_client.cc")


def serve_least(version_dir: str, port: int, empty: bool) -> None:
    """Serves Predict for the export at ``version_dir`` with nothing but decoding, the run and encoding."""
    from concurrent import futures

    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from tf_qa.saved_model.platform_config import read_platform_config
    from tf_qa.saved_model.session import load_session, run_predict_request, use_session_threads
    from tf_qa.tensors import fill_tensor_proto

    use_session_threads(read_platform_config().session_config)
    session, signatures = load_session(version_dir)

    class LeastServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802  the service's method name
            response = predict_pb2.PredictResponse()
            if empty:
                return response
            for key, value in run_predict_request(session, signatures, request).items():
                fill_tensor_proto(response.outputs[key], value)
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(LeastServicer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("serving", flush=True)
    server.wait_for_termination()


@contextmanager
def least_server(version_dir: str, *, empty: bool = False):
    """``serve_least`` in a subprocess; yields its target."""
    port = free_port()
    command = [sys.executable, __file__, version_dir, "--serve-least", str(port)] + (["--empty"] if empty else [])
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        if process.stdout.readline().strip() != "serving":
            raise RuntimeError(f"the least server did not start for {version_dir}")
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)


def _top_k_request(question: str, context: str):
    from tf_qa.signatures import TOP_K_SIGNATURE, answer_top_k_inputs, predict_request

    return predict_request(TOP_K_SIGNATURE, answer_top_k_inputs([question], [context]), MODEL_NAME)


def cpp_client_binary() -> Path:
    """``grpc_client.cc`` built on Debian's gRPC on first use and cached; NativeUnavailable says why it cannot be."""
    from tf_qa.saved_model.native import FRAMES, cached_binary, cxx_compiler, run_build_step
    from tf_qa.server.native_grpc import grpc_flags

    compiler, version = cxx_compiler()
    flags = grpc_flags()

    def command(output: str) -> list[str]:
        return [compiler, "-O2", "-std=c++17", f"-I{FRAMES.parent}", str(CPP_CLIENT_SOURCE), "-o", output, *flags]

    key = [CPP_CLIENT_SOURCE.read_bytes(), FRAMES.read_bytes(), " ".join(command("")).encode(), version.encode()]
    return cached_binary("grpc_client", key, lambda _, output: run_build_step(command(output), "the C++ gRPC client"))


class CppClient:
    """``grpc_client.cc`` asking ``target``: ``timed_block(cases)`` sends a block of (question, context) cases and
    gives each call's seconds as the C++ client measured them; a call asks one question."""

    def __init__(self, target: str):
        self._process = subprocess.Popen([str(cpp_client_binary()), target], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE)  # fmt: skip

    def timed_block(self, cases: list) -> list[float]:
        self._process.stdin.write(encode_frame([_top_k_request(*case).SerializeToString() for case in cases]))
        self._process.stdin.flush()
        answers = [answer.decode() for answer in decode_frame(self._read_exactly)]
        failed = [answer for answer in answers if not answer.startswith("OK ")]
        if failed or len(answers) != len(cases):
            raise RuntimeError(f"the C++ client's calls failed: {failed[:1] or 'no answer'}")
        return [int(answer.split()[1]) / 1e6 for answer in answers]

    def __call__(self, question: str, context: str) -> None:
        self.timed_block([(question, context)])

    def _read_exactly(self, size: int) -> bytes:
        data = self._process.stdout.read(size)
        if len(data) != size:
            raise RuntimeError(f"the C++ client stopped (exit {self._process.wait()})")
        return data

    def close(self) -> None:
        self._process.stdin.close()
        self._process.wait(30)
        self._process.stdout.close()


def request_sender(stack: ExitStack, target: str):
    """``send(question, context)``: the client's request sent on a channel of its own, the response not read."""
    import grpc

    from tf_qa import protos

    stub = protos.PredictionServiceStub(stack.enter_context(grpc.insecure_channel(target)))
    return lambda question, context: stub.Predict(_top_k_request(question, context))


def callers(stack: ExitStack, version_dir: str, onnx: tuple[str, str] | None, ways=WAYS) -> dict:
    """The ``ways`` (of ``WAYS``), each ``call(question, context)``, their servers held open by ``stack``; ONNX
    Runtime's where ``onnx`` gives (model, PyTorch checkpoint)."""
    from tf_qa.client import QAClient
    from tf_qa.saved_model.answerer import NativeAnswerer
    from tf_qa.saved_model.native import NativeUnavailable
    from tf_qa.server.native_grpc import NativeGrpcServer

    def client(target: str):
        return stack.enter_context(QAClient(target, MODEL_NAME, timeout=600)).answer

    front_end = []  # the C++ front end, started once for the ways that ask it

    def cpp_front_end_target() -> str:
        if not front_end:
            front_end.append(stack.enter_context(NativeGrpcServer(version_dir, MODEL_NAME)).target)
        return front_end[0]

    def cpp_front_end():
        try:
            return client(cpp_front_end_target())
        except NativeUnavailable as error:
            print(f"C++ front end left out: {error}")

    def cpp_client():
        try:
            cpp = CppClient(cpp_front_end_target())
        except NativeUnavailable as error:
            print(f"C++ client left out: {error}")
            return None
        stack.callback(cpp.close)
        return cpp

    def onnx_runtime():
        pipe = onnx_pipeline(*onnx)
        return lambda question, context: pipe(question=question, context=context)

    def native_runner():
        native = stack.enter_context(NativeAnswerer(version_dir))
        return lambda question, context: native.answer_batch([question], [context])

    def session():
        call = session_caller(version_dir)
        return lambda question, context: call([(question, context)])

    repository = Path(version_dir).parent
    makers = {
        "session": session,
        "native runner": native_runner,
        "least server": lambda: client(stack.enter_context(least_server(version_dir))),
        "tf-qa serve": lambda: client(
            stack.enter_context(Served(repository, extra_args=("--poll-seconds", "0"))).target
        ),
        "C++ front end": cpp_front_end,
        "C++ client": cpp_client,
        "empty answer": lambda: request_sender(stack, stack.enter_context(least_server(version_dir, empty=True))),
        "ONNX Runtime": onnx_runtime if onnx else lambda: None,
    }
    calls = {way: makers[way]() for way in ways}
    return {way: call for way, call in calls.items() if call is not None}


def p50_in_turn(version_dir: str, cases: list, onnx, ways=WAYS, rounds: int = 3, block: int = 25) -> dict:
    """Each way's p50 ms over ``cases`` asked ``rounds`` times, the ways taking turns ``block`` questions at a time
    after ten warm-up questions each."""
    from tf_qa.saved_model.platform_config import read_platform_config
    from tf_qa.saved_model.session import use_session_threads

    use_session_threads(read_platform_config().session_config)  # the session way's threads, as TF Serving's
    with ExitStack() as stack:
        calls = callers(stack, version_dir, onnx, ways)
        timed_blocks(calls, cases[:10], 1, 10)  # warm: the first calls build the graph's kernels
        seconds = timed_blocks(calls, cases, rounds, block)
    return {way: 1000 * float(np.median(values)) for way, values in seconds.items()}


def cut_contexts(cases: list, words: int) -> list:
    """(question, context) ``cases`` with each context cut to its first ``words`` words (whitespace-separated)."""
    return [(question, " ".join(context.split()[:words])) for question, context in cases]


def timed_blocks(calls: dict, cases: list, rounds: int, block: int, pause: float = 0.0) -> dict[str, list[float]]:
    """Seconds of each call, the ways taking turns a block of questions at a time, in a new order each turn (seeded):
    a rotation would keep each way behind the same one, whose threads may still spin (ONNX Runtime's do); ``pause``
    seconds before each turn (so that the last way's idle threads have stopped spinning)."""
    seconds = {way: [] for way in calls}
    orders = random.Random(0)
    for start in range(0, len(cases) * rounds, block):
        chunk = [cases[i % len(cases)] for i in range(start, start + block)]
        for way in orders.sample(list(calls), len(calls)):
            if pause:
                time.sleep(pause)
            block_timer = getattr(calls[way], "timed_block", None)  # a client that times its own calls
            if block_timer:
                seconds[way] += block_timer(chunk)
            else:
                seconds[way] += [_timed(partial(calls[way], *case))[0] for case in chunk]
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("version_dir", type=version_folder, help="SavedModel version folder, e.g. export/qa/1")
    parser.add_argument("--questions", type=positive_int, default=150, help="held-out questions asked")
    parser.add_argument("--rounds", type=positive_int, default=3, help="times each question is asked each way")
    parser.add_argument("--block", type=positive_int, default=25, help="questions a way answers before the next")
    parser.add_argument(
        "--context-words",
        type=positive_int,
        help="cut each context to its first N words: what a question costs before its length does (each op's floor)",
    )
    parser.add_argument("--serve-least", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--empty", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--onnx", help="also ONNX Runtime in the pipeline: its .onnx model")
    parser.add_argument("--checkpoint-pt", help="the PyTorch checkpoint folder of --onnx's weights (the tokenizer)")
    parser.add_argument("--verbose", action="store_true", help="also show the libraries' own messages")
    args = parser.parse_args()
    if bool(args.onnx) != bool(args.checkpoint_pt):
        parser.error("--onnx and --checkpoint-pt go together")
    if args.onnx and not (Path(args.onnx).is_file() and (Path(args.checkpoint_pt) / "config.json").is_file()):
        parser.error(f"no ONNX model at {args.onnx}, or no checkpoint (config.json) in {args.checkpoint_pt}")
    if not args.verbose:
        console.quiet()
    if args.serve_least is not None:
        serve_least(args.version_dir, args.serve_least, args.empty)
        return 0
    cases, _ = load_questions(args.questions, held_out=True)
    if args.context_words:
        cases = cut_contexts(cases, args.context_words)
    cut = f", contexts cut to {args.context_words} words" if args.context_words else ""
    print(f"{cpu_name()}; {len(cases)} held-out questions x {args.rounds}{cut}, blocks of {args.block}")
    onnx = (args.onnx, args.checkpoint_pt) if args.onnx else None
    p50 = p50_in_turn(args.version_dir, cases, onnx, rounds=args.rounds, block=args.block)
    for way in (way for way in WAYS if way in p50):
        print(f"{way:14s} p50 {p50[way]:6.2f} ms  ({p50[way] / p50['session']:.2f}x the session)")
    print(f"gRPC in Python, least server: +{p50['least server'] - p50['session']:.2f} ms a question")
    print(f"tf-qa serve over the least server: +{p50['tf-qa serve'] - p50['least server']:.2f} ms a question")
    if "C++ front end" in p50:
        added = p50["C++ front end"] - p50["native runner"]
        print(f"gRPC from C++ (and its client) over the native runner's pipes: {added:+.2f} ms a question")
    if "C++ client" in p50 and "C++ front end" in p50:
        added = p50["C++ front end"] - p50["C++ client"]
        print(f"Python's grpcio client over a C++ client, same server: {added:+.2f} ms a question")
    if "ONNX Runtime" in p50:
        answering = WAYS[: WAYS.index("empty answer")]  # the ways that run the model
        ratios = ", ".join(f"{way} {p50[way] / p50['ONNX Runtime']:.2f}x" for way in answering if way in p50)
        print(f"against ONNX Runtime's p50: {ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
