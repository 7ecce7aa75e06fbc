"""What crosses between a method's server side and its clients: settings, requests, results.

Everything here is plain data (ints, arrays, state dicts, bytes), so the same objects travel
in-process or into Ray actors. :class:`Client` is the client-side view of one participant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chainlearn_ray.errors import ConfigError, HospitalFailure
from chainlearn_ray.hospital.spec import hospital_seed
from chainlearn_ray.protocol.tiers import Tier

if TYPE_CHECKING:  # torch loads where models are trained, not in the coordinator or driver
    from torch import Tensor, nn

    from chainlearn_ray.learning.hardware import Throttle
    from chainlearn_ray.learning.privacy import DPSettings, PrivacyAccount
    from chainlearn_ray.learning.training import TrainStats

#: Phase of the requests that score a method's predictor on the test split.
EVALUATE = "evaluate"


@dataclass(frozen=True)
class TrainSettings:
    """The shared local-training budget and optimiser of every method.

    Attributes
    ----------
    epochs:
        Local epochs per round (the reference: 3 per round, 5 rounds).
    batch_size, lr:
        Mini-batch size and Adam learning rate (reference: 32, 1e-3; fresh Adam every call).
    seed:
        Run seed; each client's per-round seed is derived from it.
    device:
        torch device of the clients' training.
    threads:
        torch intra-op threads of an in-process run (``None``: leave the process setting);
        one thread per simulated hospital, as in the Ray runtime.
    dp, dp_epochs:
        DP-SGD target of clients without one of their own (the pooled trainer, in-process
        runs; hosted clients take their hospital's) and the epochs of the whole run.
    private_models:
        Build every model DP-compatible (Opacus' fix), so averaged models share one form.
    """

    epochs: int
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    device: str = "cpu"
    threads: int | None = 1
    dp: DPSettings | None = None
    dp_epochs: int = 0
    private_models: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or not self.lr > 0:
            raise ConfigError(f"need epochs >= 0, batch_size >= 1 and lr > 0; got "
                              f"{self.epochs}, {self.batch_size}, {self.lr}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1 or None, got {self.threads}")

    def client_seed(self, index: int, round_: int, salt: int = 0) -> int:
        """Seed of client ``index`` in ``round_`` (``salt`` separates steps of one round)."""
        return (hospital_seed(self.seed, index, round_) + salt) % 2**32


@dataclass
class Client:
    """One participant as the client-side step sees it: identity, training tensors, model.

    Attributes
    ----------
    hospital_id, index, tier:
        Identity; ``index`` derives the seeds, ``tier`` selects the architecture (via
        :meth:`~chainlearn_ray.methods.base.FederatedMethod.arch_for`) and labels its rows.
    x, y:
        Float ``N×C×H×W`` inputs and integer labels of its own training shard.
    model:
        Its network (persistent across rounds); ``None`` until built.
    throttle:
        Its hardware throttle, if any.
    privacy:
        Its DP-SGD account (:class:`~chainlearn_ray.learning.privacy.PrivacyAccount`), kept
        across rounds; ``None``: no DP.
    """

    hospital_id: str
    index: int
    tier: Tier
    x: Tensor
    y: Tensor
    model: nn.Module | None = None
    throttle: Throttle | None = None
    privacy: PrivacyAccount | None = None

    @classmethod
    def from_hospital(cls, hospital: Any, model: nn.Module | None = None) -> Client:
        """The client view of a :class:`chainlearn_ray.hospital.site.Hospital` (its tensors,
        tier, throttle and, unless ``model`` is given, its own model)."""
        tier = hospital.tier if hospital.tier is not None else hospital.spec.hardware_tier
        return cls(
            hospital_id=hospital.spec.hospital_id, index=hospital.spec.index, tier=Tier(tier),
            x=hospital.x_train, y=hospital.y_train,
            model=model if model is not None else hospital.model, throttle=hospital.throttle,
        )

    @property
    def n_samples(self) -> int:
        """Training samples (``n_k``)."""
        return int(self.x.shape[0])

    def require_model(self) -> nn.Module:
        """The model, or :class:`HospitalFailure` when it was never built."""
        if self.model is None:
            raise HospitalFailure(f"{self.hospital_id} has no model: build it before training")
        return self.model


@dataclass(frozen=True)
class RoundConfig:
    """What the server sends a client in one phase, and its size on the wire.

    Attributes
    ----------
    round, phase:
        Where in the run the request belongs (round 0: the set-up before the first round).
    payload:
        The method's data for the client (a global state, a consensus, a transaction, ...).
    bytes_down:
        Its size on the wire, as booked for the traffic rows.
    setup:
        How the process hosting the client builds the method's client side when it holds none
        yet (a :class:`~chainlearn_ray.methods.hosting.SiteSetup` for methods whose client is
        the hospital itself, which a restarted process must rebuild); ``None``: the client was
        opened beforehand.
    timed:
        The step is a timed measurement: it needs cores no other work shares, and the server
        defers its own work until every measurement of the phase is done.
    aside:
        A short step about work already done (signing it): the hosting process may run it beside
        its other work.
    """

    round: int
    phase: str
    payload: Any = None
    bytes_down: int = 0
    setup: Any = None
    timed: bool = False
    aside: bool = False


@dataclass(frozen=True)
class ClientResult:
    """What one client returns from one phase, and its size on the wire."""

    hospital_id: str
    tier: str
    round: int
    phase: str
    n_samples: int
    payload: Any = None
    bytes_up: int = 0
    stats: TrainStats | None = None
