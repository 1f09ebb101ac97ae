"""The SavedModel for TF Serving: ``export`` (versioned, atomic, self-checked), ``warmup`` records, ``session``
(the TF1 path tensorflow_model_server runs) and ``validate`` (does an export fit TF Serving).

Imports ``tf_qa.graph``; nothing here imports the servers or the client.
"""
