"""Trains tf-qa's demo model: all-MiniLM-L6-v2 as a DistilBERT, fine-tuned for SQuAD question answering.

The recipe (tf_qa/data/minilm_squad/MODEL_CARD.md gives its figures): the pinned encoder (tf_qa.minilm) becomes a
6-layer, 384-wide ``DistilBertForQuestionAnswering`` with a new QA head; it is fine-tuned on the articles of SQuAD
v1.1 dev part 1 that are not held out, with its word embeddings frozen (they are rebuilt from the pinned package,
so the repository carries only the rest, as 4-bit differences from the encoder: tf_qa.weight_deltas); the
held-out articles give its EM/F1, scored with the transformers pipeline on the weights as shipped. Seeded: the same
machine gives the same weights.

PyTorch (the bench extra: pip install -e '.[bench]'), not Keras: on CPU it trains with bf16 autocast on oneDNN,
and the transformers pipeline that scores it is the reference tf-qa's exports are compared with.

    .venv/bin/python scripts/train_demo_model.py            # about 20 min on 2 cores with AMX; --max-steps 20 to try it
    .venv/bin/python scripts/train_demo_model.py --held-out Steam_engine Oxygen 1973_oil_crisis --output /tmp/fold
                                                            # the recipe on another fold of articles (not shipped)
    .venv/bin/python scripts/train_demo_model.py --teachers RUN1 RUN2 RUN3 --output /tmp/distilled
                                                            # distils earlier runs' ensemble (the model card's figure)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]  # tf_qa, and cloze_questions beside this file when imported

from cloze_questions import cloze_questions  # noqa: E402

from tf_qa import minilm, squad, weight_deltas  # noqa: E402
from tf_qa.checkpoints import BUNDLED_VOCAB, HELD_OUT_TITLES, TRAINED_DEMO  # noqa: E402
from tf_qa.cpu import cpu_features  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--squad", default=str(squad.SQUAD_V1_PART), help="SQuAD v1.1 file to train on")
    parser.add_argument("--output", default=str(TRAINED_DEMO), help="folder for weights.safetensors and training.json")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=16)
    # Training windows only: the held-out scores (and every export) use the pipeline's 384 and 128.
    parser.add_argument("--max-seq-len", type=int, default=256, help="tokens a training window")
    parser.add_argument("--doc-stride", type=int, default=96, help="tokens shared by a context's training windows")
    parser.add_argument("--warmup", type=float, default=0.1, help="share of the steps with a rising learning rate")
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument(
        "--layer-lr-decay",
        type=float,
        default=1.0,
        help="learning rate of each layer as a share of the one above it, the QA head at --learning-rate "
        "(1: one rate for all)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=None, help="stop early (a trial run; nothing is written)")
    parser.add_argument(
        "--held-out",
        nargs="+",
        default=list(HELD_OUT_TITLES),
        metavar="TITLE",
        help="articles kept out of training for the EM/F1 (default: the shipped model's; others give a "
        "cross-validation fold of the recipe, written to --output)",
    )
    parser.add_argument(
        "--first-answer-only", action="store_true", help="train on each question's first gold answer only"
    )
    parser.add_argument("--no-bf16", action="store_true", help="train in float32 (bf16 autocast by default)")
    parser.add_argument(
        "--train-word-embeddings", action="store_true", help="fine-tune the word embeddings too (frozen by default)"
    )
    parser.add_argument(
        "--teachers",
        nargs="+",
        default=[],
        metavar="DIR",
        help="runs of this script (their --output, the same articles held out) whose averaged span "
        "log-probabilities the model also learns from: distillation of their ensemble",
    )
    parser.add_argument("--distill-weight", type=float, default=0.5, help="share of the loss from --teachers")
    parser.add_argument(
        "--cloze-epochs",
        type=float,
        default=0.0,
        help="epochs of cloze questions made from the training paragraphs (scripts/cloze_questions.py) before "
        "the SQuAD questions, with their own warmup and decay (0: none)",
    )
    parser.add_argument("--cloze-per-paragraph", type=int, default=8, help="cloze questions made from a paragraph")
    parser.add_argument(
        "--negatives",
        metavar="FILE",
        help="a SQuAD v2.0 file whose unanswerable questions (of the articles not held out) are trained on too, "
        "[CLS] their target",
    )
    parser.add_argument(
        "--plausible-answers",
        metavar="FILE",
        help="a SQuAD v2.0 file whose unanswerable questions (of the articles not held out) are trained on too, "
        "the plausible answers its annotators marked their targets",
    )
    return parser.parse_args(argv)


def plausible_answer_questions(path: str, held_out: set[str]) -> list:
    """SQuAD v2.0's unanswerable questions of the articles not held out, as answerable ones: their gold answers
    the spans the annotators marked plausible (a question written to fit the paragraph, an answer that would fit
    it)."""
    questions = []
    for article in json.loads(Path(path).read_text(encoding="utf-8"))["data"]:
        if article["title"] in held_out:
            continue
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                plausible = qa.get("plausible_answers") or []
                if qa.get("is_impossible") and plausible:
                    texts, starts = tuple(a["text"] for a in plausible), tuple(a["answer_start"] for a in plausible)
                    title, context = article["title"], paragraph["context"]
                    questions.append(squad.SquadQuestion(qa["id"], qa["question"], context, texts, title, starts))
    return questions


def training_features(questions, tokenizer, max_seq_len: int, doc_stride: int, all_answers: bool):
    """Tokenized windows with their start/end token labels, one pair per gold answer (the first only, unless
    ``all_answers``; SQuAD dev has up to 3 per question); an answer outside the window points at [CLS]."""
    encoded = tokenizer(
        [q.question.lstrip() for q in questions],
        [q.context for q in questions],
        truncation="only_second",
        max_length=max_seq_len,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    starts, ends = [], []
    for window, offsets in enumerate(encoded["offset_mapping"]):
        question = questions[encoded["overflow_to_sample_mapping"][window]]
        if not question.answers:  # unanswerable (SQuAD v2.0): the target is [CLS]
            starts.append([0]), ends.append([0])
            continue
        answers = sorted(set(zip(question.answer_starts, question.answers)))
        sequence_ids = encoded.sequence_ids(window)
        context = [i for i, s in enumerate(sequence_ids) if s == 1]
        window_starts, window_ends = [], []
        for first, text in answers if all_answers else [(question.answer_starts[0], question.answers[0])]:
            last = first + len(text)
            if offsets[context[0]][0] > first or offsets[context[-1]][1] < last:
                window_starts.append(0), window_ends.append(0)
            else:
                window_starts.append(next(i for i in context if offsets[i][1] > first))
                window_ends.append(next(i for i in reversed(context) if offsets[i][0] < last))
        starts.append(window_starts), ends.append(window_ends)
    return encoded["input_ids"], encoded["attention_mask"], starts, ends


def span_loss(torch, logits, targets: list[list[int]]):
    """Cross-entropy averaged over each window's gold positions, then over the windows."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    return torch.stack([-log_probs[row, positions].mean() for row, positions in enumerate(targets)]).mean()


