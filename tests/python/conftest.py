"""Shared pytest fixtures: the golden fixtures are regenerated (about a second) into a
temporary folder once per session, so the tests never depend on a stale build folder."""
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

torch.set_num_threads(1)

from weights_converter import make_fixtures  # noqa: E402

CONFIG_NAMES = sorted(make_fixtures.CONFIGS)


@pytest.fixture(scope="session")
def fixtures_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fixtures")
    make_fixtures.main(["--out", str(d)])
    return d


@pytest.fixture(params=CONFIG_NAMES)
def config_name(request):
    return request.param
