"""``tf-qa serve``, the development server: ``repository`` (versions on disk, loading, swaps), ``predictor``
(Predict as TF Serving handles it: admission, checks, deadlines), ``batching``, ``rest`` (TF Serving's REST API,
holding a predictor), ``model_server`` (the gRPC services and the server's lifecycle). Beside it,
``native_grpc``: Predict served from C++ with the model in TensorFlow's C++ runtime in the same process, as stock
tensorflow_model_server answers it.

Imports ``tf_qa.saved_model``'s session and warmup; nothing here imports the graph's builders or the client.
"""
