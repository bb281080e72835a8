"""Shared fixtures for the end-to-end tests: the built `pagoda` binary, free loopback ports, model folders."""
import contextlib
import os
import pathlib
import secrets
import socket

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFORMANCE = pathlib.Path(os.environ.get("PAGODA_CONFORMANCE", ROOT.parent / "shared" / "conformance"))


def pagoda_binary() -> str:
    path = ROOT / ".build" / "debug" / "pagoda"
    if not path.exists():
        raise RuntimeError(f"{path} not built: run `swift build` first")
    return str(path)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def deployment_secret():
    """PAGODA_INTERNAL_SECRET set, inside the block, for every process a test starts: a deployment of separately
    started processes (a head and its headless nodes, KV producers and consumers) must share its secret."""
    old = os.environ.get("PAGODA_INTERNAL_SECRET")
    os.environ["PAGODA_INTERNAL_SECRET"] = "e2e-" + secrets.token_hex(16)
    try:
        yield os.environ["PAGODA_INTERNAL_SECRET"]
    finally:
        if old is None:
            os.environ.pop("PAGODA_INTERNAL_SECRET", None)
        else:
            os.environ["PAGODA_INTERNAL_SECRET"] = old


@pytest.fixture(scope="session")
def pagoda() -> str:
    return pagoda_binary()


@pytest.fixture(scope="session")
def small_model() -> str:
    """The small model committed in the repository (served when `pagoda serve` gets no MODEL)."""
    return str(ROOT / "models" / "tiny-qwen3")


# A test that needs a missing package fails instead of skipping: a skip reads as a pass in CI and hid the
# tokenizer checks of test_bench_serve.py on every fresh clone. Tests/e2e/requirements.txt lists what to install.
def _missing_package_as_failure(report):
    # A skip's longrepr is (path, line, "Skipped: <reason>"); "could not import" is pytest.importorskip's wording.
    if report.skipped and isinstance(report.longrepr, tuple) and "could not import" in report.longrepr[2]:
        path, line, message = report.longrepr
        report.outcome = "failed"
        report.longrepr = f"{path}:{line + 1}: {message}: install Tests/e2e/requirements.txt (.ci/run does) instead of skipping"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    return _missing_package_as_failure((yield))


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    return _missing_package_as_failure((yield))
