"""--shard I/N: run only the collected tests I, I + N, I + 2N, ... (in collection order),
so that ctest can run one file as N parallel tests (tests/cpp/cli.cmake) without a list
of -k patterns that a new test could slip through."""
import pytest


def pytest_addoption(parser):
    parser.addoption("--shard", default=None, metavar="I/N",
                     help="run the tests whose collection index is I modulo N")


def _shard(config):
    text = config.getoption("--shard")
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise pytest.UsageError("--shard %r: expected I/N, e.g. 0/4" % text) from None
    if n < 1 or not 0 <= i < n:
        raise pytest.UsageError("--shard %r: need 0 <= I < N" % text)
    return i, n


def pytest_collection_modifyitems(config, items):
    shard = _shard(config)
    if shard is None:
        return
    i, n = shard
    keep = [t for k, t in enumerate(items) if k % n == i]
    drop = [t for k, t in enumerate(items) if k % n != i]
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep
