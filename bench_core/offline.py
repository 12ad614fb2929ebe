"""Whether the Hugging Face hub is off: the one reading of HF_HUB_OFFLINE / HF_DATASETS_OFFLINE."""

from __future__ import annotations

import os

__all__ = ["hub_offline"]

_TRUE = ("1", "true", "yes", "on")


def hub_offline(*, datasets: bool = False) -> bool:
    """True when HF_HUB_OFFLINE is set (or, for ``datasets`` loads, HF_DATASETS_OFFLINE too:
    the ``datasets`` library honours both, huggingface_hub only the first)."""
    names = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if datasets else ("HF_HUB_OFFLINE",)
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in names)
