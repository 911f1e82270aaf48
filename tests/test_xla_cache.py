"""The command line's XLA settings (``jaxcnn.cli.xla_cache``): the compilation cache and
the oracle's results folder, and the cheap-compile flags for eager programs."""

from __future__ import annotations

from importlib import metadata

import pytest

from jaxcnn.cli import xla_cache


@pytest.fixture
def flags(monkeypatch):
    # setenv first: monkeypatch then restores the variable (or its absence) afterwards,
    # also when the code under test writes os.environ itself
    monkeypatch.setenv("XLA_FLAGS", "")
    monkeypatch.delenv("XLA_FLAGS")
    return monkeypatch


def test_the_cheap_flags_are_added_for_known_jaxlib_versions_only(flags):
    import os

    flags.setattr(metadata, "version", lambda name: "0.10.2")
    assert xla_cache.prefer_cheap_compiles()
    assert os.environ["XLA_FLAGS"].split() == list(xla_cache.CHEAP_FLAGS)
    assert xla_cache.prefer_cheap_compiles()  # twice: still once each in the variable
    assert os.environ["XLA_FLAGS"].split() == list(xla_cache.CHEAP_FLAGS)
    flags.delenv("XLA_FLAGS")
    flags.setattr(metadata, "version", lambda name: "0.11.0")  # might not know the flags:
    assert not xla_cache.prefer_cheap_compiles()  # an unknown flag would kill the process
    assert "XLA_FLAGS" not in os.environ


def test_the_users_own_xla_flags_are_kept_and_win(flags):
    import os

    flags.setattr(metadata, "version", lambda name: "0.10.2")
    flags.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    assert xla_cache.prefer_cheap_compiles()
    assert os.environ["XLA_FLAGS"].split() == ["--xla_dump_to=/tmp/x", *xla_cache.CHEAP_FLAGS]
    # a flag the user set keeps the user's value; the others are still added
    flags.setenv("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=true "
                              "--xla_backend_optimization_level=2")
    assert xla_cache.prefer_cheap_compiles()
    assert os.environ["XLA_FLAGS"].split() == [
        "--xla_cpu_use_fusion_emitters=true", "--xla_backend_optimization_level=2",
        "--xla_llvm_disable_expensive_passes=true"]
    every = " ".join(f"--{f.lstrip('-').split('=')[0]}=1" for f in xla_cache.CHEAP_FLAGS)
    flags.setenv("XLA_FLAGS", every)  # the user set them all, otherwise: none in effect
    assert not xla_cache.prefer_cheap_compiles()
    assert os.environ["XLA_FLAGS"] == every


def test_xla_flags_naming_a_file_are_left_alone(flags, tmp_path):
    """XLA reads an XLA_FLAGS value that does not start with '-' as a file of flags:
    appending to it would name no file (XLA then stops the process)."""
    import os

    flags.setattr(metadata, "version", lambda name: "0.10.2")
    path = tmp_path / "flags.txt"
    path.write_text("--xla_force_host_platform_device_count=2\n")
    flags.setenv("XLA_FLAGS", str(path))
    assert not xla_cache.prefer_cheap_compiles()
    assert os.environ["XLA_FLAGS"] == str(path)


def test_results_live_beside_the_compilation_cache(flags, tmp_path):
    flags.setenv("JAXCNN_CACHE_DIR", str(tmp_path))
    cache = xla_cache.cache_dir()
    assert cache.parent == tmp_path and cache.name.startswith("jaxlib-")
    assert xla_cache.results_dir(cache) == tmp_path / f"{cache.name}-results"
    flags.setenv("JAXCNN_CACHE_DIR", "")
    assert xla_cache.cache_dir() is None
