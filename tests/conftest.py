import os
import subprocess
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


@pytest.fixture
def stage_manifest():
    """``stage_manifest(stage_dir, **fields)`` writes a finished stage's manifest.json by hand: a
    valid Manifest with placeholder figures, for tests that fake a trained stage."""
    from trainers.manifest import Manifest, write_manifest

    def write(stage: Path, **fields) -> Manifest:
        stage = Path(stage)
        stage.mkdir(parents=True, exist_ok=True)
        placeholder = dict(
            method="sft",
            base_model="base",
            base_weights="base",
            parent=None,
            output_dir=str(stage),
            mode="lora",
            adapter=None,
            merged=None,
            data={},
            steps=1,
            final_loss=None,
            losses=[],
            tokens=0,
            tokens_per_s=None,
            peak_memory_gb={},
            planned_memory_gb=None,
            plan={},
            wall_s=0.0,
            seed=0,
            target="cpu",
            world_size=1,
            resumed_from=None,
            stopped_early=False,
            packages={},
            git_commit=None,
            git_dirty=None,
        )
        manifest = Manifest(**{**placeholder, **fields})
        write_manifest(manifest, stage)
        return manifest

    return write


@pytest.fixture
def target_dtype(monkeypatch):
    """Give the cpu target another dtype (``target_dtype("fp16")``): the decisions an fp16 or
    bf16 GPU target takes, made on this machine."""
    import containers.targets as targets

    real = targets.get_target

    def set_dtype(dtype: str) -> None:
        def patched(name, path=None):
            t = real(name, path)
            return t.model_copy(update={"dtype": dtype}) if name == "cpu" else t

        monkeypatch.setattr(targets, "get_target", patched)

    return set_dtype


# --- real system components: skipped locally with the command that enables them, never on CI ---

# Tests marked deselected by `make test`'s -m expression, and how to run them.
DESELECTED_GROUPS = {
    "gpu": "make test-gpu on a CUDA machine, or ci/gpu/check.sh",
    "vllm": "make test-vllm",
    "container": "make container-test",
}
# The one group CI cannot run: no CI machine has a GPU.
NEEDS_HARDWARE = {"gpu"}
# .ci/run names the groups it runs as lanes of their own after `make test` (space-separated);
# on CI any other deselected group fails the run.
LANES_ENV = "BENCH_CI_LANES"
_SKIPPED = pytest.StashKey[dict]()
_DESELECTED = pytest.StashKey[list]()


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
    config.stash[_DESELECTED] = []


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


def _lanes() -> set[str]:
    return set(os.environ.get(LANES_ENV, "").split())


def _deselected_groups(items) -> list[str]:
    """One entry per deselected test and real-component group it belongs to."""
    return [m for item in items for m in DESELECTED_GROUPS if item.get_closest_marker(m)]


def _unrun(config) -> list[str]:
    """On CI: groups deselected here that neither need hardware CI lacks nor run as a lane."""
    if not on_ci():
        return []
    markexpr = config.option.markexpr or ""  # deselected by -m, not by a -k of the moment
    groups = {m for m in _deselected_groups(config.stash[_DESELECTED]) if m in markexpr}
    return [m for m in DESELECTED_GROUPS if m in groups - NEEDS_HARDWARE - _lanes()]


def pytest_deselected(items):
    if items:
        items[0].config.stash[_DESELECTED].extend(items)


def pytest_sessionfinish(session, exitstatus):
    if _unrun(session.config) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(
    wrapper=True, tryfirst=True
)  # outermost: the line comes after pytest's short summary
def pytest_terminal_summary(terminalreporter, config):
    """One line naming every real-component group that did not run here and what enables it
    (under .ci/run: the groups that run next as their own lanes, and gpu, which needs a GPU)."""
    yield
    groups = {g: f"{n} skipped: {enable}" for g, (enable, n) in config.stash[_SKIPPED].items()}
    deselected = _deselected_groups(config.stash[_DESELECTED])
    later = []
    for m in DESELECTED_GROUPS:
        if m not in deselected:
            continue
        if m in _lanes() and m not in NEEDS_HARDWARE:
            later.append(f"{m} ({DESELECTED_GROUPS[m]})")
        else:
            groups.setdefault(m, f"{deselected.count(m)} deselected: {DESELECTED_GROUPS[m]}")
    if groups:
        line = "real components not run here: " + "; ".join(f"{g} ({v})" for g, v in groups.items())
    else:
        line = "real components: every group ran"
    if later:
        line += "; run next as lanes of their own: " + ", ".join(later)
    terminalreporter.write_line(line)
    if unrun := _unrun(config):
        terminalreporter.write_line(
            f"CI=true: {', '.join(unrun)} deselected and not named in {LANES_ENV} "
            "(the lanes .ci/run runs next): the run fails"
        )


CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = needs("chromium", [] if CHROMIUM.exists() else [str(CHROMIUM)], "make system-deps")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium with a profile of its own under ``tmp_path`` (``--screenshot=``,
    ``--dump-dom`` ...): the HTML tests' one way to load a page as a reader would."""
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
