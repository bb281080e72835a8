"""Shared fixtures for the end-to-end tests: the built `pagoda` binary, free loopback ports, model folders."""
import os
import pathlib
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


@pytest.fixture(scope="session")
def pagoda() -> str:
    return pagoda_binary()


@pytest.fixture(scope="session")
def small_model() -> str:
    """The small model committed in the repository (served when `pagoda serve` gets no MODEL)."""
    return str(ROOT / "models" / "tiny-qwen3")
