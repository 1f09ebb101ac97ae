"""Export options: one definition, validated once, the same flags on the command line, rebuilt from metadata."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tf_qa.arguments import build_parser
from tf_qa.graph.limits import RequestLimits, export_flag
from tf_qa.graph.options import ExportOptions, flag_fields


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_seq_len": 64, "doc_stride": 64}, "doc_stride (64) must be in [0, max_seq_len=64)"),
        ({"doc_stride": -1}, "doc_stride must be an integer of at least 0; got -1"),
        ({"max_answer_len": 0}, "max_answer_len must be an integer of at least 1; got 0"),
        ({"max_answer_len": True}, "max_answer_len must be an integer of at least 1; got True"),
        ({"window_group_size": 1.5}, "window_group_size must be an integer of at least 0; got 1.5"),
        ({"window_length_multiple": 0}, "window_length_multiple must be an integer of at least 1; got 0"),
        ({"matmul_dtype": "float16"}, "matmul_dtype must be one of float32, bfloat16, int8; got 'float16'"),
        ({"parallel_branches": 0}, "parallel_branches must be an integer of at least 1; got 0"),
        ({"parallel_branches": 2}, "parallel_branches above 1 needs matmul_dtype bfloat16 or int8"),
        (
            {"matmul_dtype": "int8", "parallel_branches": 1},
            "matmul_dtype int8 needs parallel_branches of at least 2: with whole blocks it lost more than 1.0 F1 "
            "against float32 (benchmarks/README.md)",
        ),
        ({"int8_ranges": {"a": (0, 1)}}, "int8_ranges are for matmul_dtype int8, not float32"),
        ({"int8_channel_divisors": {"a": {1: 2.0}}}, "int8_channel_divisors are for matmul_dtype int8, not float32"),
        (
            {"matmul_dtype": "int8", "int8_channel_divisors": {"a": {"1": 0.5}}},
            "int8_channel_divisors['a'] must map channel numbers to divisors of at least 1; got {'1': 0.5}",
        ),
        (
            {"matmul_dtype": "int8", "int8_channel_divisors": {"a": [3]}},
            "int8_channel_divisors['a'] must map channel numbers to divisors of at least 1; got [3]",
        ),
        (
            {"matmul_dtype": "int8", "int8_ranges": {"a": (1, 1)}},
            "int8_ranges['a'] must be finite with low < high; got (1, 1)",
        ),
        (
            {"matmul_dtype": "int8", "int8_ranges": {"a": "x"}},
            "int8_ranges['a'] must be a (low, high) pair of numbers; got 'x'",
        ),
        (
            {"matmul_dtype": "int8", "int8_ranges": {"a": (0, float("nan"))}},
            "int8_ranges['a'] must be finite with low < high; got (0, nan)",
        ),
        ({"limits": {"max_top_k": 0}}, "max_top_k must be an integer from 1 to 2^31-1; got 0"),
    ],
)
def test_bad_options_are_refused_by_name(options, message):
    with pytest.raises(ValueError) as raised:
        ExportOptions(**options)
    assert str(raised.value) == message


def test_max_seq_len_defaults_to_the_checkpoints_at_most_384():
    assert ExportOptions().with_max_seq_len(512).max_seq_len == 384
    assert ExportOptions().with_max_seq_len(256).max_seq_len == 256
    assert ExportOptions(max_seq_len=200).with_max_seq_len(512).max_seq_len == 200


def test_metadata_round_trip_keeps_every_option():
    options = ExportOptions(
        max_seq_len=256,
        doc_stride=32,
        window_group_size=0,
        matmul_dtype="int8",
        parallel_branches=2,
        int8_ranges={"layer_0/branch_0/qkv": (-7.0625, 6.3125)},
        int8_channel_divisors={"layer_0/branch_0/lin2": {17: 3.5}},
        limits=RequestLimits(max_examples=8),
    )
    assert ExportOptions.from_dict(json.loads(json.dumps(options.as_dict()))) == options
    with pytest.raises(TypeError):
        ExportOptions.from_dict({**options.as_dict(), "unknown_option": 1})


@pytest.mark.parametrize(
    ("options", "multiple"),
    [
        ({}, 1),
        ({"matmul_dtype": "bfloat16"}, 32),
        ({"matmul_dtype": "int8"}, 8),
        ({"matmul_dtype": "bfloat16", "window_length_multiple": 8}, 8),
    ],
)
def test_windows_are_padded_by_matmul_dtype_unless_asked(options, multiple):
    assert ExportOptions(**options).window_length_multiple == multiple


def test_an_export_recorded_before_window_padding_padded_nothing():
    recorded = ExportOptions(matmul_dtype="bfloat16").as_dict()
    del recorded["window_length_multiple"]
    assert ExportOptions.from_dict(recorded).window_length_multiple == 1


@pytest.mark.parametrize(("matmul_dtype", "branches"), [("float32", 1), ("bfloat16", 1), ("int8", 2)])
def test_blocks_run_whole_unless_asked_or_int8(matmul_dtype, branches):
    assert ExportOptions(matmul_dtype=matmul_dtype).parallel_branches == branches


def test_an_export_recorded_before_parallel_branches_ran_its_blocks_whole():
    recorded = ExportOptions(matmul_dtype="bfloat16").as_dict()
    del recorded["parallel_branches"]
    assert ExportOptions.from_dict(recorded).parallel_branches == 1


def test_export_flags_are_the_options_fields_and_limits():
    args = build_parser().parse_args(["export", "--output", "x"])
    for field in flag_fields():
        assert getattr(args, field.name) == field.default
    for name, default in RequestLimits().as_dict().items():
        assert getattr(args, name) == default
    flags = {
        action.option_strings[0]
        for action in build_parser()._subparsers._group_actions[0].choices["export"]._actions
        if action.option_strings
    }
    expected = {export_flag(f.name) for f in flag_fields()} | {export_flag(n) for n in RequestLimits().as_dict()}
    assert expected <= flags
    # Options without a flag keep the pipeline's defaults (they are set through the Python API).
    assert {f.name for f in dataclasses.fields(ExportOptions)} - {f.name for f in flag_fields()} == {
        "handle_impossible_answer",
        "align_to_words",
        "int8_ranges",
        "int8_channel_divisors",
        "limits",
    }


def test_export_refuses_bad_options_as_usage_errors(capsys):
    from tf_qa.cli import main

    assert main(["export", "--demo", "--output", "/nonexistent/x", "--max-seq-len", "64", "--doc-stride", "64"]) == 2
    assert "doc_stride (64) must be in [0, max_seq_len=64)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--model", "m", "--matmul-dtype", "int8"], "--matmul-dtype int8 calibrates its ranges on questions: give"),
        (["--model", "m", "--calibration", "q.jsonl"], "--calibration is for --matmul-dtype int8"),
        (["--model", "m", "--matmul-dtype", "int8", "--calibration", "/nonexistent/q.json"], "cannot read"),
        (["--model", "m", "--matmul-dtype", "int8", "--calibration", "{empty}"], "has no question with a context"),
        (["--model", "m", "--matmul-dtype", "int8", "--calibration", "{bad}"], "line 1: not a {id, question, context}"),
    ],
)
def test_int8_calibration_is_refused_as_a_usage_error_naming_the_problem(tmp_path, capsys, flags, message):
    from tf_qa.cli import main

    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "bad.jsonl").write_text('{"question": "q"}\n')
    flags = [flag.format(empty=tmp_path / "empty.jsonl", bad=tmp_path / "bad.jsonl") for flag in flags]
    assert main(["export", "--output", str(tmp_path / "out"), *flags]) == 2
    assert message in capsys.readouterr().err
