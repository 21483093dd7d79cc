"""The spliter-bench command line: doctor, plan, encode, train, generate, score, collect, report, run, check,
compare."""

from __future__ import annotations

import os

# Hugging Face libraries read these at import time: set them before anything can import one.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One BLAS thread unless the user says otherwise: trials run one per core, and numbers must not depend on
# how a launcher spreads them (Ray workers get one thread anyway). Must be set before numpy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated  # noqa: E402

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from ablations.schema import StudyError  # noqa: E402
from ablations.study import Study, load_study, select_trials  # noqa: E402

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Benchmark and ablation suite for the Spliter text-to-video method.")
# Messages are plain text: file names may hold markup characters (clip[red]x.mp4), and paths are never wrapped.
console = Console(stderr=True, markup=False, highlight=False, emoji=False, soft_wrap=True)

StudyArg = Annotated[str, typer.Argument(help="a shipped study (quickstart, synthetic, paper) or a study .yaml")]
OutOpt = Annotated[Path, typer.Option("--out", help="run root; everything of a study goes under ROOT/<study>/")]
OnlyOpt = Annotated[str | None, typer.Option("--only", help="select trials: variant=a|b,seed=0|1")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps")]
ForceOpt = Annotated[bool, typer.Option("--force", help="redo the selected stages even when done")]
LauncherOpt = Annotated[str, typer.Option("--launcher", help="local or ray")]
WorkersOpt = Annotated[int | None, typer.Option(
    "--workers", help="parallel trials (local: processes; ray: CPUs of a local Ray); default: the study's resources.workers")]
RayOpt = Annotated[str | None, typer.Option("--ray-address", help="address of an existing Ray cluster")]
NoRedoOpt = Annotated[bool, typer.Option("--no-redo", help="stop at a stale stage (damaged outputs, changed data) "
                                                           "naming the command that redoes it, instead of redoing it")]


class Failure(Exception):
    """Stops the command with a message and a non-zero exit code."""


def _load(study: str) -> Study:
    try:
        return load_study(study)
    except StudyError as err:
        raise Failure(str(err)) from None


def _context(study: Study, out: Path, device: str, force: bool, redo: bool = True):
    from ablations.stages.context import RunContext

    return RunContext(study_path=study.path, root=_study_root(study, out), device=device, force=force, redo=redo)


def _study_root(study: Study, out: Path) -> Path:
    """ROOT/<study>, verified to stay inside ROOT (the name is checked at load; this is the second lock)."""
    from ablations.validation import safe_child

    try:
        return safe_child(out, study.name)
    except StudyError as err:
        raise Failure(str(err)) from None


def _preflight(study: Study, out: Path, device: str) -> None:
    """Fail before any work when the study needs something that is not here."""
    from ablations.doctor import environment_checks, problems, study_checks

    bad = problems(study_checks(study) + environment_checks(out, device))
    if bad:
        lines = "\n".join(f"  {c.name}: {c.detail}" for c in bad)
        raise Failure(f"study '{study.name}' ({study.path}) cannot run:\n{lines}\n(see `spliter-bench doctor {study.path}`)")


def _launch(study: Study, stages, *, out, only, device, force, launcher, workers, ray_address, redo=True) -> list:
    from ablations.launchers import Launcher

    _preflight(study, out, device)
    ctx = _context(study, out, device, force, redo)
    trials = select_trials(study.trials, only)
    if workers is None:
        workers = study.spec.resources.worker_count()
    runner = Launcher(kind=launcher, workers=workers, ray_address=ray_address)
    try:
        return runner.run(ctx, trials, stages)
    finally:
        if launcher == "ray":
            import ray

            if ray.is_initialized():
                ray.shutdown()


@app.command()
def doctor(study: StudyArg = "quickstart", out: OutOpt = Path("runs"), device: DeviceOpt = "auto") -> None:
    """Check what a study needs: weights folders, datasets, weight files, output folder, optional extras."""
    from ablations.doctor import environment_checks, problems, study_checks

    spec = _load(study)
    checks = study_checks(spec) + environment_checks(out, device)
    table = Table(title=f"spliter-bench doctor: {spec.name}")
    for col in ("check", "status", "detail"):
        table.add_column(col, overflow="fold")
    for c in checks:
        status = "ok" if c.ok else ("MISSING" if c.required else "optional")
        table.add_row(c.name, status, c.detail)
    Console().print(table)
    bad = problems(checks)
    if bad:
        raise Failure(f"{len(bad)} thing(s) missing for study '{spec.name}': " + "; ".join(c.detail for c in bad))
    console.print(f"study '{spec.name}' has everything it needs")


@app.command()
def plan(study: StudyArg = "quickstart", out: OutOpt = Path("runs"), only: OnlyOpt = None,
         as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
         cost: Annotated[bool, typer.Option("--cost", help="estimate the generate decodes, FLOPs and GPU-hours instead "
                                                            "(and count what a run under --out decoded)")] = False,
         ) -> None:
    """List the trials of a study with the state of each stage: done / stale / missing (a run redoes the last two)."""
    from ablations.stages.plan import STAGES, stage_dir

    spec = _load(study)
    if cost:
        from ablations.cost import format_cost

        print(format_cost(spec, _study_root(spec, out)))
        return
    from ablations.stages.runner import plan_state

    ctx = _context(spec, out, "cpu", False)
    trials = select_trials(spec.trials, only)
    known: dict[Path, tuple[str, str]] = {}  # encode folders are shared: each is checked once
    rows = []
    for t in trials:
        states = {}
        for s in STAGES:
            folder = stage_dir(ctx, t, s)
            if s != "encode" or folder not in known:
                known[folder] = plan_state(ctx, t, s)
            states[s] = known[folder]
        rows.append({"trial_id": t.trial_id, "variant": t.variant, "seed": t.seed,
                     **{s: state for s, (state, _) in states.items()},
                     "why": {s: why for s, (state, why) in states.items() if state == "stale"}})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{spec.name}: {len(trials)} trials ({spec.path})")
    table.add_column("trial", overflow="fold")  # ids are copied into --only: never cut them
    for col in STAGES:
        table.add_column(col)
    table.add_column("why stale", overflow="fold")
    for row in rows:
        table.add_row(row["trial_id"], *(row[s] for s in STAGES), "; ".join(f"{s}: {w}" for s, w in row["why"].items()))
    Console().print(table)
    redo = sum(state in ("stale", "missing") for state, _ in known.values())  # a shared encode folder once
    console.print(f"a run would redo {redo} stage(s): those stale or missing" if redo else "every stage is done")


def _stage_command(stage: str):
    def command(study: StudyArg = "quickstart", out: OutOpt = Path("runs"), only: OnlyOpt = None,
                device: DeviceOpt = "auto", force: ForceOpt = False, launcher: LauncherOpt = "local",
                workers: WorkersOpt = None, ray_address: RayOpt = None) -> None:
        spec = _load(study)
        from ablations.stages.plan import STAGES

        stages = STAGES[: STAGES.index(stage) + 1]  # a stage needs the ones before it
        outcomes = _launch(spec, stages, out=out, only=only, device=device, force=force, launcher=launcher,
                           workers=workers, ray_address=ray_address)
        ran = sum(o.status == "ran" for o in outcomes if o.stage == stage)
        console.print(f"{stage}: {ran} ran, {sum(o.status == 'skipped' for o in outcomes if o.stage == stage)} already done")

    command.__doc__ = f"Run the stages up to {stage} for the selected trials (done stages are skipped)."
    command.__name__ = stage
    return command


for _stage in ("encode", "train", "generate", "score"):
    app.command(name=_stage)(_stage_command(_stage))


@app.command()
def collect(study: StudyArg = "quickstart", out: OutOpt = Path("runs")) -> None:
    """Build results/*.parquet and study.json from a finished study."""
    from ablations.results import IncompleteResults
    from ablations.results import collect as collect_results

    spec = _load(study)
    try:
        path = collect_results(_context(spec, out, "cpu", False), spec, force=True)
    except IncompleteResults as err:
        raise Failure(str(err)) from None
    console.print(f"results written to {path}")


@app.command()
def report(study: StudyArg = "quickstart", out: OutOpt = Path("runs")) -> None:
    """Rebuild only the report (HTML + executed notebook) from the results folder."""
    from reports.build import build_report

    spec = _load(study)
    root = _study_root(spec, out)
    if not (root / "results" / "scores.parquet").exists():
        raise Failure(f"no results at {root / 'results'}; run `spliter-bench run {spec.path}` (or collect) first")
    index = build_report(root)
    console.print(f"report: {index}")


@app.command()
def run(study: StudyArg = "quickstart", out: OutOpt = Path("runs"), only: OnlyOpt = None, device: DeviceOpt = "auto",
        force: ForceOpt = False, launcher: LauncherOpt = "local", workers: WorkersOpt = None, ray_address: RayOpt = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="show the plan and stop")] = False,
        no_report: Annotated[bool, typer.Option("--no-report", help="stop after collecting the results")] = False,
        no_redo: NoRedoOpt = False) -> int:
    """All stages (encode, train, generate, score), then collect, then the report; exit 3 if an expectation failed."""
    from ablations.results import collect as collect_results
    from ablations.stages.plan import STAGES

    spec = _load(study)
    if dry_run:
        _preflight(spec, out, device)
        plan(study=study, out=out, only=only, as_json=False)
        return 0
    started = time.time()
    outcomes = _launch(spec, STAGES, out=out, only=only, device=device, force=force, launcher=launcher,
                       workers=workers, ray_address=ray_address, redo=not no_redo)
    ctx = _context(spec, out, device, force, not no_redo)
    ran = sum(o.status == "ran" for o in outcomes)
    if only:
        console.print(f"{ran} stage(s) ran for --only {only}; collect and report need the whole study")
        return 0
    results = collect_results(ctx, spec)
    console.print(f"results: {results}")
    if not no_report:
        from reports.build import build_report, report_is_current

        if report_is_current(ctx.root):
            console.print(f"report: {ctx.root / 'report' / 'index.html'} (up to date)")
        else:
            console.print(f"report: {build_report(ctx.root)}")
    console.print(f"done in {time.time() - started:.1f} s ({ran} stage(s) ran, {len(outcomes) - ran} already done)")
    return _verdict_exit(results)


