"""Execute a notebook on a private IPython kernel of this interpreter, over IPC, with a bounded start.

Why not papermill's default kernel: it talks to the kernel over TCP on the loopback (the kernel then warns
"running over TCP without encryption", and with the loopback down the build waits a minute and dies with
"Kernel didn't respond"), and it needs a `python3` kernelspec installed somewhere on JUPYTER_PATH (ipykernel then
warns that the folder is not on the search path). Here the kernelspec lives in a temporary folder handed to the
kernel manager directly, and the sockets are Unix-domain (IPC) files in that folder: no network, no warning,
no global environment change. The kernel's own stdout/stderr go to a log file in that folder, so its shutdown
chatter (ipykernel can log a zmq "Socket operation on non-socket" traceback when its iopub pipe closes before a
last flush) never reaches the user; the log's tail is quoted when the kernel fails to start.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

KERNEL = "python3"
START_TIMEOUT_S = 60  # a cold kernel imports pandas + matplotlib; a busy machine needs well over 10 s
log = logging.getLogger(__name__)


class KernelStartError(RuntimeError):
    """The report's kernel did not start (or did not answer) in time."""


def kernel_spec(folder: Path, python_path: str) -> Path:
    """Write `folder/kernels/python3/kernel.json` running this interpreter with `python_path` importable."""
    spec = folder / "kernels" / KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (spliter-bench report)", "language": "python",
        "env": {"PYTHONPATH": python_path}, "metadata": {"debugger": False},
    }), encoding="utf-8")  # fmt: skip
    return spec


def execute(notebook, cwd: Path, start_timeout: float = START_TIMEOUT_S, cell_timeout: float | None = None):
    """Run every cell of `notebook` (an nbformat node, changed in place and returned) with `cwd` as working dir.

    Raises KernelStartError when the kernel does not come up within `start_timeout` seconds, and nbclient's
    CellExecutionError when a cell raises.
    """
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    package_parent = str(Path(__file__).resolve().parents[1])
    python_path = os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="report-kernel-") as folder:
        spec = kernel_spec(Path(folder), python_path)
        specs = KernelSpecManager(kernel_dirs=[str(spec.parent)], ensure_native_kernel=False, log=log)
        manager = AsyncKernelManager(
            kernel_name=KERNEL, kernel_spec_manager=specs, transport="ipc", ip=str(Path(folder) / "ipc"), log=log
        )
        client = NotebookClient(
            notebook, km=manager, kernel_name=KERNEL, startup_timeout=int(start_timeout), timeout=cell_timeout,
            resources={"metadata": {"path": str(cwd)}}, log=log,
        )  # fmt: skip
        kernel_log = Path(folder) / "kernel.log"
        try:
            with kernel_log.open("w", encoding="utf-8") as sink:
                # cleanup_kc: shut the kernel down (we own the manager, nbclient not); stdout/stderr reach Popen
                client.execute(cleanup_kc=True, stdout=sink, stderr=sink)
        except CellExecutionError:
            raise
        except (TimeoutError, RuntimeError) as error:
            if _started(notebook):
                raise
            atexit.unregister(client._cleanup_kernel)  # nbclient leaves it registered when the kernel never answered
            raise KernelStartError(
                f"the report's Python kernel ({sys.executable} -m ipykernel_launcher) did not start within "
                f"{start_timeout:.0f} s ({type(error).__name__}: {error}); check that ipykernel imports in this "
                "environment, or build the page without running it: python -m reports.build STUDY --no-execute"
                + _quoted_tail(kernel_log)
            ) from None
        log.debug("kernel output:\n%s", kernel_log.read_text(encoding="utf-8", errors="replace"))
    return notebook


def _quoted_tail(kernel_log: Path, lines: int = 12) -> str:
    """The last `lines` lines the kernel printed, as a suffix for an error message ('' when it printed nothing)."""
    text = kernel_log.read_text(encoding="utf-8", errors="replace").strip() if kernel_log.exists() else ""
    return "\nthe kernel printed:\n" + "\n".join(text.splitlines()[-lines:]) if text else ""


def _started(notebook) -> bool:
    """True once any cell ran: a timeout after that is a cell's, not the kernel's start."""
    return any(cell.get("execution_count") for cell in notebook.cells if cell.cell_type == "code")
