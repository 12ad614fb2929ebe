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


# --- real system components: skipped locally with the command that enables them, never on CI ---

# Tests marked deselected by `make test`'s -m expression, and how to run them.
DESELECTED_GROUPS = {
    "gpu": "make test-gpu",
    "vllm": "make test-vllm",
    "container": "make container-test",
}
_SKIPPED = pytest.StashKey[dict]()


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def needs(group: str, missing: list[str], enable: str) -> pytest.MarkDecorator:
    """Mark tests that run a real system component (``group``) whose ``missing`` binaries
    ``enable`` installs. Off CI they skip, and ``make test`` ends by naming the group and the
    command; on CI (``CI=true``) they fail, so a fresh machine cannot pass by skipping them."""
    return pytest.mark.needs(group, list(missing), enable)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "needs(group, missing, enable): a real system component (tests/conftest.py)"
    )
    config.stash[_SKIPPED] = {}


@pytest.hookimpl(tryfirst=True)  # before fixtures: a missing SLURM must not start a cluster fixture
def pytest_runtest_setup(item):
    mark = item.get_closest_marker("needs")
    if mark is None or not mark.args[1]:
        return
    group, missing, enable = mark.args
    why = f"{group}: {', '.join(missing)} not installed (enable: {enable})"
    if on_ci():
        pytest.fail(f"{why}; CI=true runs every real component, it never skips one", pytrace=False)
    item.config.stash[_SKIPPED].setdefault(group, [enable, 0])[1] += 1
    pytest.skip(why)


@pytest.hookimpl(
    wrapper=True, tryfirst=True
)  # outermost: the line comes after pytest's short summary
def pytest_terminal_summary(terminalreporter, config):
    """One line naming every real-component group that did not run here and what enables it."""
    yield
    groups = {g: f"{n} skipped: {enable}" for g, (enable, n) in config.stash[_SKIPPED].items()}
    deselected = [
        m
        for item in terminalreporter.stats.get("deselected", [])
        for m in DESELECTED_GROUPS
        if item.get_closest_marker(m)
    ]
    for m in DESELECTED_GROUPS:
        if m in deselected:
            groups.setdefault(m, f"{deselected.count(m)} deselected: {DESELECTED_GROUPS[m]}")
    if groups:
        terminalreporter.write_line(
            "real components not run here: " + "; ".join(f"{g} ({v})" for g, v in groups.items())
        )
    else:
        terminalreporter.write_line("real components: every group ran")
