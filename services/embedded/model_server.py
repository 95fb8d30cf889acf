"""``python -m llmproxy.embedded.model_server ARGS``: llama.cpp's OpenAI-compatible server
(``python -m llama_cpp.server ARGS``) with CPU weight repacking off unless asked for.

Why: with llama-cpp-python 0.3.36 on an AMX-capable Xeon (our 2-core VMs), every decode of more
than one token at once — any prompt — crashed the server with a segmentation fault inside
``llama_decode``. With the model's "extra buffer types" (the repacked weight layouts for the
AMX / AVX-512 kernels) turned off it runs: same model file, same weights, only the matrix
kernels differ. For a 135M model the plain kernels are fast enough; set
``LLMPROXY_MODEL_REPACK=1`` to get the repacked ones back on hardware where they work.
"""

from __future__ import annotations

import os
import runpy

import llama_cpp.llama_cpp as native

REPACK_ENV = "LLMPROXY_MODEL_REPACK"

_defaults = native.llama_model_default_params


def _without_repacking() -> native.llama_model_params:
    params = _defaults()
    params.use_extra_bufts = False
    return params


def main() -> None:
    if os.environ.get(REPACK_ENV, "").strip().lower() not in {"1", "true", "yes", "on"}:
        # llama_cpp.Llama reads the defaults at each model load, through the module attribute
        native.llama_model_default_params = _without_repacking
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
