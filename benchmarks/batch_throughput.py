"""Batch throughput: ``tf-qa batch`` on Beam's DirectRunner against the SavedModel called in-process at batch 16.

Same seeded export, same SQuAD questions (synthetic ones where the data is absent). The Beam figure is end to end:
worker start, one model load per worker, reading, batching, answering, writing. One run; a ratio above 1 means
Beam answered faster.

    python benchmarks/batch_throughput.py --size base --questions 300 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from served import cpu_name, export_seeded, random_words

from tf_qa.arguments import positive_int


def questions(count: int) -> list[dict]:
    from tf_qa.squad import SQUAD_V1_PART, load_squad

    if SQUAD_V1_PART.exists():
        return [{"id": q.id, "question": q.question, "context": q.context} for q in load_squad(SQUAD_V1_PART)[:count]]
    return [{"id": str(i), "question": "Which river?", "context": random_words(900, i)} for i in range(count)]


def in_process_rate(version_dir: str, records: list[dict]) -> float:
    from tf_qa.saved_model.answerer import SavedModelAnswerer

    answerer = SavedModelAnswerer(version_dir)
    batches = [records[i : i + 16] for i in range(0, len(records), 16)]
    answerer.answer_batch([r["question"] for r in batches[0]], [r["context"] for r in batches[0]])  # warm
    started = time.perf_counter()
    for batch in batches:
        answerer.answer_batch([r["question"] for r in batch], [r["context"] for r in batch])
    return len(records) / (time.perf_counter() - started)


def beam_rate(version_dir: str, records: list[dict], workers: int, workdir: Path) -> float:
    from tf_qa.batch import run
    from tf_qa.beam import SavedModelHandler

    source = workdir / "questions.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    options = [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
    handler = SavedModelHandler(version_dir)
    started = time.perf_counter()
    counts = run(
        str(source),
        handler,
        str(workdir / "answers.jsonl"),
        str(workdir / "errors.jsonl"),
        options,
    )
    seconds = time.perf_counter() - started
    assert counts["answered"] == len(records), counts
    return len(records) / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("tiny", "base"), default="base")
    parser.add_argument("--questions", type=positive_int, default=300)
    parser.add_argument("--workers", type=positive_int, default=2)
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "tf-qa-batch-throughput"))
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    version_dir = str(export_seeded(workdir, args.size) / "1")
    records = questions(args.questions)
    in_process = in_process_rate(version_dir, records)
    on_beam = beam_rate(version_dir, records, args.workers, workdir)
    print(f"{cpu_name()}, {os.cpu_count()} CPUs; {args.size} model, {len(records)} questions")
    print(f"SavedModel in-process, batch 16:             {in_process:6.2f} q/s")
    print(f"tf-qa batch, DirectRunner, {args.workers} workers:        {on_beam:6.2f} q/s")
    print(f"ratio: {on_beam / in_process:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
