"""A hospital's checkpoint files: the latest one, and the ones tagged by the round they end.

``<id>.pt`` is what a restarted hospital restores from. Every checkpoint is also kept as
``<id>@<round>.pt`` (a hard link: no second write), the round being the last one the hospital
trained (0: registered, not trained yet); the three latest are kept. While round ``k + 1`` is
under way (the last one written is ``k``) a process may finish it and start round ``k + 2``
ahead, so a run resumed after round ``k`` rewinds each hospital to its latest checkpoint of
round ``k`` or before (:func:`rewind_checkpoints`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from chainlearn_ray.errors import ConfigError

#: Tagged checkpoints kept per hospital: the last round written, the one under way and the
#: one a process may have started ahead.
KEEP_TAGGED = 3


def latest_path(folder: str | Path, hospital_id: str) -> Path:
    """The checkpoint a restarted hospital restores from."""
    return Path(folder) / f"{hospital_id}.pt"


def tagged_rounds(folder: str | Path, hospital_id: str) -> list[int]:
    """Rounds of ``hospital_id``'s tagged checkpoints in ``folder``, ascending."""
    rounds = []
    for path in Path(folder).glob(f"{hospital_id}@*.pt"):
        tag = path.stem.rpartition("@")[2]
        if tag.isdigit():
            rounds.append(int(tag))
    return sorted(rounds)


def publish(tmp: Path, folder: str | Path, hospital_id: str, round_: int | None) -> None:
    """Make the fully written ``tmp`` the hospital's latest checkpoint, tagged with ``round_``
    (``None``: untagged), and drop tagged ones beyond :data:`KEEP_TAGGED`."""
    if round_ is not None:
        tagged = Path(folder) / f"{hospital_id}@{int(round_)}.pt"
        with contextlib.suppress(FileNotFoundError):
            tagged.unlink()
        os.link(tmp, tagged)
    os.replace(tmp, latest_path(folder, hospital_id))
    if round_ is not None:
        for old in tagged_rounds(folder, hospital_id)[:-KEEP_TAGGED]:
            with contextlib.suppress(FileNotFoundError):
                (Path(folder) / f"{hospital_id}@{old}.pt").unlink()


def rewind_checkpoints(folder: str | Path, hospital_ids: Iterable[str], round_: int) -> None:
    """Make every hospital's latest checkpoint its last one of round ``round_`` or before, and
    drop later ones (a run resumed after round ``round_``).

    Raises
    ------
    ConfigError
        A hospital has no such checkpoint (the folder is not the one the run wrote).
    """
    for h in hospital_ids:
        rounds = tagged_rounds(folder, h)
        usable = [r for r in rounds if r <= round_]
        if not usable:
            raise ConfigError(
                f"cannot resume: {Path(folder)} holds no checkpoint of {h} at round {round_} or "
                "before; start the run again with --overwrite")
        for later in (r for r in rounds if r > round_):
            (Path(folder) / f"{h}@{later}.pt").unlink()
        latest = latest_path(folder, h)
        tmp = latest.with_suffix(".pt.rewind")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.link(Path(folder) / f"{h}@{usable[-1]}.pt", tmp)
        os.replace(tmp, latest)