# Exit code of `run` and `check` when a declared expectation failed (1 stays "could not run").
EXPECTATION_FAILED = 3


def _verdict_exit(results_dir: Path) -> int:
    """Print each failed expectation of results/expectations.json; EXPECTATION_FAILED when any failed."""
    from ablations.verdicts import read_failed

    failed = read_failed(results_dir)
    for entry in failed:
        console.print(f"expectation failed: {entry['expectation']} on {entry['metric']}: {entry['detail']}")
    if failed:
        console.print(f"{len(failed)} expectation(s) failed (see {results_dir / 'expectations.json'})")
        return EXPECTATION_FAILED
    return 0


@app.command()
def check(study: StudyArg = "quickstart", out: OutOpt = Path("runs")) -> int:
    """Judge the study's expectations on its collected scores; exit 3 naming each one that failed."""
    import pandas as pd

    from ablations.verdicts import judge, write_verdicts

    spec = _load(study)
    results_dir = (out / spec.name).resolve() / "results"
    scores_path = results_dir / "scores.parquet"
    if not scores_path.exists():
        raise Failure(f"no results at {results_dir}; run `spliter-bench run {spec.path}` (or collect) first")
    verdicts = judge(pd.read_parquet(scores_path), spec.spec.expectations)
    write_verdicts(verdicts, results_dir)
    for v in verdicts:
        console.print(f"{'held  ' if v.held else 'FAILED'} {v.expectation} ({v.metric}): {v.detail}", markup=False)
    if not verdicts:
        console.print(f"study '{spec.name}' declares no expectations")
    return _verdict_exit(results_dir)


