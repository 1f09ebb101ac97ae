"""The SavedModel's signatures, its TF1 session path (as tensorflow_model_server runs it) and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tf_qa.signatures import SERVING_DEFAULT, TOKEN_SPANS_SIGNATURE, TOP_K_SIGNATURE

QUESTIONS = ["What is the capital of France?", "Who wrote it?"]
CONTEXTS = [
    "Paris is the capital and most populous city of France, with 2.1 million residents.",
    "The novel Pan Tadeusz was written by Adam Mickiewicz in 1834 — café, 中文, 🥲.",
]


def test_signatures_and_batched_outputs(saved_model):
    assert set(saved_model.signatures) == {SERVING_DEFAULT, TOP_K_SIGNATURE, TOKEN_SPANS_SIGNATURE}
    out = saved_model.signatures[SERVING_DEFAULT](question=tf.constant(QUESTIONS), context=tf.constant(CONTEXTS))
    shapes = {k: v.shape.as_list() for k, v in out.items()}
    assert shapes == {"answer": [2], "score": [2], "start": [2], "end": [2], "windows": [2]}
    assert out["answer"].dtype == tf.string and out["score"].dtype == tf.float32 and out["start"].dtype == tf.int64
    for i, context in enumerate(CONTEXTS):
        start, end = int(out["start"][i]), int(out["end"][i])
        assert 0 <= start < end <= len(context)
        assert out["answer"][i].numpy().decode() == context[start:end]


def test_windows_counts_the_pipelines_windows_per_example(saved_model, hf_tokenizer):
    context = " ".join(["word"] * 1000)
    features = hf_tokenizer(
        "what?", context, truncation="only_second", max_length=384, stride=128, return_overflowing_tokens=True
    )
    out = saved_model.signatures[SERVING_DEFAULT](
        question=tf.constant(["what?", "what?"]), context=tf.constant([context, "Paris"])
    )
    assert len(features["input_ids"]) > 2
    assert out["windows"].numpy().tolist() == [len(features["input_ids"]), 1]


def test_top_k_pads_past_the_real_answers(saved_model):
    # A one-word context has exactly one valid span: the other rows are padding.
    out = saved_model.signatures[TOP_K_SIGNATURE](
        question=tf.constant(["what?", "what?"]),
        context=tf.constant(["Paris", "Paris is nice"]),
        top_k=tf.constant([4, 2]),
        max_answer_len=tf.constant([15, 15]),
        handle_impossible_answer=tf.constant([False, False]),
    )
    assert out["answer"].shape.as_list() == [2, 4]
    assert out["answer"][0].numpy().tolist() == [b"Paris", b"", b"", b""]
    assert out["start"][0].numpy().tolist() == [0, -1, -1, -1]
    assert out["end"][0].numpy().tolist() == [5, -1, -1, -1]
    assert out["score"][0, 1:].numpy().tolist() == [0.0, 0.0, 0.0]
    # The second example asked for 2: ranks 2 and 3 are padding even though more spans exist.
    assert (out["start"][1, :2].numpy() >= 0).all() and out["start"][1, 2:].numpy().tolist() == [-1, -1]


def test_null_answer_with_handle_impossible_answer(saved_model, pipe):
    out = saved_model.signatures[TOP_K_SIGNATURE](
        question=tf.constant(QUESTIONS),
        context=tf.constant(CONTEXTS),
        top_k=tf.constant([1000, 1000]),
        max_answer_len=tf.constant([15, 15]),
        handle_impossible_answer=tf.constant([True, True]),
    )
    for i in range(2):
        # The null answer is the only one with an empty text and start = end = 0 (padding has -1).
        nulls = [r for r, s in enumerate(out["start"][i].numpy()) if s == 0 and out["end"][i, r] == 0]
        assert len(nulls) == 1 and out["answer"][i, nulls[0]] == b""
        null_rank = nulls[0]
        expected = [
            a
            for a in pipe(question=QUESTIONS[i], context=CONTEXTS[i], top_k=1000, handle_impossible_answer=True)
            if a["answer"] == ""
        ][0]
        assert out["score"][i, null_rank].numpy() == pytest.approx(expected["score"], abs=1e-4)


def test_tf1_session_path_matches_tf2(saved_model_dir, saved_model):
    """tensorflow_model_server loads with the TF1 loader and runs the signature's tensor names."""
    expected = saved_model.signatures[SERVING_DEFAULT](question=tf.constant(QUESTIONS), context=tf.constant(CONTEXTS))
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], saved_model_dir)
        signature = meta_graph.signature_def[SERVING_DEFAULT]
        feeds = {signature.inputs["question"].name: QUESTIONS, signature.inputs["context"].name: CONTEXTS}
        names = sorted(signature.outputs)
        values = session.run([signature.outputs[n].name for n in names], feeds)
    got = dict(zip(names, values))
    assert got["answer"].tolist() == expected["answer"].numpy().tolist()
    np.testing.assert_array_equal(got["start"], expected["start"].numpy())
    np.testing.assert_array_equal(got["end"], expected["end"].numpy())
    np.testing.assert_allclose(got["score"], expected["score"].numpy(), atol=1e-5)


