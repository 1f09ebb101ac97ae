"""Defaults shared by more than one layer (the model, the exporter, the server, the clients); no heavy imports.

Each layer's own defaults live with it: the signatures' names in ``tf_qa.signatures``, the serve flags' in
``tf_qa.server.options``."""

from pathlib import Path

#: The transformers pipeline's defaults.
DEFAULT_MAX_SEQ_LEN = 384
DEFAULT_DOC_STRIDE = 128
DEFAULT_MAX_ANSWER_LEN = 15
#: Windows run through the model in groups of this many, sorted by length (see QuestionAnsweringModel).
DEFAULT_WINDOW_GROUP_SIZE = 4
#: A group also ends before a window longer than this many times its shortest one, so a short window is never
#: padded to a much longer one (a question's last window is often far shorter than its full ones).
WINDOW_GROUP_MAX_GROWTH = 1.5
#: Windows go through the model padded to a multiple of this many tokens, by matmul dtype: bf16's AMX kernels are
#: made per shape and kept per thread, 1024 at most, so a few lengths beat hundreds; fp32's kernels fit any shape,
#: and padding would only add work; int8 was measured with 8 (tf_qa.graph.window_groups; benchmarks/README.md).
WINDOW_LENGTH_MULTIPLES = {"float32": 1, "bfloat16": 32, "int8": 8}
#: What the encoder's dense layers may multiply in (bfloat16 and int8 are opt-in; see tf_qa.graph.distilbert).
MATMUL_DTYPES = ("float32", "bfloat16", "int8")
#: Each transformer block runs as this many parts side by side, by matmul dtype. int8 needs two: with whole blocks,
#: its output and lin2 products each one range over both halves, it lost 1.06 F1 on average (benchmarks/README.md).
PARALLEL_BRANCHES = {"float32": 1, "bfloat16": 1, "int8": 2}
MIN_INT8_PARALLEL_BRANCHES = 2
#: The reduced precisions: their blocks run in bfloat16 (int8's products in int8 between), in parallel branches
#: if asked.
REDUCED_MATMUL_DTYPES = ("bfloat16", "int8")

#: Questions an int8 export calibrates on unless told otherwise (its F1 in benchmarks/README.md was measured so).
DEFAULT_CALIBRATION_QUESTIONS = 256

#: The client's gRPC message limit, past gRPC's 4 MB default (long contexts in large batches).
MAX_MESSAGE_BYTES = 256 * 1024 * 1024

#: TF Serving's platform config that tf-qa serves with: a link to the kit's serving/platform_config.pbtxt.
DEFAULT_PLATFORM_CONFIG = Path(__file__).resolve().parent / "saved_model" / "platform_config.pbtxt"
