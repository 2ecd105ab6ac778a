"""Shared test fixtures: paths to the read-only captures in ../shared/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("ACCELSCOPE_SHARED", REPO_ROOT.parent / "shared"))
VENDOR_SMI = SHARED / "fixtures" / "vendor-smi"


@pytest.fixture(scope="session")
def vendor_smi() -> Path:
    """Directory of real vendor-tool captures (``../shared/fixtures/vendor-smi``)."""
    if not VENDOR_SMI.is_dir():
        pytest.fail(f"captures not found at {VENDOR_SMI}; set ACCELSCOPE_SHARED to the shared/ folder")
    return VENDOR_SMI
