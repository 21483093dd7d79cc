"""RunContext: the settings of one run of a study (where, on which device, how patiently); no resources."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ablations.runfolder import RunFolder
from ablations.study import Study, load_study


@dataclass
class RunContext:
    """Everything a stage needs besides the trial and the process's Resources; picklable for workers."""

    study_path: Path
    root: Path  # ROOT/<study>
    device: str = "auto"  # auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps
    force: bool = False  # redo stages even when done
    redo: bool = True  # redo a stale stage (outputs damaged, inputs changed); False: stop, naming the command
    lock_wait_s: float = 3600.0  # how long a stage waits for another process holding its lock
    progress: bool = False  # inner progress bars (the launcher shows one outer bar per stage)
    # Skip decoder calls identical to one made before: frame 0 once per study, repeated calls once per stage
    # (ablations.stages.decodes). Not part of any stage hash: it changes no pixel. False makes every call (the
    # reference the tests compare with).
    dedup: bool = True
    _study: Study | None = field(default=None, init=False, repr=False, compare=False)  # the loaded study file

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.root)

    def study(self) -> Study:
        if self._study is None:
            self._study = load_study(self.study_path)
        return self._study
