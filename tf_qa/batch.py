"""``tf-qa batch``: answers a file of questions on Apache Beam, bad records to a dead-letter file.

Input is JSON Lines (``.jsonl``: ``{"id", "question", "context"}``, optionally ``top_k``, ``max_answer_len``,
``handle_impossible_answer``), a SQuAD file (``.json``) or TF Serving request logs (anything else: a
``PredictionLog`` TFRecord file, or the prefix of rotated ones, as ``tf-qa serve`` writes them); output is JSON
Lines of ``{"id", "answer", "score", "start", "end"}`` (``{"id", "answers": [...]}`` where ``top_k`` > 1). A
record that cannot be answered (not JSON, a field missing or of the wrong type, empty text, text that is not
UTF-8, over a limit of the export) becomes one line ``{"id", "error"}`` of the dead-letter file and never fails
the job.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import apache_beam as beam
from apache_beam.io import ReadFromText, WriteToText
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from tf_qa.beam import Question

#: The DirectRunner on every core of this machine, unless the command line says otherwise.
DEFAULT_BEAM_ARGS = ["--direct_num_workers=0", "--direct_running_mode=multi_processing"]
_OPTIONS = {"top_k": int, "max_answer_len": int, "handle_impossible_answer": bool}


def parse_record(line: str) -> tuple[str, object]:
    """``("ok", (id, Question))`` or ``("bad", {"id", "error"})`` for one JSON Lines record."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        return "bad", {"id": None, "error": f"not JSON: {error}"}
    if not isinstance(record, dict):
        return "bad", {"id": None, "error": "a record must be a JSON object"}
    key = record.get("id")
    problem = _problem(record)
    if problem:
        return "bad", {"id": key, "error": problem}
    options = {name: record[name] for name in _OPTIONS if name in record}
    return "ok", (str(key), Question(record["question"], record["context"], **options))


def _problem(record: dict) -> str | None:
    if not isinstance(record.get("id"), (str, int)) or isinstance(record.get("id"), bool):
        return "'id' must be a string or an integer"
    for field in ("question", "context"):
        text = record.get(field)
        if not isinstance(text, str):
            return f"'{field}' must be a string"
        if not text.strip():
            return f"'{field}' is empty"
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return f"'{field}' is not valid UTF-8 (a lone surrogate)"
    for name, kind in _OPTIONS.items():
        if name in record and (type(record[name]) is not kind or (kind is int and record[name] < 1)):
            return f"'{name}' must be {'a positive integer' if kind is int else 'true or false'}"
    return None


def squad_records(path: str) -> list[str]:
    """A SQuAD file's questions as JSON Lines records (v2.0 files: unanswerable questions allowed)."""
    from tf_qa.squad import load_squad

    questions = load_squad(path)
    unanswerable = any(not q.answers for q in questions)
    return [
        json.dumps({"id": q.id, "question": q.question, "context": q.context, "handle_impossible_answer": unanswerable})
        for q in questions
    ]


def request_log_records(path: str) -> list[str]:
    """The questions of request logs (a PredictionLog TFRecord file, or the prefix of rotated ones) as records."""
    from tf_qa.questions import request_log_questions

    return [json.dumps({"id": q.id, "question": q.question, "context": q.context}) for q in request_log_questions(path)]


def _answer_line(keyed) -> str:
    key, result = keyed
    answer = result.inference
    if isinstance(answer, list):
        return json.dumps({"id": key, "answers": answer}, ensure_ascii=False)
    return json.dumps({"id": key, **answer}, ensure_ascii=False)


def _is_refused(keyed, partitions: int) -> int:
    answer = keyed[1].inference
    return int(isinstance(answer, dict) and "error" in answer)


def build(pipeline: beam.Pipeline, lines, handler, output: str, dead_letter: str) -> None:
    """The pipeline: parse, answer (RunInference), write answers and dead letters."""
    answered_counter, refused_counter = Metrics.counter("tf_qa", "answered"), Metrics.counter("tf_qa", "refused")

    def count(item, counter):
        counter.inc()
        return item

    good, bad = (
        lines
        | "Parse" >> beam.Map(parse_record)
        | "Bad?" >> beam.Partition(lambda kind_value, partitions: int(kind_value[0] == "bad"), 2)
    )
    good, bad = good | "Good records" >> beam.Map(lambda kv: kv[1]), bad | "Bad records" >> beam.Map(lambda kv: kv[1])
    answered, refused = (
        good | "Answer" >> RunInference(KeyedModelHandler(handler)) | "Refused?" >> beam.Partition(_is_refused, 2)
    )
    (
        answered
        | "Count answers" >> beam.Map(count, answered_counter)
        | "Format" >> beam.Map(_answer_line)
        | "Write answers" >> WriteToText(output, shard_name_template="", num_shards=1)
    )
    refused_records = refused | "As errors" >> beam.Map(lambda kv: {"id": kv[0], "error": kv[1].inference["error"]})
    (
        (bad, refused_records)
        | beam.Flatten()
        | "Count errors" >> beam.Map(count, refused_counter)
        | "Format errors" >> beam.Map(lambda record: json.dumps(record, ensure_ascii=False))
        | "Write dead letters" >> WriteToText(dead_letter, shard_name_template="", num_shards=1)
    )


def run(input_path: str, handler, output: str, dead_letter: str, beam_args: Iterable[str]) -> dict[str, int]:
    """Runs the pipeline to the end; returns how many records were answered and dead-lettered."""
    pipeline = beam.Pipeline(options=PipelineOptions(list(beam_args) or DEFAULT_BEAM_ARGS))
    if input_path.endswith(".json"):
        lines = pipeline | "Read SQuAD" >> beam.Create(squad_records(input_path))
    elif input_path.endswith(".jsonl"):
        lines = pipeline | "Read" >> ReadFromText(input_path)
    else:  # TF Serving request logs (tf-qa serve's, from a model config's logging_config)
        lines = pipeline | "Read request logs" >> beam.Create(request_log_records(input_path))
    build(pipeline, lines, handler, output, dead_letter)
    result = pipeline.run()
    result.wait_until_finish()
    counts = {}
    for name in ("answered", "refused"):
        found = result.metrics().query(MetricsFilter().with_namespace("tf_qa").with_name(name))["counters"]
        counts[name] = sum(counter.committed or 0 for counter in found)
    return counts