def test_token_spans_match_pipeline_decode_spans(saved_model, hf_tokenizer, pipe):
    """The token-level signature equals select_starts_ends + decode_spans on the pipeline's own windows."""
    from conftest import SQUAD_V1, squad_pairs
    from texts import long_context_cases
    from transformers.pipelines.question_answering import select_starts_ends

    pairs = (squad_pairs(SQUAD_V1, 40) if SQUAD_V1.exists() else []) + long_context_cases(hf_tokenizer)[:10]
    windows = []
    for question, context in pairs:
        enc = hf_tokenizer(
            question, context, truncation="only_second", max_length=384, stride=128, return_overflowing_tokens=True
        )
        for i in range(len(enc["input_ids"])):
            windows.append((enc["input_ids"][i], [int(s != 1) for s in enc.sequence_ids(i)]))
    width = max(len(ids) for ids, _ in windows)
    input_ids = np.zeros([len(windows), width], np.int32)
    attention = np.zeros([len(windows), width], np.int32)
    for row, (ids, _) in enumerate(windows):
        input_ids[row, : len(ids)] = ids
        attention[row, : len(ids)] = 1
    out = saved_model.signatures[TOKEN_SPANS_SIGNATURE](
        input_ids=tf.constant(input_ids), attention_mask=tf.constant(attention)
    )
    compared = 0
    for row, (ids, p_mask) in enumerate(windows):
        logits = pipe.model(input_ids=tf.constant([ids]), attention_mask=tf.ones([1, len(ids)], tf.int32))
        p_mask = np.array([p_mask])
        p_mask[0, 0] = 0  # the pipeline keeps [CLS] unmasked
        starts, ends, scores, _ = select_starts_ends(
            logits.start_logits.numpy(),
            logits.end_logits.numpy(),
            p_mask,
            np.ones([1, len(ids)], np.int64),
            top_k=1,
            max_answer_len=15,
        )
        if scores[0] <= 0.0:
            continue  # a score-0 artifact of the pipeline's [CLS] handling
        compared += 1
        assert (int(out["start"][row]), int(out["end"][row])) == (starts[0], ends[0])
        assert float(out["score"][row]) == pytest.approx(float(scores[0]), abs=1e-4)
    assert compared >= len(windows) - 2


def _answer(saved_model, question, context, **overrides):
    n = len(question)
    args = dict(
        question=tf.constant(question),
        context=tf.constant(context),
        top_k=tf.fill([n], 1),
        max_answer_len=tf.fill([n], 15),
        handle_impossible_answer=tf.fill([n], False),
    )
    args.update({k: tf.constant(v) for k, v in overrides.items()})
    return saved_model.signatures[TOP_K_SIGNATURE](**args)


@pytest.mark.parametrize(
    "question,context,overrides,message",
    [
        (["a?", "b?"], ["ctx"], {}, "same batch size"),
        (["a?"], ["ctx"], {"top_k": [1, 1]}, "same batch size"),
        ([""], ["Some context."], {}, "question is empty or whitespace-only"),
        ([" \t\u3000"], ["Some context."], {}, "question is empty or whitespace-only"),
        (["what?"], [""], {}, "context is empty or whitespace-only"),
        (["what?"], ["   \n "], {}, "context is empty or whitespace-only"),
        ([b"caf\xc3?"], ["Some context."], {}, "question is not valid UTF-8"),
        (["what?"], [b"ok \xff\xfe bytes"], {}, "context is not valid UTF-8"),
        ([" ".join(["word"] * 300)], [" ".join(["ctx"] * 200)], {}, "question is too long"),
        (["what?"], ["Some context."], {"top_k": [0]}, "top_k must be between 1 and"),
        (["what?"], ["Some context."], {"top_k": [10**6]}, "top_k must be between 1 and"),
        (["what?"], ["Some context."], {"max_answer_len": [0]}, "max_answer_len must be at least 1"),
    ],
)
def test_bad_input_is_invalid_argument_naming_the_problem(saved_model, question, context, overrides, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        _answer(saved_model, question, context, **overrides)


def test_long_question_that_still_fits_is_answered(saved_model, pipe):
    """The pipeline only refuses a long question when the context must be cut; so does tf-qa."""
    question, context = " ".join(["word"] * 300), "Paris is the capital of France."
    out = _answer(saved_model, [question], [context])
    expected = pipe(question=question, context=context)
    assert (out["answer"][0, 0].numpy().decode(), int(out["start"][0, 0])) == (expected["answer"], expected["start"])


def test_token_spans_bad_input(saved_model):
    sig = saved_model.signatures[TOKEN_SPANS_SIGNATURE]
    with pytest.raises(tf.errors.InvalidArgumentError, match="same shape"):
        sig(input_ids=tf.zeros([2, 5], tf.int32), attention_mask=tf.zeros([2, 4], tf.int32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="input_ids must be in"):
        sig(input_ids=tf.fill([1, 5], 10**6), attention_mask=tf.ones([1, 5], tf.int32))


@pytest.mark.parametrize(
    "chosen, expected",
    [("", "1 0"), ("tf.config.threading.set_intra_op_parallelism_threads(2)", "2 0")],
    ids=["as-tf-serving", "the-process-chose"],
)
def test_in_process_answerer_sizes_threads_as_the_platform_config_unless_chosen(saved_model_dir, chosen, expected):
    """A fresh process gets the platform config's one thread an op; one that set its own keeps it."""
    import subprocess
    import sys

    script = (
        "import tensorflow as tf\n"
        f"{chosen}\n"
        "from tf_qa.saved_model.answerer import SavedModelAnswerer\n"
        f"model = SavedModelAnswerer({saved_model_dir!r})\n"
        "assert model.answer_batch(['Who?'], ['Ada wrote it.'])\n"
        "threading = tf.config.threading\n"
        "print(threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[-2] == expected
