"""containers.provenance.image_info against fake container filesystems."""

from __future__ import annotations

import json

from containers.provenance import image_info

NONE = {"engine": None, "image": None, "digest": None, "target": None}


def test_outside_any_container(tmp_path):
    assert image_info(tmp_path, env={}) == NONE


def test_podman_containerenv(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".containerenv").write_text(
        'engine="podman-4.3.1"\nname="quirky_x"\nid="c0ffee"\n'
        'image="localhost/bench:cpu"\nimageid="8cd6a1217b1e"\nrootless=0\n'
    )
    env = {"BENCH_IMAGE": "bench:cpu", "BENCH_TARGET": "cpu"}
    assert image_info(tmp_path, env=env) == {
        "engine": "podman",
        "image": "localhost/bench:cpu",
        "digest": "sha256:8cd6a1217b1e",
        "target": "cpu",
    }


def test_empty_containerenv_keeps_baked_env(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".containerenv").write_text("")
    info = image_info(tmp_path, env={"BENCH_IMAGE": "bench:cpu", "BENCH_TARGET": "cpu"})
    assert info == {"engine": "podman", "image": "bench:cpu", "digest": None, "target": "cpu"}


def test_apptainer_labels_and_name(tmp_path):
    d = tmp_path / ".singularity.d"
    d.mkdir()
    (d / "labels.json").write_text(
        json.dumps({"bench.target": "h100", "bench.image": "bench:h100"})
    )
    assert image_info(tmp_path, env={}) == {
        "engine": "apptainer",
        "image": "bench:h100",
        "digest": None,
        "target": "h100",
    }
    env = {"APPTAINER_NAME": "h100.sif", "BENCH_IMAGE_DIGEST": "sha256:abc"}
    assert image_info(tmp_path, env=env) == {
        "engine": "apptainer",
        "image": "h100.sif",
        "digest": "sha256:abc",
        "target": "h100",
    }


def test_apptainer_by_env_only_with_corrupt_labels(tmp_path):
    d = tmp_path / ".singularity.d"
    d.mkdir()
    (d / "labels.json").write_text("{not json")
    env = {"SINGULARITY_NAME": "cpu.sif", "BENCH_TARGET": "cpu"}
    assert image_info(tmp_path, env=env) == {
        "engine": "apptainer",
        "image": "cpu.sif",
        "digest": None,
        "target": "cpu",
    }


def test_docker(tmp_path):
    (tmp_path / ".dockerenv").write_text("")
    env = {"BENCH_IMAGE": "bench:a100", "BENCH_TARGET": "a100", "BENCH_IMAGE_DIGEST": "sha256:d"}
    assert image_info(tmp_path, env=env) == {
        "engine": "docker",
        "image": "bench:a100",
        "digest": "sha256:d",
        "target": "a100",
    }
