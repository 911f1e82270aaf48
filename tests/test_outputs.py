"""Run outputs: strict JSON, the live metrics log, resume carry-over, flat memory."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

from jaxcnn.training import outputs
from jaxcnn.training.train import Window

RUN, OTHER = "a" * 32, "b" * 32


def strict_json(text: str):
    def refuse(name):
        raise ValueError(f"non-strict JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def window(step, loss, acc=0.5, seeds=2):
    return Window(step, 1, 10, np.full(seeds, loss, np.float64), np.full(seeds, acc))


def test_non_finite_numbers_become_null_never_nan():
    value = {"loss": outputs.summary([np.nan, 1.0]), "x": np.float32(np.inf),
             "y": [np.float64(-np.inf), 2], "n": np.int64(3), "ok": np.bool_(True)}
    parsed = strict_json(outputs.dumps(value))
    assert parsed["loss"]["mean"] is None and parsed["loss"]["per_seed"] == [None, 1.0]
    assert parsed["x"] is None and parsed["y"] == [None, 2] and parsed["n"] == 3
    assert parsed["ok"] is True


def test_rows_reach_the_file_as_windows_happen(tmp_path):
    log = outputs.MetricsLog(tmp_path / outputs.CSV_NAME, RUN, [0, 1], batch_size=1)
    log.write(window(10, 2.25))
    text = (tmp_path / outputs.CSV_NAME).read_text()  # before close: flushed already
    assert text.splitlines() == [",".join(outputs.CSV_COLUMNS), f"{RUN},10,1,0,10,10,2.25,0.5",
                                 f"{RUN},10,1,1,10,10,2.25,0.5"]
    log.close()


def _log(path, rows):
    log = outputs.MetricsLog(path, rows[0][0], [0, 1], batch_size=1)
    for run_id, step, loss in rows:
        log.run_id = run_id
        log.write(window(step, loss))
    log.close()


def test_carry_over_keeps_this_runs_rows_up_to_the_checkpoint(tmp_path):
    source, target = tmp_path / "a.csv", tmp_path / "b.csv"
    _log(source, [(RUN, 10, 2.0), (OTHER, 10, 9.0), (RUN, 20, 1.5), (RUN, 30, 1.0)])
    with open(source, "a") as fh:
        fh.write(f"{RUN},40,1,0,10,10,0.")  # a row torn by a kill
    assert outputs.carry_over(source, target, RUN, up_to_step=20) == 20
    got = list(outputs.windows(target, RUN, num_seeds=2))
    assert [(w["step"], w["loss"]["mean"]) for w in got] == [(10, 2.0), (20, 1.5)]
    assert outputs.carry_over(source, source, RUN, up_to_step=30) == 30  # in place
    assert [w["step"] for w in outputs.windows(source, RUN, 2)] == [10, 20, 30]
    assert outputs.carry_over(None, target, RUN, up_to_step=0) == 0
    assert list(outputs.windows(target, RUN, 2)) == []


def test_metrics_json_streams_the_windows_with_flat_memory(tmp_path):
    """10,000 windows (a 2 MB metrics.json) are written with under 200 kB of Python
    allocations: the windows are never all in memory at once."""
    n = 10_000
    log = outputs.MetricsLog(tmp_path / outputs.CSV_NAME, RUN, [0, 1], batch_size=1)
    for step in range(1, n + 1):
        log.write(window(step, 1.0 / step))
    log.close()
    tracemalloc.start()
    outputs.write_metrics(tmp_path, {"run_id": RUN, "test": {"loss": None}}, RUN, 2)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    text = (tmp_path / outputs.JSON_NAME).read_text()
    assert len(text) > 2_000_000 and peak < 200_000, peak
    metrics = strict_json(text)
    assert len(metrics["windows"]) == n and metrics["test"] == {"loss": None}
    assert metrics["windows"][-1]["loss"]["per_seed"] == [1.0 / n, 1.0 / n]


@pytest.mark.parametrize("header", ["step,epoch,seed,images,loss,accuracy", ""])
def test_a_csv_of_another_format_contributes_no_windows(tmp_path, header):
    path = tmp_path / outputs.CSV_NAME
    path.write_text(header + "\n100,1,0,100,2.2,0.2\n")
    cut = outputs.Cut()
    assert list(outputs.windows(path, RUN, 1, cut)) == []
    assert cut.line == 1 and "header is not that of a jaxcnn metrics.csv" in cut.why
    path.write_text("")
    assert list(outputs.windows(path, RUN, 1, cut)) == [] and cut.why == "the file is empty"


@pytest.mark.parametrize(("field", "value", "why"), [
    ("loss", "nan", "loss 'nan' is not a finite number >= 0"),
    ("loss", "Infinity", "loss 'Infinity' is not a finite number >= 0"),
    ("loss", "-1.5", "loss '-1.5' is not a finite number >= 0"),
    ("accuracy", "NaN", "accuracy 'NaN' is not a finite number in [0, 1]"),
    ("accuracy", "1.5", "accuracy '1.5' is not a finite number in [0, 1]"),
    ("step", "-20", "step '-20' is not a whole number of at least 1"),
    ("run_id", "not-a-run", "run_id 'not-a-run' is not 32 hexadecimal digits"),
])
def test_a_row_jaxcnn_never_writes_cuts_the_file_there(tmp_path, field, value, why):
    """A hand-edited NaN or Infinity was read as a number: a resume wrote it back into
    metrics.csv as `nan`, metrics.json got null windows marked complete, and plot drew
    them. Now reading stops at such a row, as at a row torn by a crash, and says why."""
    source, target = tmp_path / "a.csv", tmp_path / "b.csv"
    _log(source, [(RUN, 10, 2.0), (RUN, 20, 1.5), (RUN, 30, 1.0)])
    lines = source.read_text().splitlines()
    fields = lines[3].split(",")  # step 20, seed 0 (line 4 of the file)
    fields[outputs.CSV_COLUMNS.index(field)] = value
    lines[3] = ",".join(fields)
    source.write_text("\n".join(lines) + "\n")
    cut = outputs.Cut()
    assert [w["step"] for w in outputs.windows(source, RUN, 2, cut)] == [10]
    assert (cut.line, cut.why) == (4, why)
    cut = outputs.Cut()
    assert outputs.carry_over(source, target, RUN, up_to_step=30, cut=cut) == 10
    assert cut.line == 4 and "nan" not in target.read_text().lower()
    assert "inf" not in target.read_text().lower()
    assert not outputs.Cut()  # nothing cut: false


def test_a_non_finite_window_is_never_written(tmp_path):
    from jaxcnn.errors import DivergenceError

    log = outputs.MetricsLog(tmp_path / outputs.CSV_NAME, RUN, [0, 1], batch_size=1)
    with pytest.raises(DivergenceError, match="refusing to log the window of step 10"):
        log.write(window(10, np.nan))
    log.close()
    assert (tmp_path / outputs.CSV_NAME).read_text() == ",".join(outputs.CSV_COLUMNS) + "\n"


@pytest.mark.parametrize(("tail", "why"), [
    (f"{RUN},40,1,0,10,10,1.5,0.5".encode(), "the line has no end (a row torn by a crash"),
    (b"\x00" * 64 + b"\n", "1 fields instead of 8"),  # a power loss's zero-filled tail
    (b"\x00" * 64, "the line has no end"),
    (b"\xff\xfe garbage\n", "the line is not UTF-8 text (a damaged file)"),
])
def test_a_torn_or_damaged_tail_is_cut_never_a_traceback_or_a_wrong_number(tmp_path, tail,
                                                                           why):
    """Bytes that are not UTF-8 or NUL bytes (what a power loss can leave at the end of an
    appended file) made resume and plot end in a traceback (UnicodeDecodeError, csv's
    "line contains NUL"); and a row torn inside its last number ("0.5" of "0.55") was read
    as a complete row with a wrong value. A row counts only once its line has ended."""
    path = tmp_path / outputs.CSV_NAME
    _log(path, [(RUN, 10, 2.0), (RUN, 20, 1.5), (RUN, 30, 1.0)])
    with open(path, "ab") as fh:
        fh.write(tail)
    cut = outputs.Cut()
    assert [w["step"] for w in outputs.windows(path, RUN, 2, cut)] == [10, 20, 30]
    assert cut.line == 8 and cut.why.startswith(why), cut.why
    target = tmp_path / "resumed.csv"
    assert outputs.carry_over(path, target, RUN, up_to_step=40) == 30
    assert target.read_bytes().endswith(b",1.0,0.5\n")
