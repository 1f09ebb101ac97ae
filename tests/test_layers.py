"""The package's layers: imports follow the data flow, checkpoint -> graph -> SavedModel -> server, and never
go back; no module imports itself through others (no cycles, imports inside functions included)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tf_qa"

#: What each part of tf_qa may import from tf_qa besides itself. The command line may import anything.
ALLOWED = {
    "tf_qa.defaults": set(),
    "tf_qa.errors": set(),
    "tf_qa.cpu": {"tf_qa.defaults"},  # the bf16 window padding it advises is the export default with AMX
    "tf_qa.arguments": {"tf_qa.defaults", "tf_qa.graph", "tf_qa.server"},  # the options objects make the flags
    # Every error is a tf_qa.errors.TFQAError with a status code: any layer raises them.
    "tf_qa.squad": {"tf_qa.errors"},
    # The pinned encoder, read as DistilBERT weights; the checkpoints it and the random ones make.
    "tf_qa.minilm": {"tf_qa.errors"},
    "tf_qa.weight_deltas": set(),
    "tf_qa.checkpoints": {"tf_qa.defaults", "tf_qa.minilm", "tf_qa.weight_deltas"},
    # The signatures' contract, TensorFlow-free: every runtime and client speaks it.
    "tf_qa.signatures": {"tf_qa.defaults", "tf_qa.protos", "tf_qa.tensors"},
    "tf_qa.graph": {"tf_qa.defaults", "tf_qa.errors", "tf_qa.signatures"},
    # The native runtime speaks TensorProto as TF Serving does: the client's conversions.
    "tf_qa.saved_model": {
        "tf_qa.cpu",
        "tf_qa.defaults",
        "tf_qa.errors",
        "tf_qa.graph",
        "tf_qa.protos",
        "tf_qa.signatures",
        "tf_qa.tensors",
    },
    # The server costs a request before it runs by the graph's own window formula (tf_qa.server.admission), and
    # writes its responses' tensors as the clients read them (tf_qa.tensors: TensorFlow's bytes, without its cost).
    "tf_qa.server": {
        "tf_qa.defaults",
        "tf_qa.errors",
        "tf_qa.graph",
        "tf_qa.protos",  # the C++ front end compiles TF Serving's API from them (tf_qa.server.native_grpc)
        "tf_qa.saved_model",
        "tf_qa.signatures",
        "tf_qa.tensors",
        "tf_qa.tracing",
    },
    "tf_qa.tracing": set(),
    "tf_qa.protos": set(),
    "tf_qa.tensors": {"tf_qa.protos"},
    "tf_qa.client": {
        "tf_qa.defaults",
        "tf_qa.errors",
        "tf_qa.protos",
        "tf_qa.signatures",
        "tf_qa.tensors",
        "tf_qa.tracing",
    },
    "tf_qa.console": set(),
    # Batch answering on Beam: the client (ServingHandler) or the SavedModel in-process (SavedModelHandler).
    "tf_qa.beam": {"tf_qa.defaults", "tf_qa.errors", "tf_qa.client", "tf_qa.saved_model", "tf_qa.signatures"},
    # The question files: SQuAD, JSON Lines, request logs (PredictionLog records, read as the warmup file is).
    # ... and the questions an int8 export calibrates on: the demo model's are its training articles.
    "tf_qa.questions": {"tf_qa.checkpoints", "tf_qa.defaults", "tf_qa.squad", "tf_qa.saved_model", "tf_qa.tensors"},
    "tf_qa.batch": {"tf_qa.beam", "tf_qa.questions", "tf_qa.squad"},
    # The canary check: questions asked of two Answerers (clients or exports).
    "tf_qa.compare": {"tf_qa.client", "tf_qa.saved_model", "tf_qa.signatures", "tf_qa.squad"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """tf_qa module -> the tf_qa modules it imports, anywhere in its body."""
    graph = {}
    for path in sorted(package.rglob("*.py")):
        name = _module_name(path)
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        graph[name] = {m for m in imported if m.startswith("tf_qa.")}
    return {name: {m for m in imported if m in graph} for name, imported in graph.items()}


def _part(module: str) -> str:
    """The layer a module belongs to: its subpackage, or itself for a top-level module."""
    return ".".join(module.split(".")[:2])


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, imported in graph.items():
        part = _part(module)
        if part in ("tf_qa", "tf_qa.cli"):  # the package's lazy public names and the command line
            continue
        if part not in ALLOWED:
            problems.append(f"{module} is in no layer: place it in ALLOWED")
        for target in imported:
            if _part(target) != part and _part(target) not in ALLOWED.get(part, set()):
                problems.append(f"{module} imports {target}")
    return sorted(problems)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                found.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def test_every_import_follows_the_layers():
    graph = import_graph()
    assert {"tf_qa.graph.model", "tf_qa.saved_model.export", "tf_qa.server.model_server"} <= set(graph)
    assert layer_violations(graph) == []


def test_no_import_cycles():
    assert cycles(import_graph()) == []


@pytest.mark.parametrize(
    "module,target",
    [
        ("tf_qa.graph.model", "tf_qa.saved_model.export"),  # the graph reaching forward into the SavedModel
        ("tf_qa.saved_model.session", "tf_qa.server.batching"),  # the SavedModel reaching into the server
        ("tf_qa.client", "tf_qa.server.predictor"),  # the client reaching into the server
    ],
)
def test_a_wrong_import_is_caught(module, target):
    graph = import_graph()
    graph[module] = graph[module] | {target}
    assert layer_violations(graph) == [f"{module} imports {target}"]


def test_a_cycle_is_caught():
    graph = import_graph()
    graph["tf_qa.graph.windows"] = graph["tf_qa.graph.windows"] | {"tf_qa.graph.model"}
    found = cycles(graph)
    assert found and all(cycle[0] == cycle[-1] for cycle in found)
    assert any({"tf_qa.graph.model", "tf_qa.graph.windows"} <= set(cycle) for cycle in found), found


def test_importing_the_package_and_its_options_loads_no_tensorflow():
    code = (
        "import sys, tf_qa, tf_qa.graph.limits, tf_qa.graph.options, tf_qa.defaults; "
        "print('tensorflow' in sys.modules, tf_qa.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "False" and out[1] != "0.0.0"


def test_importing_the_client_loads_no_tensorflow():
    code = (
        "import sys, tf_qa.client; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_serving')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
