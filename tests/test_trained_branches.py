"""The trained demo model's bfloat16 export with each block in two parallel branches (``--parallel-branches 2``):
recorded in the export, within 1.0 F1 of float32 on held-out questions, as bfloat16 itself must be, and the same
answers alone and in batches. A file of its own, so that its export runs beside the other trained-model tests."""

from __future__ import annotations

from held_out import NEEDS_SQUAD, evaluate, within_f1_of_float32

from tf_qa.saved_model.layout import read_export_record

pytestmark = NEEDS_SQUAD


def test_two_branches_lose_at_most_one_f1_point_and_answer_alone_as_in_batches(
    trained_bf16_branches, tmp_path_factory, request
):
    options = read_export_record(trained_bf16_branches / "1")["options"]
    assert (options["matmul_dtype"], options["parallel_branches"]) == ("bfloat16", 2)
    batched = within_f1_of_float32(tmp_path_factory, request, trained_bf16_branches, "bfloat16 in two branches")
    # An answer never depends on the batch it was served in: asked one at a time, the same answers.
    _, alone = evaluate(tmp_path_factory, "--saved-model", str(trained_bf16_branches), "--batch-size", "1")
    assert alone == batched
