"""kernel: a notebook runs on a private IPC kernel of this interpreter; a kernel that never answers is a
bounded, clear error."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest

from reports import kernel


def test_a_notebook_runs_in_its_folder_over_ipc(tmp_path: Path) -> None:
    source = "import json, os\nfrom ipykernel.connect import get_connection_file\nprint(os.getcwd())\n"
    source += "json.load(open(get_connection_file()))['transport']"
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    kernel.execute(notebook, cwd=tmp_path)
    outputs = notebook.cells[0].outputs
    assert outputs[0]["text"].strip() == str(tmp_path)
    assert outputs[1]["data"]["text/plain"] == "'ipc'"  # Unix sockets: no TCP, no loopback needed


def test_what_the_kernel_process_prints_stays_out_of_the_console(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """Output written to the kernel's own file descriptors (ipykernel's shutdown tracebacks land there) is not ours."""
    source = "import os\nos.write(1, b'kernel fd 1 chatter\\n')\nos.write(2, b'kernel fd 2 chatter\\n')\n7"
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    kernel.execute(notebook, cwd=tmp_path)
    printed = capfd.readouterr()
    assert notebook.cells[0].outputs[-1]["data"]["text/plain"] == "7"
    assert "chatter" not in printed.out + printed.err


def test_a_kernel_that_never_starts_fails_within_the_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def silent_spec(folder: Path, python_path: str) -> Path:
        spec = folder / "kernels" / kernel.KERNEL
        spec.mkdir(parents=True)
        argv = [sys.executable, "-c", "import sys, time; print('no module named x', file=sys.stderr, flush=True); "
                "time.sleep(60)", "{connection_file}"]  # fmt: skip
        (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "mute", "language": "python"}))
        return spec

    monkeypatch.setattr(kernel, "kernel_spec", silent_spec)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
    with pytest.raises(kernel.KernelStartError, match=r"(?s)did not start within 3 s.*--no-execute.*printed:\nno module named x"):
        kernel.execute(notebook, cwd=tmp_path, start_timeout=3)


def loopback_down_available() -> bool:
    import shutil
    import subprocess

    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-n", "true"], capture_output=True, check=False
    ).returncode == 0


@pytest.mark.skipif(not loopback_down_available(), reason="needs `unshare -n` (root or user namespaces)")
def test_a_notebook_runs_with_the_loopback_down(tmp_path: Path) -> None:
    """In a fresh network namespace (no interface up, not even lo) the kernel still starts and answers."""
    import subprocess

    script = (
        "import nbformat, pathlib, sys\n"
        "from reports import kernel\n"
        "nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('6 * 7')])\n"
        "kernel.execute(nb, cwd=pathlib.Path(sys.argv[1]), start_timeout=60)\n"
        "print(nb.cells[0].outputs[0]['data']['text/plain'])\n"
    )
    done = subprocess.run(["unshare", "-n", sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                          text=True, timeout=120, check=False, cwd=Path(kernel.__file__).parents[1])  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42" and done.stderr.strip() == ""
