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


def test_a_quoted_value_in_the_users_flags_is_kept_as_written(flags):
    import os

    flags.setattr(metadata, "version", lambda name: "0.10.2")
    given = '--xla_dump_to="/tmp/a  b" --xla_dump_hlo_as_text'
    flags.setenv("XLA_FLAGS", given)
    assert xla_cache.prefer_cheap_compiles()
    assert os.environ["XLA_FLAGS"] == " ".join([given, *xla_cache.CHEAP_FLAGS])


@pytest.mark.parametrize("value, says", [
    ("--xla_no_such_flag=1", "Unknown flag in XLA_FLAGS: --xla_no_such_flag=1"),
    ("--xla_cpu_use_fusion_emitters=maybe", "Couldn't interpret value maybe"),
    ("/no/such/flags/file", "Could not open file"),
])
def test_flags_xla_rejects_are_one_line_not_a_dead_process(flags, tmp_path, value, says):
    """XLA ends the process (exit 1) on such flags when JAX starts: they are tried first in
    a child process, and named in a ConfigError (exit 2)."""
    from jaxcnn.errors import ConfigError

    flags.setenv("JAXCNN_CACHE_DIR", str(tmp_path))
    flags.setenv("XLA_FLAGS", value)
    with pytest.raises(ConfigError, match="XLA rejects XLA_FLAGS") as info:
        xla_cache.check_user_flags()
    assert says in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "xla-flags-accepted").exists()


def test_accepted_flags_are_tried_once_per_cache(flags, tmp_path):
    import subprocess

    flags.setenv("JAXCNN_CACHE_DIR", str(tmp_path))
    flags.setenv("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=false")
    xla_cache.check_user_flags()  # tried in a child: accepted, remembered
    assert len(list((tmp_path / "xla-flags-accepted").iterdir())) == 1

    def no_child(*args, **kwargs):
        raise AssertionError("tried again")

    flags.setattr(subprocess, "run", no_child)
    xla_cache.check_user_flags()  # remembered: no child
    flags.setenv("XLA_FLAGS", "")
    xla_cache.check_user_flags()  # nothing to try


def test_check_and_verify_with_flags_xla_rejects_exit_2_with_one_json_document(tmp_path):
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, XLA_FLAGS="--xla_no_such_flag=1", JAXCNN_CACHE_DIR="")
    layer = tmp_path / "relu.py"
    layer.write_text("def relu_forward(x):\n    return x * (x > 0), x\n\n"
                     "def relu_backward(dout, cache):\n    return dout * (cache > 0)\n")
    for command in (["check", str(layer), "--json"], ["verify", "--json"]):
        proc = subprocess.run([sys.executable, "-m", "jaxcnn", *command], env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["ok"] is False and doc["status"] == 2
        assert "--xla_no_such_flag=1" in doc["error"]
        assert proc.stderr.strip().count("\n") == 0 and "XLA rejects" in proc.stderr


def _fill(folder, sizes_and_ages):
    import os
    import time

    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for k, (size, age) in enumerate(sizes_and_ages):
        p = folder / "ab" / f"{k}.bin"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"x" * size)
        os.utime(p, (now - age, now - age))
    return folder


def test_a_folder_over_its_limit_loses_its_least_recently_used_files(tmp_path):
    folder = _fill(tmp_path / "c", [(400, 10), (400, 1000), (400, 100), (400, 5)])
    assert xla_cache.prune(folder, 2000) == 0  # under the limit: nothing deleted
    freed = xla_cache.prune(folder, 1000)  # 1600 bytes > 1000: down to 800 at most
    assert freed == 800
    left = sorted(p.name for p in folder.rglob("*.bin"))
    assert left == ["0.bin", "3.bin"]  # the two used last


def test_the_size_limit_is_checked_at_most_once_an_hour_and_may_be_turned_off(flags,
                                                                               tmp_path):
    flags.setenv("JAXCNN_CACHE_DIR", str(tmp_path))
    cache = xla_cache.cache_dir()
    _fill(cache, [(600_000, 100), (600_000, 10)])
    _fill(xla_cache.results_dir(cache), [(600_000, 100), (600_000, 10)])
    flags.setenv("JAXCNN_CACHE_MAX_MB", "0")  # no limit
    xla_cache.prune_if_due(cache)
    assert len(list(cache.rglob("*.bin"))) == 2
    flags.setenv("JAXCNN_CACHE_MAX_MB", "1")
    xla_cache.prune_if_due(cache)
    assert len(list(cache.rglob("*.bin"))) == 1  # 1.2 MB > 1 MB: the older one went
    assert len(list(xla_cache.results_dir(cache).rglob("*.bin"))) == 1
    _fill(cache / "more", [(600_000, 1), (600_000, 1)])
    xla_cache.prune_if_due(cache)  # within the hour: not looked at again
    assert len(list(cache.rglob("*.bin"))) == 3
    flags.setenv("JAXCNN_CACHE_MAX_MB", "not a number")
    assert xla_cache.max_bytes() == int(xla_cache.MAX_MB * 2**20)
    for no_limit in ("inf", "1e400", "Infinity", "-3", "0"):  # inf crashed every run
        flags.setenv("JAXCNN_CACHE_MAX_MB", no_limit)
        assert xla_cache.max_bytes() is None, no_limit
