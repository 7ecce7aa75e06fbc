"""Location of the real PneumoniaMNIST file beside the checkout (``../shared/data``)."""

from __future__ import annotations

import os
from pathlib import Path

_BESIDE_CHECKOUT = Path(__file__).resolve().parents[2] / "shared" / "data"
SHARED_DATA = Path(os.environ.get("CHAINLEARN_SHARED_DATA", _BESIDE_CHECKOUT))
