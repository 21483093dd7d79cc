"""Launchers: run every (trial, stage) through run_trial(), stage after stage. Results live on disk, not here.

Each process that runs stages holds one Resources (backend, stores, rollouts, encoders, FVD scorer) for the
whole launch: the launcher's own process (local, 1 worker), each of N worker processes that live across all
stages (local, N workers), or each of N Ray actors. A backend is therefore loaded at most once per process.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ablations.stages.context import RunContext
from ablations.stages.plan import STAGES, stage_dir
from ablations.stages.resources import Resources
from ablations.stages.runner import StageOutcome, run_trial
from ablations.study import Trial


class TrialFailed(RuntimeError):
    """A stage of a trial failed; the message names both."""

    def __init__(self, trial_id: str, stage: str, cause: str):
        super().__init__(f"trial {trial_id}, stage {stage} failed: {cause}")
        self.trial_id, self.stage, self.cause = trial_id, stage, cause

    def __reduce__(self):  # picklable across processes with its three arguments
        return (TrialFailed, (self.trial_id, self.stage, self.cause))


def guarded(ctx: RunContext, resources: Resources, trial_id: str, stage: str) -> StageOutcome:
    """run_trial, with any failure re-raised as TrialFailed naming the trial and the stage."""
    try:
        return run_trial(ctx, trial_id, stage, resources)
    except TrialFailed:
        raise
    except Exception as err:  # noqa: BLE001 - re-raised with the trial and stage named
        raise TrialFailed(trial_id, stage, f"{type(err).__name__}: {err}") from err


@dataclass
class Launcher:
    """Runs each stage over all trials before the next stage (one outer progress bar per stage)."""

    kind: str = "local"  # local or ray
    workers: int = 1  # parallel processes (local) or actors (ray)
    ray_address: str | None = None  # an existing Ray cluster (None: a local Ray instance)
    show_progress: bool = True

    def run(self, ctx: RunContext, trials: list[Trial], stages: Iterable[str] = STAGES) -> list[StageOutcome]:
        stages = list(stages)
        for stage in stages:
            if stage not in STAGES:
                raise ValueError(f"unknown stage {stage!r}: use one of {STAGES}")
        outcomes: list[StageOutcome] = []
        with self._executor(ctx) as execute:
            for stage in stages:
                # The encode stage is shared by all trials of one data source: run it once per distinct folder.
                todo = _unique_encode(ctx, trials) if stage == "encode" else [t.trial_id for t in trials]
                # The bar is closed on failure too, so the error message starts on a line of its own; a warning
                # logged meanwhile is written above the bar (tqdm.write), not glued to the end of its line.
                with logging_redirect_tqdm(tqdm_class=tqdm), \
                        tqdm(total=len(todo), desc=f"{stage:>8}", unit="trial", disable=not self.show_progress) as bar:
                    for outcome in execute(todo, stage):
                        outcomes.append(outcome)
                        bar.set_postfix_str(f"{outcome.trial_id} {outcome.status}", refresh=False)
                        bar.update()
        return outcomes

    def _executor(self, ctx: RunContext):
        if self.kind == "local":
            return SerialExecutor(ctx) if self.workers <= 1 else PoolExecutor(ctx, self.workers)
        if self.kind == "ray":
            return RayExecutor(ctx, self.workers, self.ray_address)
        raise ValueError(f"unknown launcher {self.kind!r}: use local or ray")


def _unique_encode(ctx: RunContext, trials: list[Trial]) -> list[str]:
    seen: dict[str, str] = {}
    for trial in trials:
        seen.setdefault(str(stage_dir(ctx, trial, "encode")), trial.trial_id)
    return list(seen.values())


class SerialExecutor:
    """Every stage in this process, on one Resources."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx, self.resources = ctx, Resources(ctx)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def __call__(self, trial_ids: list[str], stage: str) -> Iterator[StageOutcome]:
        for trial_id in trial_ids:
            yield guarded(self.ctx, self.resources, trial_id, stage)


def _worker(ctx: RunContext, tasks, results, gpu: int | None) -> None:
    """A pool worker: one Resources for its whole life; (trial_id, stage) in, ("ok"|"error", payload) out."""
    if gpu is not None:  # one GPU per worker process where there are GPUs
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    resources = Resources(ctx)
    for trial_id, stage in iter(tasks.get, None):
        try:
            results.put(("ok", guarded(ctx, resources, trial_id, stage)))
        except TrialFailed as err:
            results.put(("error", err))
        except BaseException as err:  # noqa: BLE001 - the parent must hear of it rather than wait forever
            results.put(("error", TrialFailed(trial_id, stage, f"{type(err).__name__}: {err}")))


class PoolExecutor:
    """N spawned worker processes that live across all stages of one launch."""

    def __init__(self, ctx: RunContext, workers: int) -> None:
        self.ctx, self.workers = ctx, workers
        self.processes: list = []

    def __enter__(self):
        mp = multiprocessing.get_context("spawn")
        self.tasks, self.results = mp.Queue(), mp.Queue()
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        for i in range(self.workers):
            process = mp.Process(target=_worker, args=(self.ctx, self.tasks, self.results, i % gpus if gpus else None),
                                 daemon=True)
            process.start()
            self.processes.append(process)
        return self

    def __exit__(self, *exc) -> None:
        for _ in self.processes:
            self.tasks.put(None)
        for process in self.processes:
            process.join(timeout=None if exc[0] is None else 5)
            if process.is_alive():
                process.terminate()
                process.join()

    def __call__(self, trial_ids: list[str], stage: str) -> Iterator[StageOutcome]:
        for trial_id in trial_ids:
            self.tasks.put((trial_id, stage))
        for _ in trial_ids:
            kind, payload = self._next()
            if kind == "error":
                raise payload
            yield payload

    def _next(self) -> tuple[str, object]:
        while True:
            try:
                return self.results.get(timeout=1.0)
            except queue.Empty:
                dead = [p for p in self.processes if not p.is_alive()]
                if dead:
                    raise RuntimeError(
                        f"a worker process died (exit code {dead[0].exitcode}); see its output above"
                    ) from None


class RayWorker:
    """A Ray actor holding one Resources across trials and stages."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx, self.resources = ctx, Resources(ctx)

    def run(self, trial_id: str, stage: str) -> StageOutcome:
        return guarded(self.ctx, self.resources, trial_id, stage)


class RayExecutor:
    """N Ray actors on a local instance (num_cpus=workers) or on the cluster at `address`."""

    def __init__(self, ctx: RunContext, workers: int, address: str | None) -> None:
        self.ctx, self.workers, self.address = ctx, max(workers, 1), address

    def __enter__(self):
        try:  # optional dependency: only this launcher needs it
            import ray
        except ImportError as err:
            raise RuntimeError("the ray launcher needs Ray: pip install -e '.[ray]'") from err
        from ray.util import ActorPool

        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False,
                         object_store_memory=200 * 1024 * 1024)
        # An actor reserves what the most demanding trial asks for, for the whole launch.
        resources = [t.config["resources"] for t in self.ctx.study().trials]
        actor = ray.remote(RayWorker).options(num_cpus=max(r["cpu"] for r in resources),
                                              num_gpus=max(r["gpu"] for r in resources), max_restarts=0)
        self.actors = [actor.remote(self.ctx) for _ in range(self.workers)]
        self.pool = ActorPool(self.actors)
        return self

    def __exit__(self, *exc) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)

    def __call__(self, trial_ids: list[str], stage: str) -> Iterator[StageOutcome]:
        yield from self.pool.map(lambda actor, trial_id: actor.run.remote(trial_id, stage), trial_ids)
