"""Benchmark tf-qa against the transformers pipeline (see tf_qa/bench.py). Same as `tf-qa bench`.

    python benchmarks/bench.py --questions 300 --output benchmarks/results
"""

import sys

from tf_qa.bench import main

if __name__ == "__main__":
    sys.exit(main())
