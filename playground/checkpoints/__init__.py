"""Weights files, safetensors only: checks, our own format, Hugging Face GPT-2, the Hub.

- ``files``: header checks before anything loads, :class:`WeightsError`, a streaming sha256;
- ``own_format``: save/describe our own self-describing files;
- ``hf_gpt2``: the declarative key map from Hugging Face / OpenAI GPT-2;
- ``load``: the dispatcher that recognises a layout and builds the model;
- ``hub``: optional download of OpenAI GPT-2 (honours ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE``).

The modules import downwards only (files <- own_format, hf_gpt2 <- load): no cycle.
"""
from .files import WeightsError, read_header, sha256_file
from .load import LoadedWeights, build_model, load_model
from .own_format import own_state_dict, save_model

__all__ = ["WeightsError", "read_header", "sha256_file", "LoadedWeights", "build_model", "load_model",
           "own_state_dict", "save_model"]
