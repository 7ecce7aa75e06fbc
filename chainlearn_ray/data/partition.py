"""Dirichlet label-skew partition of a training set over N hospitals, with a minimum shard size."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from chainlearn_ray.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


Strategy = Literal["resample", "top_up", "auto"]
STRATEGIES: tuple[str, ...] = ("resample", "top_up", "auto")


#: The protocol's named non-IID levels (SPEC.md §2): Dirichlet concentration α.
ALPHAS: dict[str, float] = {"mild": 1.0, "moderate": 0.5, "severe": 0.1}


def parse_alpha(x: str | float | int) -> float:
    """Dirichlet α from a name (``"mild"``, ``"moderate"``, ``"severe"``) or a positive number.

    Raises
    ------
    ConfigError
        Unknown name, non-positive or non-finite value.
    """
    if isinstance(x, str):
        key = x.strip().lower()
        if key in ALPHAS:
            return ALPHAS[key]
        try:
            value = float(key)
        except ValueError:
            names = ", ".join(f"{k} ({v})" for k, v in ALPHAS.items())
            raise ConfigError(f"unknown non-IID level {x!r}: use {names} or a positive number")\
                from None
    elif isinstance(x, bool):
        raise ConfigError(f"Dirichlet alpha must be a number or a level name, got {x!r}")
    else:
        value = float(x)
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"Dirichlet alpha must be a positive finite number, got {x!r}")
    return value


def alpha_name(alpha: float) -> str:
    """The level name of ``alpha`` if it is one, else its number as text."""
    for name, value in ALPHAS.items():
        if math.isclose(alpha, value):
            return name
    return f"{alpha:g}"


@dataclass(frozen=True, eq=False)
class Partition:
    """Shards of a training set.

    Attributes
    ----------
    indices:
        One sorted int64 array of training-set indices per hospital.
    class_counts:
        ``(N, C)`` int64 array: samples of each class in each shard.
    alpha:
        Dirichlet concentration used.
    seed:
        Seed of the generator.
    attempts:
        Dirichlet draws made (1 when the first draw met the minimum shard size).
    topped_up:
        Samples moved between shards to reach the minimum size (``strategy="top_up"`` only).
    """

    indices: tuple[np.ndarray, ...]
    class_counts: np.ndarray
    alpha: float
    seed: int
    attempts: int
    topped_up: int = 0

    @property
    def n_hospitals(self) -> int:
        """Number of shards."""
        return len(self.indices)

    @property
    def sizes(self) -> np.ndarray:
        """Samples per shard (int64, length N)."""
        return self.class_counts.sum(axis=1)


def _draw(
    rng: np.random.Generator, by_class: list[np.ndarray], n_hospitals: int, alpha: float
) -> tuple[list[list[np.ndarray]], np.ndarray]:
    """One Dirichlet draw: per class, shuffled indices cut by proportions ``p ~ Dir(α·1)``.

    Returns the per-hospital, per-class index lists and the ``(C, N)`` proportions.
    """
    n_classes = len(by_class)
    pieces: list[list[np.ndarray]] = [[] for _ in range(n_hospitals)]
    props = np.zeros((n_classes, n_hospitals))
    for c, idx in enumerate(by_class):
        shuffled = rng.permutation(idx)
        p = rng.dirichlet(np.full(n_hospitals, alpha))
        if not np.all(np.isfinite(p)):
            p = np.full(n_hospitals, 1.0 / n_hospitals)
        props[c] = p
        cuts = (np.cumsum(p) * len(shuffled)).astype(np.int64)[:-1]
        for h, part in enumerate(np.split(shuffled, cuts)):
            pieces[h].append(part)
    return pieces, props


def _top_up(pieces: list[list[np.ndarray]], props: np.ndarray, min_size: int) -> int:
    """Move samples from the largest shards into those below ``min_size``, in place.

    A short shard takes samples of its own favoured classes first (descending Dirichlet share),
    each from the donor holding most of that class, and no donor drops below ``min_size``; so
    the label skew of every shard is kept as far as the minimum allows. Returns samples moved.
    """
    n_hospitals = len(pieces)
    counts = np.array([[len(a) for a in row] for row in pieces], dtype=np.int64)
    moved = 0
    for h in range(n_hospitals):
        for c in np.argsort(-props[:, h], kind="stable"):
            deficit = min_size - int(counts[h].sum())
            while deficit > 0:
                surplus = counts.sum(axis=1) - min_size
                candidates = (counts[:, c] > 0) & (surplus > 0)
                candidates[h] = False
                if not candidates.any():
                    break
                donor = int(np.argmax(np.where(candidates, counts[:, c], -1)))
                k = int(min(deficit, surplus[donor], counts[donor, c]))
                take = pieces[donor][c][-k:]
                pieces[donor][c] = pieces[donor][c][:-k]
                pieces[h][c] = np.concatenate([pieces[h][c], take])
                counts[donor, c] -= k
                counts[h, c] += k
                deficit -= k
                moved += k
            if deficit <= 0:
                break
    return moved


def _result(pieces: list[list[np.ndarray]], n_classes: int, alpha: float, seed: int,
            attempts: int, moved: int) -> Partition:
    indices = tuple(np.sort(np.concatenate(row)).astype(np.int64) for row in pieces)
    counts = np.array([[len(p) for p in row] for row in pieces], dtype=np.int64)
    logger.debug("partition alpha=%s seed=%d: %d draw(s), %d moved, shard sizes %s", alpha, seed,
                 attempts, moved, counts.sum(axis=1).tolist())
    return Partition(indices, counts.reshape(len(pieces), n_classes), alpha, seed, attempts, moved)


def dirichlet_partition(
    labels: np.ndarray,
    n_hospitals: int,
    alpha: str | float,
    *,
    seed: int,
    min_size: int = 10,
    max_tries: int = 1000,
    n_classes: int | None = None,
    strategy: Strategy = "resample",
) -> Partition:
    """Split a training set over hospitals with Dirichlet label skew.

    For every class ``c``, ``p_c ~ Dirichlet(α·1_N)`` and the class's shuffled samples are cut in
    proportions ``p_c`` (``numpy.random.default_rng(seed)``). Small shards are handled by
    ``strategy``: ``"resample"`` redraws everything until every shard holds at least
    ``min_size`` samples; ``"top_up"`` keeps the first draw and moves samples from the largest
    shards into the short ones (see :func:`_top_up`), for many hospitals at severe skew, where a
    pure redraw practically never meets the minimum; ``"auto"`` redraws up to ``max_tries``
    times and, failing that, tops up the draw whose smallest shard was largest.

    Parameters
    ----------
    labels:
        ``(n,)`` integer labels of the training set.
    n_hospitals:
        Number of shards, ``>= 1``.
    alpha:
        Concentration α or a level name (:data:`ALPHAS`).
    seed:
        Seed of the generator; same arguments → same shards.
    min_size:
        Minimum samples per shard (``0`` allows empty shards).
    max_tries:
        Draws allowed with ``strategy="resample"`` or ``"auto"``.
    n_classes:
        Columns of ``class_counts``; default ``max(labels) + 1``.
    strategy:
        ``"resample"``, ``"top_up"`` or ``"auto"``.

    Returns
    -------
    Partition

    Raises
    ------
    DataError
        ``n_hospitals · min_size`` exceeds the data, or (``"resample"``) no draw met
        ``min_size`` in ``max_tries``.
    """
    y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"labels must be a 1-D integer array, got {y.dtype} {y.shape}")
    if n_hospitals < 1:
        raise ConfigError(f"need at least one hospital, got {n_hospitals}")
    if min_size < 0 or max_tries < 1:
        raise ConfigError(f"need min_size >= 0 and max_tries >= 1, got {min_size}, {max_tries}")
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown partition strategy {strategy!r}: use resample, top_up or auto")
    a = parse_alpha(alpha)
    if len(y) == 0:
        raise DataError("cannot partition an empty training set")
    if y.min() < 0:
        raise DataError("labels must be non-negative")
    n_cls = int(n_classes) if n_classes is not None else int(y.max()) + 1
    if y.max() >= n_cls:
        raise DataError(f"labels reach {int(y.max())} but n_classes is {n_cls}")
    if n_hospitals * min_size > len(y):
        raise DataError(
            f"{n_hospitals} hospitals × min_size {min_size} = {n_hospitals * min_size} exceeds "
            f"the {len(y)} training samples: lower min_size or the number of hospitals"
        )
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(y == c).astype(np.int64) for c in range(n_cls)]
    tries = 1 if strategy == "top_up" else max_tries
    best: tuple[int, list[list[np.ndarray]], np.ndarray] | None = None
    for attempt in range(1, tries + 1):
        pieces, props = _draw(rng, by_class, n_hospitals, a)
        smallest = min(sum(len(p) for p in row) for row in pieces)
        if smallest >= min_size:
            return _result(pieces, n_cls, a, seed, attempt, 0)
        if best is None or smallest > best[0]:
            best = (smallest, pieces, props)
    assert best is not None
    if strategy != "resample":
        _, pieces, props = best
        moved = _top_up(pieces, props, min_size)
        return _result(pieces, n_cls, a, seed, tries, moved)
    raise DataError(
        f"no Dirichlet(alpha={a}) draw gave all {n_hospitals} shards at least {min_size} samples "
        f"in {max_tries} tries (best smallest shard: {best[0]}); lower min_size, raise alpha, "
        "use fewer hospitals, or use strategy 'auto' or 'top_up'"
    )
