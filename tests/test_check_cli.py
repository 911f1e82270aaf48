"""`jaxcnn check` end to end, as a user runs it: blog and CS231n files, -m MODULE, --json,
exit codes, and usage errors as one line with exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"


def jaxcnn_check(*args, cwd=ROOT):
    # this tree's jaxcnn, from any folder (not another checkout's installed one)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, "-m", "jaxcnn", "check", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600, env=env)


def strict(text: str):
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))


def test_the_projects_own_numpy_copy_of_the_report(tmp_path):
    proc = jaxcnn_check("-m", "jaxcnn.reference", "--json")
    assert proc.returncode == 1, proc.stderr
    doc = strict(proc.stdout)
    assert doc["ok"] is False
    kinds = {(layer["name"], c["quantity"]): c["kind"] for layer in doc["layers"]
             for c in layer["checks"]}
    assert kinds == {("Conv3x3", "filters"): "correct", ("MaxPool2", "input"): "tie-overcount",
                     ("Softmax", "input"): "correct", ("Softmax", "weights"): "correct",
                     ("Softmax", "biases"): "correct"}
    pool = next(layer for layer in doc["layers"] if layer["name"] == "MaxPool2")
    assert pool["style"] == "blog" and pool["file"] == "jaxcnn.reference"
    check = pool["checks"][0]
    assert {"quantity", "kind", "scale", "max_rel_error", "worst", "note"} <= set(check)
    assert check["worst"] and {"index", "hand", "reference"} <= set(check["worst"][0])
    assert any(k["tied_windows"] > 0 for k in pool["kinks"])
    assert doc["chains"][0]["first_wrong"]["layer"] == "MaxPool2"
    assert "Found 3 layers" in proc.stderr  # progress goes to stderr with --json


def test_a_blog_style_file_with_a_bug_prints_the_table(tmp_path):
    source = (FIXTURES / "blog_layers.py").read_text()
    path = tmp_path / "mylayers.py"
    path.write_text(source.replace("d_L_d_filters[f] += d_L_d_out[i, j, f] * im_region",
                                   "d_L_d_filters[f] += d_L_d_out[i, j, f] * im_region.T"))
    proc = jaxcnn_check(path, "--layer", "Conv3x3", "--layer", "Softmax")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    row = next(line for line in lines if line.startswith("Conv3x3") and "filters" in line)
    assert "transposed" in row and "hand" in row and "vs ref" in row
    assert "(filter, y, x) where (filter, x, y) belongs" in proc.stdout
    assert "3 of 4 gradients correct" in proc.stdout


def test_a_cs231n_style_file_that_is_correct_exits_0(tmp_path):
    proc = jaxcnn_check(FIXTURES / "cs231n_layers.py", "--layer", "affine", "--layer",
                        "relu", "--layer", "softmax_loss", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = strict(proc.stdout)
    assert doc["ok"] and {layer["style"] for layer in doc["layers"]} == {"cs231n"}
    relu = next(layer for layer in doc["layers"] if layer["name"] == "relu")
    assert relu["checks"][0]["rule"] == "0 at 0"  # a valid subgradient at x = 0


def test_user_prints_never_mix_with_the_json(tmp_path):
    path = tmp_path / "noisy.py"
    path.write_text("import numpy as np\nprint('hello from import')\n\n"
                    "def relu_forward(x):\n    print('fwd')\n    return np.maximum(0, x), x\n\n"
                    "def relu_backward(dout, x):\n    return dout * (x > 0)\n")
    proc = jaxcnn_check(path, "--json")
    assert proc.returncode == 0, proc.stderr
    assert strict(proc.stdout)["ok"] is True
    assert "hello from import" in proc.stderr


@pytest.mark.parametrize("args, message", [
    ((), "give a Python file"),
    (("no_such_file.py",), "no such file"),
    # an empty name (an unset variable) checked the current folder; a device was "no such
    # file" though it exists
    (("",), "argument FILE: an empty path"),
    (("/dev/null",), "/dev/null: not a regular file (a character device)"),
    (("-m", "no_such_module_xyz"), "cannot find module"),
    (("--layer", "Nope", "-m", "jaxcnn.reference"), "no layer named Nope"),
])
def test_usage_errors_are_one_line_with_exit_2(args, message):
    proc = jaxcnn_check(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


def test_a_named_pipe_is_refused_without_reading_it(tmp_path):
    import os

    fifo = tmp_path / "layers.py"
    os.mkfifo(fifo)
    proc = jaxcnn_check(fifo)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert f"{fifo}: not a regular file (a named pipe)" in proc.stderr


def test_a_file_without_layers_or_with_a_syntax_error(tmp_path):
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    proc = jaxcnn_check(empty)
    assert proc.returncode == 2 and "no layers found" in proc.stderr
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n")
    proc = jaxcnn_check(broken)
    assert proc.returncode == 2 and "SyntaxError" in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_each_file_chains_the_network_it_holds(tmp_path):
    # a CS231n convnet with a wrong relu, and a blog network that trains MaxPool2Split
    # while the (wrong) MaxPool2 it was derived from is still in the file
    (tmp_path / "cs231n_layers.py").write_text((FIXTURES / "cs231n_layers.py").read_text()
                                               .replace("dx = dout * (x > 0)", "dx = dout"))
    (tmp_path / "cs231n_net.py").write_text((FIXTURES / "cs231n_net.py").read_text())
    blog = (FIXTURES / "blog_layers.py").read_text().replace(
        "d_L_d_input[i * 2 + i2, j * 2 + j2, f] = d_L_d_out[i, j, f]",
        "d_L_d_input[i * 2 + i2, j * 2 + j2, f] = 2 * d_L_d_out[i, j, f]")
    (tmp_path / "blog_net.py").write_text(blog + "\n\nconv = Conv3x3(8)\npool = MaxPool2Split()\n"
                                          "softmax = Softmax(13 * 13 * 8, 10)\n")
    proc = jaxcnn_check("cs231n_net.py", "blog_net.py", "--json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    doc = strict(proc.stdout)
    chains = {c["layers"][0].partition(":")[0]: c for c in doc["chains"]}
    cs = chains["cs231n_net.py"]
    assert [n.partition(":")[2] for n in cs["layers"]] == ["conv", "relu", "max_pool", "affine",
                                                          "softmax_loss"]
    assert cs["first_wrong"] == {"layer": "cs231n_net.py:relu", "quantity": "x",
                                 "kind": "wrong-derivative"}
    assert len(cs["inputs"]) == 3 and not cs["ok"]
    blog_chain = chains["blog_net.py"]
    assert "blog_net.py:MaxPool2Split" in blog_chain["layers"] and blog_chain["ok"]
    kinds = {(layer["name"], c["quantity"]): c["kind"] for layer in doc["layers"]
             for c in layer["checks"]}
    assert kinds[("blog_net.py:MaxPool2", "input")] == "scaled"
    assert kinds[("cs231n_net.py:conv_relu_pool", "x")] != "correct"  # its relu is wrong


def test_a_backward_without_its_forward_is_named(tmp_path):
    """A lone ``affine_backward`` is reported like a lone ``affine_forward``, not as a
    file with nothing in it."""
    lone = tmp_path / "lone.py"
    lone.write_text("def affine_backward(dout, cache):\n    return dout, dout, dout\n")
    proc = jaxcnn_check(lone)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "affine_backward: no affine_forward beside it" in proc.stderr


def test_json_on_exit_2_is_one_document_and_options_may_follow_files(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("def f():\n    pass\n")
    proc = jaxcnn_check("a.py", "--json", "b.py", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    doc = strict(proc.stdout)
    assert doc["ok"] is False and doc["status"] == 2 and doc["layers"] == []
    assert "no layers found in a.py, b.py" in doc["error"]
    assert proc.stderr.count("\n") == 1 and "no layers found" in proc.stderr
    proc = jaxcnn_check("a.py", "--json", "--seed", "x", cwd=tmp_path)  # a usage error too
    assert proc.returncode == 2 and "invalid int value" in strict(proc.stdout)["error"]


def test_a_stuck_import_ends_in_one_line_naming_its_line(tmp_path):
    (tmp_path / "forever.py").write_text("import time\n\nwhile True:\n    time.sleep(0.01)\n")
    proc = jaxcnn_check("forever.py", "--time-limit", "3", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == "importing forever.py ..."  # said while it runs
    assert lines[-1].startswith("jaxcnn check: error: importing forever.py did not finish in "
                                "3 s: stuck at ")
    assert "forever.py:4 (`time.sleep(0.01)`)" in lines[-1]


def test_help_lists_the_exit_codes():
    from jaxcnn.cli import build_parser

    parser = build_parser("check")
    sub = next(a for a in parser._actions if getattr(a, "choices", None))
    text = sub.choices["check"].format_help()
    assert "exit status: 0 every gradient correct; 1 a gradient is wrong" in text
    assert "--inputs" in text and "--time-limit" in text


@pytest.mark.parametrize("where", ["backward", "import"])
@pytest.mark.parametrize("raised", ["KeyboardInterrupt", "Boom('x')"])
def test_a_base_exception_from_the_users_code_is_one_line(tmp_path, where, raised):
    """Issue 22 (6): a layer raising KeyboardInterrupt (or any BaseException subclass)
    under `jaxcnn check` gave a 24-36 line traceback. It is one line, exit 2, naming the
    line; with --json, stdout is one document saying so."""
    raise_line = f"raise {raised}"
    source = ("import numpy as np\n\nclass Boom(BaseException):\n    pass\n\n"
              + (raise_line + "\n\n" if where == "import" else "")
              + "def relu_forward(x):\n    return np.maximum(x, 0), x\n\n"
              "def relu_backward(dout, x):\n    "
              + (raise_line if where == "backward" else "return dout * (x > 0)") + "\n")
    path = tmp_path / "layer.py"
    path.write_text(source)
    line = source.splitlines().index(raise_line.strip() if where == "import" else
                                      "    " + raise_line) + 1
    proc = jaxcnn_check(path, "--json")
    assert proc.returncode == 2, proc.stderr
    errors = [e for e in proc.stderr.splitlines() if e.startswith("jaxcnn check: error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    name = raised.partition("(")[0]
    assert name in errors[0]
    if where == "backward":
        assert f"layer.py:{line}" in errors[0]
    doc = strict(proc.stdout)
    assert doc["ok"] is False and name in doc["error"]


def test_json_stdout_is_one_document_whatever_the_users_threads_print(tmp_path):
    """Issue 22 (7): a layer whose code starts a thread that prints wrote into --json's
    stdout (3 runs in 5 no longer parsed). Its prints, and raw writes to descriptor 1, go
    to stderr until the document is written."""
    path = tmp_path / "chatty.py"
    path.write_text(
        "import os, threading, time\nimport numpy as np\n\n"
        "def _spam():\n    while True:\n        print('hello from a thread')\n"
        "        os.write(1, b'raw write\\n')\n        time.sleep(0.001)\n\n"
        "threading.Thread(target=_spam, daemon=True).start()\n\n"
        "def relu_forward(x):\n    return np.maximum(x, 0), x\n\n"
        "def relu_backward(dout, x):\n    return dout * (x > 0)\n")
    proc = jaxcnn_check(path, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = strict(proc.stdout)
    assert doc["ok"] is True and "hello from a thread" in proc.stderr


def test_nothing_reaches_stdout_after_the_json_document():
    """CI saw a user's thread print after the document (stdout was restored when the
    document was out, and the exit's flush wrote its line). Every write after the
    document, buffered or raw, made deterministic here, goes to stderr."""
    script = (
        "import os, sys\n"
        "from jaxcnn.cli.check import _stdout_to_stderr\n"
        "with _stdout_to_stderr() as document:\n"
        "    print('before')\n"
        "    document('{\"ok\": true}')\n"
        "print('late print')\n"
        "os.write(1, b'late raw write\\n')\n"
        "sys.stdout.flush()\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert strict(proc.stdout) == {"ok": True}
    assert proc.stderr.split() == ["before", "late", "print", "late", "raw", "write"]


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "1e400"])
def test_a_time_limit_that_is_not_a_usable_number_is_a_usage_error(tmp_path, value):
    """A negative limit was taken as none, and nan/inf/1e400 ended in setitimer's
    traceback: each is one line, exit 2, before the file is imported."""
    (tmp_path / "a.py").write_text("print('imported')\n")
    proc = jaxcnn_check("a.py", "--time-limit", value, cwd=tmp_path)
    assert proc.returncode == 2 and "imported" not in proc.stdout
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("jaxcnn check: error: argument --time-limit: must be 0 "
                                  "(no limit) or a number of seconds")


def test_json_cut_short_by_a_file_size_limit_is_exit_2_not_a_truncated_document(tmp_path):
    """`check --json > file` under `ulimit -f 1` wrote the first 1,024 bytes of the
    document and exited 0: a short write of the document is now an error, exit 2."""
    import shlex

    out = tmp_path / "doc.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = shlex.join([sys.executable, "-m", "jaxcnn", "check",
                          str(FIXTURES / "blog_layers.py"), "--layer", "Softmax", "--json"])
    # the limit is set by the shell (a preexec_fn would fork this multithreaded process)
    line = f"ulimit -f 1 && exec {command} > {shlex.quote(str(out))}"
    proc = subprocess.run(["bash", "-c", line], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "file size limit" in last and "Traceback" not in proc.stderr


def test_numpys_warnings_from_the_inputs_that_expose_a_bug_stay_off_stderr():
    """The large-logit inputs make an unguarded softmax overflow on purpose; the row says
    non-finite with its fix, and NumPy's RuntimeWarning lines do not clutter stderr. The
    user's own NumPy settings are back after the check (the API)."""
    import numpy as np

    proc = jaxcnn_check(FIXTURES / "dialects" / "linear_loss_bugs.py")
    assert proc.returncode == 1, proc.stderr
    assert "subtracts each row's maximum before exp" in proc.stdout
    assert "RuntimeWarning" not in proc.stderr, proc.stderr
    from jaxcnn.check import api

    before = np.geterr()
    with np.errstate(over="raise", under="warn"):
        with api._guard("x"):  # warnings off; a raise the user asked for kept
            assert np.geterr()["under"] == "ignore" and np.geterr()["over"] == "raise"
        assert np.geterr()["over"] == "raise" and np.geterr()["under"] == "warn"
    assert np.geterr() == before


