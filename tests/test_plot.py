"""`jaxcnn plot DIR`: four valid PNG files of the expected pixel size from a real run,
and one clear line when matplotlib is missing or the folder holds no run."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def jaxcnn(*args, code=None):
    command = [sys.executable, "-c", code, *map(str, args)] if code else \
        [sys.executable, "-m", "jaxcnn", *map(str, args)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; fails unless the file is a PNG."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", path
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    proc = jaxcnn("train", "--train-size", "200", "--test-size", "100", "--seeds", "2",
                  "--log-every", "20", "--out", out, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    return out


def test_plot_writes_four_pngs_of_the_expected_size(run_dir, tmp_path):
    proc = jaxcnn("plot", run_dir, "--out", tmp_path / "pngs")
    assert proc.returncode == 0, proc.stderr
    written = [Path(line) for line in proc.stdout.split()]
    assert [p.name for p in written] == ["learning_curves.png", "filters.png", "confusion.png",
                                         "misclassified.png"]
    sizes = {p.name: png_size(p) for p in written}
    assert sizes["learning_curves.png"] == (1000, 400)  # 10 x 4 inches at 100 dpi
    assert sizes["filters.png"] == (960, 300)  # 8 filters x 2 seeds, 1.2 inches each
    assert sizes["confusion.png"] == (700, 600)
    width, height = sizes["misclassified.png"]
    assert width == 1040 and height in (190, 320, 450, 580)  # 1 to 4 rows of 8


def test_plot_defaults_to_the_run_folder(run_dir):
    proc = jaxcnn("plot", run_dir)
    assert proc.returncode == 0, proc.stderr
    assert all((run_dir / "plots" / name).is_file() for name in
               ("learning_curves.png", "filters.png", "confusion.png", "misclassified.png"))


def test_plot_without_matplotlib_says_which_extra(run_dir):
    code = ("import sys; sys.modules['matplotlib'] = None; from jaxcnn.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    proc = jaxcnn("plot", run_dir, code=code)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("jaxcnn plot: error: jaxcnn plot needs matplotlib: pip "
                                   "install 'jaxcnn[plot]'")


def test_plot_of_a_folder_without_a_run(tmp_path):
    proc = jaxcnn("plot", tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "checkpoint" in proc.stderr and "Traceback" not in proc.stderr


def test_plot_of_a_hand_edited_log_stops_at_the_first_non_finite_row(run_dir, tmp_path):
    """A metrics.csv edited to hold NaN or Infinity was drawn without a word; now the
    curves end before that row and plot says where, or refuses when nothing is left."""
    import shutil

    edited = tmp_path / "edited"
    edited.mkdir()
    shutil.copy(run_dir / "checkpoint.npz", edited)
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    lines[5] = lines[5].rsplit(",", 1)[0] + ",Infinity"  # the third window's first seed
    (edited / "metrics.csv").write_text("\n".join(lines) + "\n")
    proc = jaxcnn("plot", edited)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == (
        f"note: {edited}/metrics.csv is cut at line 6 (accuracy 'Infinity' is not a finite "
        "number in [0, 1]); the learning curves end at step 40")
    assert len(proc.stdout.split()) == 4
    lines[1] = lines[1].rsplit(",", 2)[0] + ",NaN," + lines[1].rsplit(",", 1)[1]
    (edited / "metrics.csv").write_text("\n".join(lines) + "\n")
    proc = jaxcnn("plot", edited)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "holds no log window of this run: it is cut at line 2 (loss 'NaN'" in proc.stderr


def test_plot_refuses_a_checkpoint_whose_outputs_are_not_finite(run_dir, tmp_path):
    """Finite weights of 3e38 overflow the logits to inf and NaN: evaluate refused such a
    checkpoint, while plot drew a confusion matrix and "mistakes" from argmax of NaN."""
    import hashlib
    import json

    import numpy as np

    from jaxcnn.training import checkpoint

    with np.load(run_dir / checkpoint.FILE_NAME) as npz:
        arrays = {key: npz[key] for key in npz.files}
    meta = json.loads(arrays.pop("meta").tobytes())
    signs = np.sign(np.random.default_rng(0).standard_normal(arrays["params.weights"].shape))
    arrays["params.weights"] = (signs * 3e38).astype(np.float32)
    meta["arrays"]["params.weights"]["sha256"] = checkpoint._sha256(arrays["params.weights"])
    meta.pop("sha256")
    meta["sha256"] = hashlib.sha256(checkpoint._canonical(meta)).hexdigest()
    np.savez(tmp_path / checkpoint.FILE_NAME, **arrays,
             meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    (tmp_path / "metrics.csv").write_bytes((run_dir / "metrics.csv").read_bytes())
    proc = jaxcnn("plot", tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "the output (logits) of the checkpoint" in proc.stderr
    assert "is not finite" in proc.stderr and "smaller --lr" in proc.stderr
    assert not list((tmp_path / "plots").glob("*.png"))
    evaluate = jaxcnn("evaluate", tmp_path)
    assert evaluate.returncode == 2 and "is not finite" in evaluate.stderr


def test_predictions_of_a_test_set_that_500_does_not_divide():
    """plot scores in batches of 500; the default 800 test images (a last batch of 300)
    ended in a ValueError traceback from np.stack, exit 1."""
    import jax
    import numpy as np

    from jaxcnn import data, fast, model
    from jaxcnn.cli.plot import predictions

    images = data.load("mnist-embedded", train_size=1, test_size=800).test_images
    params = jax.vmap(lambda k: model.init_params(k))(jax.random.split(jax.random.key(3), 2))
    got = predictions(params, images)
    assert got.shape == (2, 800)
    x = model.normalize(images)
    for k in range(2):
        p = fast.to_fast(jax.tree.map(lambda a, k=k: a[k], params))
        np.testing.assert_array_equal(got[k], np.argmax(fast.logits(p, x), -1))


def test_plot_of_a_test_set_that_500_does_not_divide(run_dir, tmp_path):
    proc = jaxcnn("plot", run_dir, "--test-size", "501", "--out", tmp_path / "pngs")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.split()) == 4 and proc.stderr == ""


def test_plot_into_an_unwritable_folder_names_the_picture(run_dir, tmp_path):
    """An OSError while writing a picture was 'a file operation failed' (no action)."""
    code = ("import sys; from jaxcnn.training import fsio; "
            "fsio.atomic_write = lambda *a, **k: (_ for _ in ()).throw("
            "OSError(30, 'Read-only file system', a[0])); "
            "from jaxcnn.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = jaxcnn("plot", run_dir, "--out", tmp_path / "pngs", code=code)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "cannot write the picture" in proc.stderr and "learning_curves.png" in proc.stderr
    assert "Read-only file system" in proc.stderr and "Traceback" not in proc.stderr
