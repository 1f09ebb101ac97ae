"""The trained demo model's int8 export (``--matmul-dtype int8 --parallel-branches 2``, calibrated on its training
articles): its ranges recorded, fit for TF Serving (the native check included), within 1.0 F1 of float32 on held-out
questions, the same answers alone as in batches and in TensorFlow's C++ runtime as in-process. A file of its own,
so that its export runs beside the other trained-model tests."""

from __future__ import annotations

from held_out import NEEDS_SQUAD, evaluate, within_f1_of_float32

from tf_qa.cli import main
from tf_qa.graph.options import ExportOptions
from tf_qa.saved_model.layout import read_export_record

pytestmark = NEEDS_SQUAD


def test_int8_records_its_calibration_and_fits_tf_serving(trained_int8, capsys):
    record = read_export_record(trained_int8 / "1")
    options = ExportOptions.from_dict(record["options"])
    assert (options.matmul_dtype, options.parallel_branches) == ("int8", 2)
    assert len(options.int8_ranges) == 6 * 2 * 4  # layers x branches x (query-key-value, output, lin1, lin2)
    assert record["int8_calibration"].startswith("256 questions of squad-v1.1-dev-part1.json")
    assert main(["validate", str(trained_int8 / "1")]) == 0  # the C++ runtime's answers equal the session's
    assert "oneDNN ops: _QuantizedMatMul" in capsys.readouterr().out


def test_int8_loses_at_most_one_f1_point_and_answers_alone_as_in_batches(trained_int8, tmp_path_factory, request):
    batched = within_f1_of_float32(tmp_path_factory, request, trained_int8, "int8")
    # The ranges are constants of the graph: asked one at a time, and in TensorFlow's C++ runtime, the same answers.
    _, alone = evaluate(tmp_path_factory, "--saved-model", str(trained_int8), "--batch-size", "1")
    assert alone == batched
    _, native = evaluate(tmp_path_factory, "--saved-model", str(trained_int8), "--native")
    assert native == batched
