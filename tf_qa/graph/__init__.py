"""The serving graph, in the order data flows through it (TensorFlow and Keras only).

``limits`` and ``checks`` (what a request may ask, checked first) -> ``normalization`` and ``tokenization`` (raw
text to WordPiece ids with character offsets) -> ``windows`` (doc-stride windows) -> ``distilbert`` (the
forward pass) -> ``spans`` (the argmax span extractor) -> ``answers`` (merging windows into answers) ->
``model`` (``QuestionAnsweringModel`` and its serving signatures). ``row_ids`` holds the few-op ragged helpers
that the tokenizer and the windows share.

Nothing is imported here, so ``tf_qa.graph.limits`` can be read without loading TensorFlow.
"""