def soft_span_loss(torch, logits, targets):
    """Cross-entropy against the teachers' span probabilities ([B, L], zero past each window's end)."""
    return -(targets * torch.log_softmax(logits.float(), dim=-1)).sum(dim=-1).mean()


def teacher_problem(directory: str, held_out: set[str]) -> str | None:
    """Why ``directory`` cannot teach: not a run of this script, or a run that held out other articles (it would
    teach what the held-out score must not have seen); None where it can."""
    record, weights = Path(directory) / "training.json", Path(directory) / "weights.safetensors"
    if not (record.is_file() and weights.is_file()):
        return f"teacher {directory} is not a run of this script (no training.json and weights.safetensors)"
    titles = json.loads(record.read_text())["held_out_titles"]
    if set(titles) != held_out:
        return f"teacher {directory} held out {titles}, not {sorted(held_out)}"
    return None


def load_run(torch, encoder: dict, directory: str):
    """The model a run of this script wrote to ``directory``."""
    from safetensors.numpy import load_file

    model = build_model(torch, encoder)
    round_to_shipped(model, torch, load_file(str(Path(directory) / "weights.safetensors")), encoder)
    return model.eval()


def teacher_targets(torch, teachers: list, features, batch_size: int) -> tuple[list, list]:
    """Per training window, the teachers' ensemble (mean log-probability, renormalized) over its positions."""
    input_ids = features[0]
    starts, ends = [None] * len(input_ids), [None] * len(input_ids)
    order = sorted(range(len(input_ids)), key=lambda i: len(input_ids[i]))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for begin in range(0, len(order), batch_size):
            batch = order[begin : begin + batch_size]
            inputs = window_inputs(torch, features, batch)
            outputs = [teacher(**inputs) for teacher in teachers]
            for field, targets in (("start_logits", starts), ("end_logits", ends)):
                mean = torch.stack([torch.log_softmax(o[field].float(), -1) for o in outputs]).mean(0)
                for row, window in enumerate(batch):
                    targets[window] = torch.softmax(mean[row, : len(input_ids[window])], -1)
    return starts, ends


