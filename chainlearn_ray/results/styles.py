"""How each method is drawn: a colour-blind-safe palette, bar hatches and line markers."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

#: Okabe & Ito's colour-blind-safe palette.
PALETTE: Final = MappingProxyType({
    "black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7",
    "grey": "#999999",
})
#: Bar hatches and line markers that, with the palette, tell 20+ methods apart in print.
HATCHES: Final = ("", "//", "\\\\", "xx", "..", "oo", "--", "++")
MARKERS: Final = ("o", "s", "^", "D", "v", "P", "X", "*")


@dataclass(frozen=True)
class MethodStyle:
    """How a method is drawn in every figure: a palette colour, a hatch for bars and a marker
    for lines, so no two methods share a look (also in greyscale)."""

    color: str
    hatch: str
    marker: str


def _style(color: str, hatch: int, marker: int) -> MethodStyle:
    return MethodStyle(PALETTE[color], HATCHES[hatch], MARKERS[marker])


#: The fixed style of each known method: a method looks the same in every figure.
METHOD_STYLES: Final = MappingProxyType({
    "majority": _style("black", 0, 0),
    "centralized": _style("grey", 0, 1),
    "local_weak": _style("green", 4, 2),
    "local_medium": _style("green", 1, 3),
    "local_strong": _style("green", 3, 4),
    "local_best": _style("green", 0, 5),
    "fedavg": _style("blue", 0, 1),
    "fedprox": _style("sky", 1, 2),
    "fedmd": _style("purple", 0, 3),
    "equal_weight": _style("orange", 0, 4),
    "ours": _style("vermillion", 0, 0),
    "ours_dropout": _style("vermillion", 1, 6),
    "ours_balacc": _style("yellow", 0, 7),
    "ablation:no_capmul": _style("grey", 1, 2),
    "ablation:no_conf": _style("grey", 2, 3),
    "ablation:no_ece": _style("grey", 3, 4),
    "ablation:no_bonus": _style("grey", 4, 5),
    "ablation:no_poc": _style("grey", 5, 6),
    "attack:lazy": _style("purple", 1, 2),
    "attack:inflated": _style("purple", 2, 4),
    "attack:spoof_no_poc": _style("blue", 3, 5),
    "attack:spoof_poc": _style("blue", 4, 6),
})
TIER_COLORS: Final = {"weak": PALETTE["green"], "medium": PALETTE["blue"],
                      "strong": PALETTE["vermillion"]}


def method_style(method: str) -> MethodStyle:
    """Style of ``method``: fixed for known methods, a stable pick for others."""
    if method in METHOD_STYLES:
        return METHOD_STYLES[method]
    code = zlib.crc32(method.encode())
    colors = list(PALETTE.values())
    return MethodStyle(colors[code % len(colors)], HATCHES[(code // 16) % len(HATCHES)],
                       MARKERS[(code // 256) % len(MARKERS)])


def method_color(method: str) -> str:
    """Colour of ``method`` (see :func:`method_style`)."""
    return method_style(method).color
