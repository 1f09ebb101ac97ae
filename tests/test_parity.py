"""The SavedModel answers as transformers.pipeline("question-answering") does, on the same checkpoint."""

from __future__ import annotations

import pytest
from conftest import SQUAD_V1, squad_pairs
from parity import REQUIRED_AGREEMENT, compare, in_batches
from texts import long_context_cases, non_ascii_cases, special_token_cases

from tf_qa.saved_model.answerer import SavedModelAnswerer

CONFIGS = [(1, False), (1, True), (3, False), (3, True)]


@pytest.fixture(scope="module")
def answerer(saved_model_dir, saved_model):
    return SavedModelAnswerer(saved_model_dir, loaded=saved_model)


def _check(pipe, answerer, cases, name, top_k, handle):
    questions = [q for q, _ in cases]
    contexts = [c for _, c in cases]
    answer_fn = in_batches(answerer.answer_batch, batch_size=32)
    counts = compare(pipe, answer_fn, questions, contexts, top_k=top_k, handle_impossible_answer=handle)
    print(counts.summary(f"{name} top_k={top_k} handle_impossible_answer={handle}"))
    for example in counts.examples[:5]:
        print("  differs:", example)
    assert counts.total == len(cases)
    assert counts.agreement >= REQUIRED_AGREEMENT, counts.summary(name)


@pytest.mark.parametrize("top_k,handle", CONFIGS)
def test_squad_v1_first_1000(pipe, answerer, top_k, handle):
    if not SQUAD_V1.exists():
        pytest.skip(f"{SQUAD_V1} is absent")
    _check(pipe, answerer, squad_pairs(SQUAD_V1, 1000), "squad-v1.1[:1000]", top_k, handle)


@pytest.mark.parametrize("top_k,handle", CONFIGS)
def test_long_contexts(pipe, answerer, hf_tokenizer, top_k, handle):
    cases = long_context_cases(hf_tokenizer)
    windows = {
        len(
            hf_tokenizer(q, c, truncation="only_second", max_length=384, stride=128, return_overflowing_tokens=True)[
                "input_ids"
            ]
        )
        for q, c in cases
    }
    assert windows == set(range(2, 11)), windows
    _check(pipe, answerer, cases, "long contexts (2-10 windows)", top_k, handle)


@pytest.mark.parametrize("top_k,handle", CONFIGS)
def test_non_ascii(pipe, answerer, top_k, handle):
    _check(pipe, answerer, non_ascii_cases(), "non-ASCII", top_k, handle)


@pytest.mark.parametrize("top_k,handle", CONFIGS)
def test_special_tokens_written_in_the_text(pipe, answerer, top_k, handle):
    _check(pipe, answerer, special_token_cases(), "special tokens in the text", top_k, handle)


def test_forward_once_answers_as_the_plain_pipeline(checkpoint_dir, pipe, hf_tokenizer):
    from transformers import pipeline

    plain = pipeline("question-answering", model=checkpoint_dir, tokenizer=checkpoint_dir, framework="tf", dtype=None)
    cases = non_ascii_cases()[:6] + long_context_cases(hf_tokenizer)[:1]
    for top_k, handle in CONFIGS:
        for question, context in cases:
            options = {"question": question, "context": context, "top_k": top_k, "handle_impossible_answer": handle}
            assert pipe(**options) == plain(**options)