def length_grouped_batches(torch, lengths: list[int], batch_size: int, generator):
    """Shuffled batches of windows of similar length (as transformers' group_by_length): less padding to train on."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    batches = []
    for group in range(0, len(order), batch_size * 50):
        chunk = sorted(order[group : group + batch_size * 50], key=lambda i: lengths[i], reverse=True)
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def padded(torch, rows: list[list[int]]):
    """Rows padded with 0 ([PAD], and attention 0) to the longest of them."""
    width = max(len(row) for row in rows)
    return torch.tensor([row + [0] * (width - len(row)) for row in rows])


def window_inputs(torch, features, batch: list[int]) -> dict:
    """The model's inputs for the training windows ``batch`` (indices into ``features``), padded to the longest."""
    input_ids, attention_mask = features[0], features[1]
    return {
        "input_ids": padded(torch, [input_ids[i] for i in batch]),
        "attention_mask": padded(torch, [attention_mask[i] for i in batch]),
    }


def padded_probabilities(torch, rows: list, width: int):
    """[B, width] rows of probabilities, zero past each row's own length."""
    return torch.stack([torch.nn.functional.pad(row, (0, width - len(row))) for row in rows])


def build_model(torch, encoder: dict, train_word_embeddings: bool = False):
    """A DistilBERT QA model on ``encoder`` (``minilm.distilbert_encoder()``) with a new QA head."""
    from transformers import DistilBertConfig, DistilBertForQuestionAnswering

    config = DistilBertConfig(vocab_size=30522, **minilm.DISTILBERT_SIZE)
    model = DistilBertForQuestionAnswering(config)
    missing, unexpected = model.load_state_dict(
        {name: torch.from_numpy(array) for name, array in encoder.items()}, strict=False
    )
    assert sorted(missing) == ["qa_outputs.bias", "qa_outputs.weight"] and not unexpected, (missing, unexpected)
    model.distilbert.embeddings.word_embeddings.weight.requires_grad_(train_word_embeddings)
    return model


def parameter_groups(model, args) -> list[dict]:
    """The trainable parameters by weight decay and, with ``--layer-lr-decay`` below 1, by depth: the QA head
    learns at the full rate, each block below it at ``layer_lr_decay`` times the one above, the embeddings last."""
    head_depth = model.config.n_layers + 1  # embeddings 0, blocks 1..n_layers
    groups: dict[tuple[bool, int], list] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        # No decay on the word embeddings: rows of tokens never seen in training stay as the package has them.
        exempt = name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name or "word_embeddings" in name
        if name.startswith("qa_outputs"):
            depth = head_depth
        elif ".transformer.layer." in name:
            depth = 1 + int(name.split(".transformer.layer.")[1].split(".")[0])
        else:
            depth = 0
        groups.setdefault((exempt, depth), []).append(parameter)
    return [
        {
            "params": parameters,
            "weight_decay": 0.0 if exempt else args.weight_decay,
            "lr": args.learning_rate * args.layer_lr_decay ** (head_depth - depth),
        }
        for (exempt, depth), parameters in groups.items()
    ]


