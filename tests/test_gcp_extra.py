"""The gcp extra: wtrunner works without it, and a GCP feature without it names the extra."""

from __future__ import annotations

import subprocess
import sys

import pytest

from wtrunner.gcp import MissingExtraError, import_gcp

BLOCK_GOOGLE = """
import importlib.abc, sys

class BlockGoogle(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("google", "gcloud", "grpc"):
            raise ImportError(f"blocked {name}", name=name)
        return None

sys.meta_path.insert(0, BlockGoogle())
# an old google-* release may make the "google" namespace at start-up (an -nspkg.pth file)
at_start = set(sys.modules)
"""


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google.cloud.batch_v1", None)
    with pytest.raises(MissingExtraError, match=r"wtrunner\[gcp\]") as info:
        import_gcp("google.cloud.batch_v1", "Cloud Batch")
    assert "Cloud Batch" in str(info.value)


def test_wtrunner_works_without_google_libraries() -> None:
    code = BLOCK_GOOGLE + (
        "import wtrunner, wtrunner.cli, wtrunner.server\n"
        "from wtrunner.app import create_app\n"
        "from wtrunner.settings import Settings\n"
        "create_app(Settings())\n"
        "loaded = set(sys.modules) - at_start\n"
        "assert not [m for m in loaded if m.split('.')[0] in ('google', 'gcloud')], loaded\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
