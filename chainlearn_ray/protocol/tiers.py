"""Hardware tiers (the contract's ``CapacityClass``) and model types (``ModelType``)."""

from __future__ import annotations

from enum import IntEnum

from chainlearn_ray.errors import ConfigError

#: PoC throughput thresholds of the reference design (samples/s): below ``WEAK_BELOW`` Weak,
#: below ``MEDIUM_BELOW`` Medium, else Strong. The run config's defaults; they depend on hardware.
WEAK_BELOW = 100.0
MEDIUM_BELOW = 300.0


class Tier(IntEnum):
    """Capacity class of a hospital; values equal the contract's ``CapacityClass`` enum."""

    WEAK = 0
    MEDIUM = 1
    STRONG = 2

    @property
    def label(self) -> str:
        """Human name as used in configs and results (``"weak"``, ``"medium"``, ``"strong"``)."""
        return self.name.lower()

    @property
    def display(self) -> str:
        """Name as used in the PoC hash preimage and tables (``"Weak"``, ...)."""
        return self.name.capitalize()

    @property
    def model_type(self) -> ModelType:
        """The model type the contract assigns to this tier."""
        return ModelType(int(self))

    @classmethod
    def parse(cls, value: str | int | Tier) -> Tier:
        """Parse ``"weak"``/``"Weak"``/``0``/``Tier.WEAK`` into a :class:`Tier`."""
        if isinstance(value, Tier):
            return value
        if isinstance(value, int):
            try:
                return cls(value)
            except ValueError:
                raise ConfigError(f"tier {value} is not 0, 1 or 2 (weak, medium, strong)") from None
        key = str(value).strip().upper()
        if key not in cls.__members__:
            raise ConfigError(f"unknown tier {value!r}: use weak, medium or strong")
        return cls[key]


class ModelType(IntEnum):
    """Model family assigned to a tier; values equal the contract's ``ModelType`` enum."""

    LIGHT = 0
    MEDIUM = 1
    HEAVY = 2


TIERS: tuple[Tier, ...] = (Tier.WEAK, Tier.MEDIUM, Tier.STRONG)