def train(model, torch, features, args, log, evaluate=None, soft=None) -> dict:
    """Fine-tunes ``model``; ``evaluate()`` (held-out EM/F1) after each full epoch, when given, goes in the log;
    ``soft``: the teachers' (start, end) targets of each window, a ``--distill-weight`` share of the loss."""
    input_ids, _, starts, ends = features
    lengths = [len(row) for row in input_ids]
    windows = len(starts)
    steps_per_epoch = math.ceil(windows / args.batch_size)
    total_steps = args.max_steps or math.ceil(steps_per_epoch * args.epochs)
    warmup = max(1, int(total_steps * args.warmup))
    optimizer = torch.optim.AdamW(parameter_groups(model, args), lr=args.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total_steps - step) / max(1, total_steps - warmup)))
    )
    generator = torch.Generator().manual_seed(args.seed)
    model.train()
    step, started, losses, epochs = 0, time.perf_counter(), [], []
    while step < total_steps:
        for batch in length_grouped_batches(torch, lengths, args.batch_size, generator):
            if step >= total_steps:
                break
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=not args.no_bf16):
                output = model(**window_inputs(torch, features, batch))
            loss = (
                span_loss(torch, output.start_logits, [starts[i] for i in batch])
                + span_loss(torch, output.end_logits, [ends[i] for i in batch])
            ) / 2
            if soft:
                width = output.start_logits.shape[1]
                taught = sum(
                    soft_span_loss(torch, logits, padded_probabilities(torch, [targets[i] for i in batch], width))
                    for logits, targets in zip((output.start_logits, output.end_logits), soft)
                )
                loss = (1 - args.distill_weight) * loss + args.distill_weight * taught / 2
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step(), schedule.step(), optimizer.zero_grad()
            losses.append(loss.item())
            step += 1
            if step % 50 == 0 or step == total_steps:
                elapsed = time.perf_counter() - started
                log(
                    f"step {step}/{total_steps}  loss {sum(losses[-50:]) / len(losses[-50:]):.3f}  "
                    f"{elapsed / step:.2f} s/step  eta {(total_steps - step) * elapsed / step / 60:.1f} min"
                )
            if evaluate and step % steps_per_epoch == 0 and step < total_steps:
                scores = evaluate()
                epochs.append(
                    {
                        "epoch": step // steps_per_epoch,
                        "exact_match": round(scores["exact_match"], 2),
                        "f1": round(scores["f1"], 2),
                    }
                )
                log(f"epoch {step // steps_per_epoch}: held out EM {scores['exact_match']:.2f}  F1 {scores['f1']:.2f}")
    seconds = round(time.perf_counter() - started, 1)
    return {"steps": total_steps, "windows": windows, "seconds": seconds, "held_out_by_epoch": epochs}


def cloze_stage(model, torch, tokenizer, training, args, log, evaluate) -> dict:
    """Trains ``model`` on cloze questions made from the paragraphs of ``training`` (``--cloze-epochs``, the
    rest of the recipe as given); its run record with the held-out EM/F1 it reaches on them alone."""
    made = cloze_questions(training, args.cloze_per_paragraph, args.seed)
    log(f"cloze stage: {len(made)} questions from {len({q.context for q in training})} paragraphs")
    features = training_features(made, tokenizer, args.max_seq_len, args.doc_stride, all_answers=True)
    run = train(model, torch, features, argparse.Namespace(**{**vars(args), "epochs": args.cloze_epochs}), log)
    scores = evaluate()
    log(f"after the cloze stage: held out EM {scores['exact_match']:.2f}  F1 {scores['f1']:.2f}")
    return {**run, "questions": len(made), "exact_match": round(scores["exact_match"], 2), "f1": round(scores["f1"], 2)}


def shipped_weights(model, encoder: dict) -> dict:
    """What the repository stores (tf_qa.weight_deltas): every trained tensor, the word embeddings only if they
    were trained, as 4-bit differences from ``encoder`` where it has the tensor."""
    trained = model.distilbert.embeddings.word_embeddings.weight.requires_grad
    return weight_deltas.encode(
        {
            name: tensor.detach().float().numpy()
            for name, tensor in model.state_dict().items()
            if trained or name != minilm.WORD_EMBEDDINGS
        },
        encoder,
    )


def round_to_shipped(model, torch, stored: dict, encoder: dict) -> None:
    """Sets the model's weights to what the repository's ``stored`` tensors decode to on ``encoder``."""
    with torch.no_grad():
        for name, array in weight_deltas.decode(stored, encoder).items():
            model.state_dict()[name].copy_(torch.from_numpy(array))


