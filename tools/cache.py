"""Where medagent keeps files it can rebuild: joined model parts, indexes, exported encoders."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$MEDAGENT_CACHE_DIR``, else the platform's user cache folder for medagent."""
    from platformdirs import user_cache_dir

    return Path(os.environ.get("MEDAGENT_CACHE_DIR") or user_cache_dir("medagent"))
