"""The TF1 session path: how tensorflow_model_server loads and runs a SavedModel (loader, ``serve`` tag, tensor names).

The exporter's self-check, ``tf-qa validate`` and ``tf-qa serve`` all run exports this way, so that what they
check is what TF Serving runs.

Example:

>>> session, signatures = load_session("export/distilbert-squad/1")        # doctest: +SKIP
>>> sorted(signatures)                                                     # doctest: +SKIP
['answer_top_k', 'serving_default', 'token_spans']
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the TF Text ops of the graph, as tensorflow_model_server links them

from tf_qa.saved_model.platform_config import read_platform_config
from tf_qa.signatures import SERVING_DEFAULT


def load_session(path: str, config: tf.compat.v1.ConfigProto | None = None) -> tuple[tf.compat.v1.Session, dict]:
    """Loads a SavedModel as tensorflow_model_server does: the TF1 loader with the ``serve`` tag.

    ``config`` defaults to the session options of the platform config (serving/platform_config.pbtxt).
    Returns the session and the signature defs by name.
    """
    if config is None:
        config = read_platform_config().session_config
    session = tf.compat.v1.Session(graph=tf.Graph(), config=config)
    meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
    return session, dict(meta_graph.signature_def)


def use_session_threads(config: tf.compat.v1.ConfigProto) -> bool:
    """Sizes this process's TensorFlow thread pools as ``config`` says (0: TensorFlow's choice).

    TensorFlow makes its intra-op pool once a process, with the options of the first session or eager context,
    and every later session shares it: tensorflow_model_server's first model sets it from the platform config.
    A Python process runs this before TensorFlow does anything. Returns False, changing nothing, where TensorFlow
    already runs with other sizes (a process that ran TensorFlow before).
    """
    threading = tf.config.threading
    wanted = (config.intra_op_parallelism_threads, config.inter_op_parallelism_threads)
    if wanted == (threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads()):
        return True
    try:
        threading.set_intra_op_parallelism_threads(wanted[0])
        threading.set_inter_op_parallelism_threads(wanted[1])
    except RuntimeError:  # "... cannot be modified after initialization"
        return False
    return True


def use_session_threads_unless_chosen(config: tf.compat.v1.ConfigProto) -> bool:
    """``use_session_threads`` in a process that has not sized TensorFlow's pools itself: an in-process answerer
    then runs an export as tensorflow_model_server would. A process that set ``tf.config.threading`` keeps its
    choice (False)."""
    threading = tf.config.threading
    if threading.get_intra_op_parallelism_threads() or threading.get_inter_op_parallelism_threads():
        return False
    return use_session_threads(config)


def run_signature(session: tf.compat.v1.Session, signature, inputs: dict) -> dict[str, np.ndarray]:
    """Runs a SignatureDef on a session by its tensor names, as TF Serving does: ``inputs`` by input key, every
    output by its key (no validation: trusted inputs)."""
    feeds = {signature.inputs[key].name: value for key, value in inputs.items()}
    names = sorted(signature.outputs)
    return dict(zip(names, session.run([signature.outputs[n].name for n in names], feeds)))


def run_predict_request(session: tf.compat.v1.Session, signatures: dict, request) -> dict[str, np.ndarray]:
    """Runs a PredictRequest on a session by the signature's tensor names (no validation: trusted requests)."""
    signature = signatures[request.model_spec.signature_name or SERVING_DEFAULT]
    return run_signature(session, signature, {k: tf.make_ndarray(v) for k, v in request.inputs.items()})


def run_requests(version_dir, requests: list) -> list[dict]:
    """Runs PredictRequests through a TF1 session on the signature tensor names, as TF Serving does."""
    session, signatures = load_session(str(version_dir))
    try:
        return [run_predict_request(session, signatures, request) for request in requests]
    finally:
        session.close()