def held_out_scores(model, torch, tokenizer, questions) -> dict:
    """EM/F1 of the transformers pipeline (PyTorch) with the model as it is; leaves it in training mode."""
    from transformers import pipeline

    model.eval()
    answer = pipeline("question-answering", model=model, tokenizer=tokenizer, device="cpu")
    predictions = {}
    for question in questions:
        predictions[question.id] = answer(question=question.question, context=question.context)["answer"]
    model.train()
    return squad.evaluate(questions, predictions)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("USE_TF", "0")  # transformers would import TensorFlow too: this process needs PyTorch only
    import torch
    from safetensors.numpy import save_file
    from transformers import DistilBertTokenizerFast

    started = time.perf_counter()
    log = lambda message: print(f"[{time.perf_counter() - started:7.1f}s] {message}", flush=True)  # noqa: E731
    cpu = cpu_features().describe()
    log(f"CPU: {cpu}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    random.seed(args.seed), torch.manual_seed(args.seed)
    questions = squad.load_squad(args.squad)
    held_out = set(args.held_out)
    unknown = held_out - {q.title for q in questions}
    if unknown:
        log(f"error: --held-out names articles {args.squad} does not have: {', '.join(sorted(unknown))}")
        return 2
    problems = [problem for problem in (teacher_problem(d, held_out) for d in args.teachers) if problem]
    if problems:
        log(f"error: {'; '.join(problems)}")
        return 2
    training = [q for q in questions if q.title not in held_out]
    evaluation = [q for q in questions if q.title in held_out]
    log(f"{len(training)} training questions; {len(evaluation)} held out ({', '.join(sorted(held_out))})")
    if args.negatives:
        negatives = [q for q in squad.load_squad(args.negatives) if not q.answers and q.title not in held_out]
        training += negatives
        log(f"and {len(negatives)} unanswerable questions of {args.negatives}")
    if args.plausible_answers:
        plausible = plausible_answer_questions(args.plausible_answers, held_out)
        training += plausible
        log(f"and {len(plausible)} unanswerable questions of {args.plausible_answers}, their plausible answers")
    tokenizer = DistilBertTokenizerFast(str(BUNDLED_VOCAB))
    features = training_features(training, tokenizer, args.max_seq_len, args.doc_stride, not args.first_answer_only)
    encoder = minilm.distilbert_encoder()  # read and sha256-checked once: the model's start and its storage's base
    soft = None
    if args.teachers:
        teachers = [load_run(torch, encoder, directory) for directory in args.teachers]
        soft = teacher_targets(torch, teachers, features, args.batch_size)
        log(f"the {len(teachers)} teachers' span probabilities of {len(soft[0])} windows")
    model = build_model(torch, encoder, args.train_word_embeddings)
    evaluate = lambda: held_out_scores(model, torch, tokenizer, evaluation)  # noqa: E731
    cloze = cloze_stage(model, torch, tokenizer, training, args, log, evaluate) if args.cloze_epochs else None
    run = train(model, torch, features, args, log, evaluate, soft)
    stored = shipped_weights(model, encoder)
    round_to_shipped(model, torch, stored, encoder)
    scores = held_out_scores(model, torch, tokenizer, evaluation)
    log(f"held out: EM {scores['exact_match']:.2f}  F1 {scores['f1']:.2f}  ({scores['total']} questions)")
    if args.max_steps:
        log("a trial run (--max-steps): nothing written")
        return 0
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    save_file(stored, str(output / "weights.safetensors"), metadata={"format": "pt"})
    recipe = {k: v for k, v in vars(args).items() if k not in ("squad", "output", "max_steps", "held_out")}
    recipe["negatives"] = args.negatives and Path(args.negatives).name
    recipe["plausible_answers"] = args.plausible_answers and Path(args.plausible_answers).name
    record = {
        "encoder": f"{minilm.PACKAGE}=={minilm.PACKAGE_VERSION} (model.safetensors sha256 {minilm.MODEL_SHA256})",
        "trained_on": f"{Path(args.squad).name}: {len(training)} questions, articles not held out"
        + (f" ({len(negatives)} of them unanswerable, from {Path(args.negatives).name})" if args.negatives else ""),
        "held_out_titles": sorted(held_out),
        "held_out": {
            "questions": scores["total"],
            "exact_match": round(scores["exact_match"], 2),
            "f1": round(scores["f1"], 2),
        },
        "recipe": recipe,
        "run": {**run, "cpu": cpu, "torch": torch.__version__},
        **({"cloze_stage": cloze} if cloze else {}),
    }
    (output / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    log(f"wrote {output}/weights.safetensors ({(output / 'weights.safetensors').stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
