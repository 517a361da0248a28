"Offline, CPU-only test settings and tiny-model fixtures."

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a hub lookup fails at once instead of hanging
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest, torch
from lynx_lite.text import tiny_tokenizer, encode_batch


@pytest.fixture(scope="session")
def tok():
    return tiny_tokenizer()


@pytest.fixture
def batch(tok):
    "Two questions with answers of different lengths (so one row is left-padded)."
    return encode_batch(tok, ["what colour is the big circle?", "how many?"], ["red", "three small squares"])


@pytest.fixture
def images():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
