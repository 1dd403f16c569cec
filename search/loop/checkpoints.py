"""Each running trial's newest checkpoint, kept on disk by the scheduler's process.

``<DATA_DIR>/checkpoints/<study>/trial-<n>.pt``, replaced atomically: a trial cut short (a
lost worker, a restart) resumes from it; it is removed when the trial ends.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from models.training.results import TrainCheckpoint


@dataclass(frozen=True)
class Checkpoints:
    """The checkpoint files of one study's trials (``folder`` None: none are kept)."""

    folder: Path | None

    def path(self, number: int) -> Path | None:
        return None if self.folder is None else self.folder / f"trial-{number}.pt"

    def write(self, number: int, state: bytes) -> None:
        """Keep ``state`` as trial ``number``'s newest checkpoint."""
        path = self.path(number)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(state)
        os.replace(partial, path)  # a crash mid-write leaves the previous checkpoint whole

    def read(self, number: int) -> tuple[bytes | None, int]:
        """Trial ``number``'s newest checkpoint and its epoch (None, 0: there is none).

        The epoch is read from the file itself, not from the trial's ``checkpoint_epoch``
        attribute: a crash between writing the file and the attribute leaves the attribute one
        checkpoint behind.
        """
        path = self.path(number)
        if path is None or not path.is_file():
            return None, 0
        state = path.read_bytes()
        return state, TrainCheckpoint.read(state).epoch

    def drop(self, number: int) -> None:
        path = self.path(number)
        if path is not None:
            path.unlink(missing_ok=True)
