"""A clean console: a micro quickstart-like study run through the real CLI, in a subprocess as a user runs it,
prints only lines the suite writes on purpose (its progress bars, paths, verdicts and its own warnings), never a
library's warning the user cannot act on."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
from fixtures import micro_quickstart, shipped_study, write_yaml

from ablations.launchers import Launcher
from ablations.stages.runner import StageOutcome

ENCODE = r"WARNING ablations\.stages\.encode: encode: "
# Every kind of line the suite itself prints during `run`, its own actionable warnings included; anything else
# is noise.
SUITE_LINES = {
    "a launcher progress bar (one per stage)": r"\s*(encode|train|generate|score): +\d+%\|.*\| \d+/\d+ \[.*\]",
    "where the results are": r"results: \S+",
    "where the report is": r"report: \S+index\.html( \(up to date\))?",
    "the run's summary": r"done in [\d.]+ s \(\d+ stage\(s\) ran, \d+ already done\)",
    "a failed expectation": r"expectation failed: .+",
    "the failed expectations' count": r"\d+ expectation\(s\) failed \(see \S+expectations\.json\)",
    "a source file left out, with its reason": ENCODE + r"skipped .+: .+",
    "a caption the text encoder cuts": ENCODE + r"the caption of .+ has \d+ tokens; the text encoder keeps the first \d+",
    "a re-encode of changed data": ENCODE + r"\d+ video\(s\) reused from the previous encode, \d+ encoded again or anew",
    "a note on the user's own captions file": ENCODE + r"\S+: (extra|unknown) column\(s\) kept in CaptionedVideo\.extra: .+",
    "a headline metric the study did not score": r"WARNING ablations\.results: headline_metric .+ was not scored; .+",
}
NOISE = re.compile(r"traitlets|over TCP|kernelspec|Warning\b|warn\(|it/s\]|s/it\]", re.I)


def suite_line(line: str) -> bool:
    return any(re.fullmatch(pattern, line) for pattern in SUITE_LINES.values())


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, list[str]]:
    """Exit code and every line of the run's stdout and stderr together (tqdm's redraws split at \\r)."""
    folder = tmp_path_factory.mktemp("console")
    # one expectation of the shipped quickstart, on the micro study's variant, so the verdict lines take part too
    expectation = [{**shipped_study("quickstart")["expectations"][1], "variant": "combined"}]
    study = write_yaml(folder / "console.yaml", micro_quickstart(study="console", expectations=expectation))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "default"}  # show warnings a user would see
    done = subprocess.run(
        [sys.executable, "-m", "ablations.cli", "run", str(study), "--out", str(folder / "runs")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900,
    )  # fmt: skip
    return done.returncode, console_lines(done.stdout)


def console_lines(text: str) -> list[str]:
    """What a terminal shows, line by line: each tqdm redraw (after a carriage return) a line of its own."""
    return [part.rstrip() for line in text.splitlines() for part in line.split("\r") if part.strip()]


def test_a_quickstart_like_run_prints_only_the_suites_own_lines(console: tuple[int, list[str]]) -> None:
    code, lines = console
    assert code in (0, 3), "\n".join(lines)  # 3: an expectation failed, which micro training may well do
    assert not [line for line in lines if not suite_line(line)], "\n".join(lines)
    # built-in data with nothing wrong: not even one of the suite's own warnings has anything to say
    assert not [line for line in lines if line.startswith("WARNING")], "\n".join(lines)
    assert any(line.startswith("report: ") for line in lines) and any(line.startswith("done in ") for line in lines)


def test_no_library_warning_or_kernel_chatter_reaches_the_console(console: tuple[int, list[str]]) -> None:
    _, lines = console
    assert not [line for line in lines if NOISE.search(line) and not suite_line(line)], "\n".join(lines)


@pytest.mark.parametrize(
    "line",
    ["[W 2026] WARNING traitlets: kernel_spec_manager", "Kernel is running over TCP without encryption",
     "/x/y.py:3: FutureWarning: a is deprecated", "epoch 1/2: 100%|####| 3/3 [00:00<00:00, 12.0it/s]"],
)  # fmt: skip
def test_the_filter_would_catch_the_noise_it_is_for(line: str) -> None:
    assert not suite_line(line) and NOISE.search(line)


def test_a_warning_logged_while_a_stage_bar_is_drawn_starts_a_line_of_its_own(capfd, monkeypatch) -> None:
    """The launcher routes log records around its bar (tqdm.write): never glued to the end of the bar's line."""
    def execute(todo, stage):
        for trial_id in todo:
            logging.getLogger("ablations.stages.encode").warning("encode: skipped x.mp4: file is empty (0 bytes)")
            yield StageOutcome(trial_id, stage, "ran", 0.0)

    launcher = Launcher()
    monkeypatch.setattr(launcher, "_executor", lambda ctx: contextlib.nullcontext(execute))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))  # ablations.cli's format
    logging.getLogger().addHandler(handler)
    try:
        launcher.run(None, [SimpleNamespace(trial_id="base-s0-0000abcd")], ["train"])
    finally:
        logging.getLogger().removeHandler(handler)
    captured = capfd.readouterr()
    lines = console_lines(captured.out + captured.err)
    assert "WARNING ablations.stages.encode: encode: skipped x.mp4: file is empty (0 bytes)" in lines, lines
    assert all(suite_line(line) for line in lines), lines