def test_a_users_raise_setting_is_kept_while_checking():
    """The file sets np.seterr(over="raise") and catches the FloatingPointError to
    subtract the maximum (an unusual but valid guard): the check keeps that setting (only
    warnings are turned off), so the guarded loss is finite and correct, exit 0."""
    proc = jaxcnn_check(FIXTURES / "numpy_settings" / "overflow_guarded.py", "--json")
    doc = strict(proc.stdout)
    assert proc.returncode == 0 and doc["ok"], proc.stdout[-2000:]


@pytest.mark.parametrize("args", [
    ("--json", "--bogus"),  # the top-level parser's error: no document was printed
    ("a.py", "--bogus", "--js"),  # an abbreviation argparse takes for --json
    ("--json", "--time-limit", "-3", "a.py"),
    ("a.py", "--json", "--seed", "x"),
])
def test_every_usage_error_with_json_is_one_document(tmp_path, args):
    (tmp_path / "a.py").write_text("x = 1\n")
    proc = jaxcnn_check(*args, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    doc = strict(proc.stdout)
    assert doc["status"] == 2 and doc["error"] in proc.stderr


def test_a_signal_before_the_check_starts_still_writes_the_document(tmp_path):
    """Ctrl-C at start-up (before `check` registered its own last words): the one
    document, exit 130; none without --json."""
    (tmp_path / "a.py").write_text("x = 1\n")
    env = {**os.environ, "JAXCNN_FAULT": "start=INT", "PYTHONPATH": str(ROOT)}
    for json_flag in (["--json"], []):
        proc = subprocess.run([sys.executable, "-m", "jaxcnn", "check", "a.py", *json_flag],
                              cwd=tmp_path, capture_output=True, text=True, timeout=600,
                              env=env)
        assert proc.returncode == 130, proc.stderr
        assert proc.stderr == "jaxcnn check: interrupted (Ctrl-C)\n"
        if json_flag:
            doc = strict(proc.stdout)
            assert (doc["status"], doc["error"], doc["layers"]) == (
                130, "interrupted (Ctrl-C)", [])
        else:
            assert proc.stdout == ""


CLOSES = "import sys\nsys.{}.close()\n"
TANH_CLOSING = ("import sys\n"
                "import numpy as np\n"
                "sys.stdout.close()\n"
                "sys.__stderr__.close()\n"
                "\n"
                "def tanh_forward(x):\n"
                "    out = np.tanh(x)\n"
                "    return out, out\n"
                "\n"
                "def tanh_backward(dout, cache):\n"
                "    sys.stderr.close()\n"
                "    sys.stdout = None\n"
                "    return dout * (1 - cache ** 2)\n")


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_user_code_that_closes_a_standard_stream_leaves_jaxcnns_own(tmp_path, stream):
    (tmp_path / "closes.py").write_text(CLOSES.format(stream))
    proc = jaxcnn_check("closes.py", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr.count("\n") == 1 and "no layers found in closes.py" in proc.stderr
    proc = jaxcnn_check("closes.py", "--json", cwd=tmp_path)
    assert proc.returncode == 2 and "no layers found" in strict(proc.stdout)["error"]
    assert proc.stderr.count("\n") == 1


def test_a_layer_that_closes_and_replaces_the_streams_is_still_reported(tmp_path):
    (tmp_path / "lay.py").write_text(TANH_CLOSING)
    proc = jaxcnn_check("lay.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "1 of 1 gradient correct" in proc.stdout and "Found 1 layer" in proc.stdout
    proc = jaxcnn_check("lay.py", "--json", cwd=tmp_path)
    assert proc.returncode == 0 and strict(proc.stdout)["ok"] is True, proc.stderr


def test_keep_streams_gives_back_replaced_and_closed_streams(tmp_path):
    import io

    from jaxcnn.check.usercode import keep_streams

    out, err = io.StringIO(), io.StringIO()
    before = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        with keep_streams():
            sys.stdout = None
            sys.stderr = io.StringIO()
        assert (sys.stdout, sys.stderr) == (out, err)
        with keep_streams():
            err.close()
        assert sys.stdout is out and sys.stderr is not err and not sys.stderr.closed
        assert sys.stderr.fileno() == 2
    finally:
        sys.stdout, sys.stderr = before


def test_the_commands_flags_may_come_before_it(tmp_path):
    """`jaxcnn --json check x.py` said "unrecognized arguments: --json": a flag written
    before the command is the command's."""
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([sys.executable, "-m", "jaxcnn", "--json", "check", str(empty)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2 and "no layers found" in strict(proc.stdout)["error"]
    from jaxcnn.cli import _command_first

    assert _command_first(["--json", "check", "a.py"]) == ["check", "--json", "a.py"]
    assert _command_first(["--version"]) == ["--version"]
    assert _command_first(["--help", "check"]) == ["--help", "check"]
    assert _command_first(["check", "--json", "a.py"]) == ["check", "--json", "a.py"]