@app.command()
def compare(run_a: Annotated[str, typer.Argument(help="study folder A (holds results/), e.g. runs/quickstart")],
            run_b: Annotated[str, typer.Argument(help="study folder B, compared against A (differences are B - A)")],
            out: Annotated[str | None, typer.Option("--out", help="output folder (default: RUN_B/compare-<A>)")] = None,
            ) -> int:
    """Compare two finished runs: protocol changes and paired differences (comparison.md, comparison.html)."""
    from reports.compare import main as compare_main

    code = compare_main([run_a, run_b] + (["--out", out] if out else []))
    if code:
        raise Failure(f"could not compare {run_a} with {run_b} (see the message above)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import click

    try:
        result = app(args=argv, standalone_mode=False)
        if isinstance(result, int):
            return result
    except click.exceptions.Exit as exit_:
        return exit_.exit_code
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except click.exceptions.Abort:
        console.print("aborted")
        return 130
    except Failure as err:
        console.print(f"error: {err}")
        return 1
    except Exception as err:  # noqa: BLE001 - one clear line, non-zero exit, traceback on request
        from ablations.launchers import TrialFailed

        if os.environ.get("SPLITER_DEBUG"):
            raise
        if isinstance(err, TrialFailed | StudyError | FileNotFoundError | ValueError | RuntimeError):
            console.print(f"error: {err}")
            return 1
        raise
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
