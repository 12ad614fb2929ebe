import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def bundled_model() -> Path:
    """The bundled SmolLM2-135M-Instruct (built once into the bench cache, no hub)."""
    from harness.zoo import materialize

    return materialize("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def tiny_llama() -> Path:
    from harness.zoo import materialize

    return materialize("tiny-random-llama")


@pytest.fixture(scope="session")
def tiny_qwen2() -> Path:
    from harness.zoo import materialize

    return materialize("tiny-random-qwen2")
