"""Launchers: thin adapters that call run_trial() for every (trial, stage). Results live on disk, not here."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass

from tqdm.auto import tqdm

from ablations.stages import STAGES, RunContext, StageOutcome, run_trial
from ablations.study import Trial


class TrialFailed(RuntimeError):
    """A stage of a trial failed; the message names both."""

    def __init__(self, trial_id: str, stage: str, cause: BaseException):
        super().__init__(f"trial {trial_id}, stage {stage} failed: {type(cause).__name__}: {cause}")
        self.trial_id, self.stage = trial_id, stage


def _guarded(ctx: RunContext, trial_id: str, stage: str) -> StageOutcome:
    try:
        return run_trial(ctx, trial_id, stage)
    except TrialFailed:
        raise
    except Exception as err:  # noqa: BLE001 - re-raised with the trial and stage named
        raise TrialFailed(trial_id, stage, err) from err


@dataclass
class Launcher:
    """Runs each stage over all trials before the next stage (one outer progress bar per stage)."""

    kind: str = "local"
    workers: int = 1
    ray_address: str | None = None
    show_progress: bool = True

    def run(self, ctx: RunContext, trials: list[Trial], stages: Iterable[str] = STAGES) -> list[StageOutcome]:
        outcomes: list[StageOutcome] = []
        for stage in stages:
            if stage not in STAGES:
                raise ValueError(f"unknown stage {stage!r}: use one of {STAGES}")
            # The encode stage is shared by all trials of one data source: run it once per distinct folder.
            todo = _unique_encode(ctx, trials) if stage == "encode" else [t.trial_id for t in trials]
            mapper = self._mapper(ctx) if stage != "encode" else _serial
            # The bar is closed on failure too, so the error message starts on a line of its own.
            with tqdm(total=len(todo), desc=f"{stage:>8}", unit="trial", disable=not self.show_progress) as bar:
                for outcome in mapper(ctx, todo, stage):
                    outcomes.append(outcome)
                    bar.set_postfix_str(f"{outcome.trial_id} {outcome.status}", refresh=False)
                    bar.update()
        return outcomes

    def _mapper(self, ctx: RunContext) -> Callable:
        if self.kind == "local":
            return _serial if self.workers <= 1 else _pool(self.workers)
        if self.kind == "ray":
            return _ray(self.ray_address, self.workers)
        raise ValueError(f"unknown launcher {self.kind!r}: use local or ray")


def _unique_encode(ctx: RunContext, trials: list[Trial]) -> list[str]:
    from ablations.stages import stage_dir

    seen: dict[str, str] = {}
    for trial in trials:
        seen.setdefault(str(stage_dir(ctx, trial, "encode")), trial.trial_id)
    return list(seen.values())


def _serial(ctx: RunContext, trial_ids: list[str], stage: str):
    for trial_id in trial_ids:
        yield _guarded(ctx, trial_id, stage)


def _worker_init(gpu_queue) -> None:
    # One GPU per worker process where there are GPUs.
    if gpu_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_queue.get())


def _pool(workers: int) -> Callable:
    def mapper(ctx: RunContext, trial_ids: list[str], stage: str):
        import torch

        mp = multiprocessing.get_context("spawn")
        gpu_queue = None
        if torch.cuda.is_available():
            gpu_queue = mp.Manager().Queue()
            for i in range(workers):
                gpu_queue.put(i % torch.cuda.device_count())
        with ProcessPoolExecutor(workers, mp_context=mp, initializer=_worker_init, initargs=(gpu_queue,)) as pool:
            futures = [pool.submit(_guarded, ctx, trial_id, stage) for trial_id in trial_ids]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for future in futures:
                if future in done and future.exception() is not None:
                    for other in futures:
                        other.cancel()
                    raise future.exception()
            for future in futures:
                yield future.result()

    return mapper


def _ray(address: str | None, workers: int) -> Callable:
    """Ray tasks on a local instance (num_cpus=workers) or on the cluster at `address`."""

    def mapper(ctx: RunContext, trial_ids: list[str], stage: str):
        try:
            import ray
        except ImportError as err:
            raise RuntimeError("the ray launcher needs Ray: pip install -e '.[ray]'") from err
        if not ray.is_initialized():
            if address:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(num_cpus=max(workers, 1), include_dashboard=False, log_to_driver=False,
                         object_store_memory=200 * 1024 * 1024)
        study = ctx.study()
        resources = {t.trial_id: t.config["resources"] for t in study.trials}
        remote = ray.remote(_guarded)
        refs = [
            remote.options(num_cpus=resources[t]["cpu"], num_gpus=resources[t]["gpu"], max_retries=0).remote(
                ctx, t, stage
            )
            for t in trial_ids
        ]
        for ref in refs:
            yield ray.get(ref)

    return mapper
