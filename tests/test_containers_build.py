"""Command lines of containers.build and its staged build context (no engine needed)."""

from __future__ import annotations

import pytest

from containers import build as cb
from containers.targets import REPO_ROOT


def test_podman_build_uses_runc_and_the_local_base():
    cmd = cb.build_command("cpu", "podman", base_image="localhost/bench-base:bookworm")
    assert cmd == [
        "podman",
        "build",
        "--runtime",
        "runc",
        "--build-arg",
        "BASE_IMAGE=localhost/bench-base:bookworm",
        "-f",
        str(REPO_ROOT / "containers" / "cpu.Dockerfile"),
        "-t",
        "bench:cpu",
        str(REPO_ROOT),
    ]


def test_docker_build_has_no_podman_flags_and_custom_tag():
    cmd = cb.build_command("h100", "docker", tag="reg.example/bench:h100-v1")
    assert cmd[:2] == ["docker", "build"] and "--runtime" not in cmd and "--build-arg" not in cmd
    assert cmd[cmd.index("-t") + 1] == "reg.example/bench:h100-v1"
    assert cmd[cmd.index("-f") + 1].endswith("containers/h100.Dockerfile")


def test_apptainer_build_writes_sif_next_to_def():
    cmd = cb.build_command("a100-40g")
    assert cmd == [
        "apptainer",
        "build",
        "--force",
        str(REPO_ROOT / "containers" / "a100-40g.sif"),
        str(REPO_ROOT / "containers" / "a100-40g.def"),
    ]


def test_apptainer_rejects_base_image_override():
    with pytest.raises(ValueError, match="--base-image applies to docker/podman"):
        cb.build_command("cpu", "apptainer", base_image="x")


def test_unknown_engine_and_target_are_one_line_errors():
    with pytest.raises(ValueError, match="unknown container engine 'lxc'"):
        cb.build_command("cpu", "lxc")
    with pytest.raises(ValueError, match="unknown target 'h200'; did you mean h100"):
        cb.build_command("h200", "podman")


def test_apptainer_run_gpu_gets_nv_and_binds(tmp_path):
    hf = tmp_path / "hf"
    hf.mkdir()
    cmd = cb.run_command(
        "h100", ["train+eval", "--grid", "all"], results=tmp_path / "r", hf_home=hf
    )
    assert cmd == [
        "apptainer",
        "run",
        "--nv",
        "--bind",
        f"{tmp_path / 'r'}:/results",
        "--bind",
        f"{hf}:/hf",
        str(REPO_ROOT / "containers" / "h100.sif"),
        "train+eval",
        "--grid",
        "all",
    ]


def test_apptainer_run_cpu_has_no_nv_and_skips_missing_hf_cache(tmp_path):
    cmd = cb.run_command("cpu", ["doctor"], results=tmp_path, hf_home=tmp_path / "absent")
    assert "--nv" not in cmd and cmd.count("--bind") == 1


def test_podman_run_gets_runc_and_ulimits(tmp_path):
    cmd = cb.run_command("cpu", ["doctor"], "podman", results=tmp_path, hf_home=tmp_path / "no")
    assert cmd == [
        "podman",
        "run",
        "--rm",
        "--runtime",
        "runc",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "-v",
        f"{tmp_path}:/results",
        "-e",
        "HF_HUB_OFFLINE",
        "-e",
        "OMP_NUM_THREADS",
        "bench:cpu",
        "doctor",
    ]


def test_gpu_run_requests_devices_per_engine(tmp_path):
    docker = cb.run_command("a100", ["doctor"], "docker", results=tmp_path)
    podman = cb.run_command("a100", ["doctor"], "podman", results=tmp_path)
    assert docker[docker.index("--gpus") + 1] == "all" and "--runtime" not in docker
    assert podman[podman.index("--device") + 1] == "nvidia.com/gpu=all"


def test_entrypoint_override(tmp_path):
    cmd = cb.run_command("cpu", ["-c", "1"], "podman", results=tmp_path, entrypoint="python")
    assert cmd[-5:] == ["--entrypoint", "python", "bench:cpu", "-c", "1"]
    app = cb.run_command("cpu", ["-c", "1"], results=tmp_path, entrypoint="python")
    assert app[1] == "exec" and app[-3:] == ["python", "-c", "1"]


def test_main_dry_run_passes_args_after_dashdash(capsys, tmp_path):
    rc = cb.main(
        [
            "run",
            "cpu",
            "--engine",
            "podman",
            "--results",
            str(tmp_path),
            "--dry-run",
            "--",
            "eval",
            "--dry-run",
        ]
    )
    out = capsys.readouterr().out.split()
    assert rc == 0 and out[-3:] == ["bench:cpu", "eval", "--dry-run"]


def test_main_unknown_target_exits_2(capsys):
    assert cb.main(["build", "nope", "--dry-run"]) == 2
    assert "unknown target 'nope'" in capsys.readouterr().err


def test_list_targets_names():
    assert [t.name for t in cb.list_targets()] == ["h100", "a100", "a100-40g", "rtx2080ti", "cpu"]


def test_stage_context_copies_the_matching_torch_wheel_and_ca(tmp_path):
    links = tmp_path / "links"
    links.mkdir()
    for name in (
        "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
        "torch-2.13.0+cu130-cp312-cp312-manylinux_2_28_x86_64.whl",
        "torch-2.12.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
    ):
        (links / name).write_bytes(b"w")
    ca = tmp_path / "ca.crt"
    ca.write_text("CERT")
    from containers.targets import get_target

    out = cb.stage_context(get_target("cpu"), tmp_path / "ctx", [f"file://{links}"], str(ca))
    assert sorted(p.name for p in (out / "wheels").iterdir()) == [
        ".keep",
        "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
    ]
    assert (out / "ca-bundle.crt").read_text() == "CERT"
    assert "cert = /opt/bench/build/ca-bundle.crt" in (out / "pip.conf").read_text()
    # GPU target: the cu130/cp312 wheel; no cert configured leaves no pip.conf behind
    out = cb.stage_context(get_target("h100"), tmp_path / "ctx", [str(links)], "")
    assert [p.name for p in (out / "wheels").glob("*.whl")] == [
        "torch-2.13.0+cu130-cp312-cp312-manylinux_2_28_x86_64.whl"
    ]
    assert not (out / "pip.conf").exists() and not (out / "ca-bundle.crt").exists()
    # rtx2080ti (cu126) finds nothing: its build falls back to the PyTorch index
    out = cb.stage_context(get_target("rtx2080ti"), tmp_path / "ctx", [str(links)], "")
    assert list((out / "wheels").glob("*.whl")) == []


def test_digest_is_stamped_into_the_environment(tmp_path):
    podman = cb.run_command("cpu", ["doctor"], "podman", results=tmp_path, digest="sha256:ab")
    assert podman[podman.index("BENCH_IMAGE_DIGEST=sha256:ab") - 1] == "-e"
    app = cb.run_command("cpu", ["doctor"], results=tmp_path, digest="sha256:ab")
    assert app[app.index("BENCH_IMAGE_DIGEST=sha256:ab") - 1] == "--env"


def test_image_digest_of_missing_engine_or_image_is_none():
    assert cb.image_digest("bench:cpu", "apptainer") is None
    assert cb.image_digest("no-such-image:never", "docker") is None  # no daemon / no image


def test_missing_engine_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(cb.shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match="container engine 'apptainer' not found on PATH"):
        cb.build("cpu", "apptainer")
    with pytest.raises(ValueError, match="'docker' not found"):
        cb.run("cpu", ["doctor"], "docker")
