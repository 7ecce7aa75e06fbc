"""A method's client side inside the process that hosts a hospital (plain Python, no Ray).

Two kinds of client: a :class:`SiteClient` is the hospital itself (Ours: its key, tier, model
and checkpoints), rebuilt from its :class:`SiteSetup` wherever it is missing; a
:class:`BaselineClient` is a fresh model in a slot of its own beside the hospital, trained on
the hospital's shard (or the pooled shards), built once from a :class:`BaselineSetup`. The
driver's executors keep them by client id and hand each request to :meth:`HostedClient.step`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.methods.base import FederatedMethod
from chainlearn_ray.methods.messages import (
    EVALUATE,
    Client,
    ClientResult,
    RoundConfig,
    TrainSettings,
)
from chainlearn_ray.protocol.tiers import Tier

if TYPE_CHECKING:  # torch loads in the processes that host clients, not in the coordinator
    import torch

    from chainlearn_ray.hospital.site import Hospital
    from chainlearn_ray.hospital.spec import TrainShard


class HostedClient(Protocol):
    """A method's client side as a hosting process keeps it."""

    #: torch threads it computes with (its hospital's; ``None``: as the process is set).
    threads: int | None

    @property
    def client_id(self) -> str:
        """Participant id."""
        ...

    def step(self, config: RoundConfig) -> ClientResult:
        """Answer one request of the method's server side."""
        ...

    def describe(self) -> dict[str, Any]:
        """Plain facts about the client (id, tier, shard size, ...)."""
        ...


# ---------------------------------------------------------------------- the hospital itself
@dataclass(frozen=True)
class SiteSetup:
    """Builds the client side of a method whose client is the hospital itself.

    ``method``: a client-side copy of the method (no server state, no chain port).
    """

    method: FederatedMethod

    def build(self, host: Hospital) -> SiteClient:
        """The client of ``host`` (cheap: nothing is built but a reference)."""
        return SiteClient(self.method, host)


class SiteClient:
    """The method's client verbs run on the hospital object."""

    def __init__(self, method: FederatedMethod, hospital: Hospital) -> None:
        self.method, self.hospital = method, hospital
        spec = hospital.spec
        self.threads = int(spec.threads)
        self.settings = TrainSettings(epochs=0, batch_size=spec.batch_size, lr=spec.lr,
                                      seed=spec.seed, device=spec.device, threads=spec.threads)

    @property
    def client_id(self) -> str:
        """The hospital id."""
        return self.hospital.spec.hospital_id

    def step(self, config: RoundConfig) -> ClientResult:
        """The method's client step on the hospital."""
        return self.method.client_step(self.hospital, config, self.settings)

    def describe(self) -> dict[str, Any]:
        """The hospital's identity."""
        ident = self.hospital.identity()
        return {**ident, "client_id": self.client_id, "n_samples": ident["train_samples"]}


# ---------------------------------------------------------------------- a fresh model beside it
@dataclass(frozen=True)
class BaselineSetup:
    """What a hosting process needs to build one baseline client (plain data, crosses Ray).

    Attributes
    ----------
    method:
        A client-side copy of the method (no server state).
    settings:
        Local training settings (epochs per round as the method schedules them).
    arch_by_tier:
        Tier label -> architecture; the method picks the client's (:meth:`arch_for`).
    keep:
        Positions of the hospital's shard the client trains on (FedMD: the shard without the
        public set); ``None``: the whole shard.
    size, rgb, normalize:
        The run's image transform (for the public or pooled images the process receives).
    """

    method: FederatedMethod
    settings: TrainSettings
    arch_by_tier: Mapping[str, str]
    keep: np.ndarray | None = None
    size: int = 28
    rgb: bool = False
    normalize: str = "dataset"

    def to_tensor(self, images: np.ndarray) -> torch.Tensor:
        """``images`` through the run's transform (a copy: object-store arrays are read-only)."""
        from chainlearn_ray.data.transforms import to_tensor

        return to_tensor(np.array(images), size=self.size, rgb=self.rgb,
                         normalize=self.normalize)  # type: ignore[arg-type]

    def build(self, host: Hospital, *, public: np.ndarray | None = None,
              pooled: TrainShard | None = None) -> BaselineClient:
        """A fresh client of ``host`` (or, with ``pooled``, of the pooled data): its shard,
        device, hardware throttle and test inputs; the hospital's own model is never used.

        ``public``: FedMD's public images (uint8); ``pooled``: Centralized's union of every
        shard (uint8 images and labels, hospital order).
        """
        import torch

        if pooled is not None:
            x = self.to_tensor(pooled.x)
            y = torch.tensor(np.asarray(pooled.y).reshape(-1), dtype=torch.long)
            tier, throttle = Tier.STRONG, None  # the pooled trainer is no simulated hospital
            dp = self.settings.dp
        else:
            # the whole shard, whatever study variant (attack behaviour) the hospital is in
            x = getattr(host, "_x_shard", host.x_train)
            y = getattr(host, "_y_shard", host.y_train).reshape(-1)
            if self.keep is not None:
                rows = torch.tensor(np.asarray(self.keep, dtype=np.int64))  # a read-only view
                x, y = x[rows], y[rows]
            tier = Tier(host.tier if host.tier is not None else host.spec.hardware_tier)
            throttle, dp = host.throttle, host.spec.dp
        members = self.method.participants([Client(host.spec.hospital_id, host.spec.index, tier,
                                                   x, y, throttle=throttle)])
        if len(members) != 1:
            raise ConfigError(f"{self.method.name}: one hosted client per setup, got "
                              f"{len(members)}")
        return BaselineClient.create(
            self.method, members[0], replace(self.settings, device=host.spec.device),
            self.arch_by_tier, host.x_test, n_classes=host.spec.n_classes,
            pretrained=host.spec.pretrained,
            public=None if public is None else self.to_tensor(public), threads=host.spec.threads,
            dp=dp)


class BaselineClient:
    """Client side of one baseline participant: its method copy, data view and own model."""

    def __init__(self, method: FederatedMethod, client: Client, settings: TrainSettings,
                 x_test: torch.Tensor, threads: int | None = 1) -> None:
        self.method, self.client, self.settings, self.x_test = method, client, settings, x_test
        #: torch threads of the host hospital, which this client computes with
        self.threads = threads

    @classmethod
    def create(cls, method: FederatedMethod, client: Client, settings: TrainSettings,
               arch_by_tier: Mapping[str, str], x_test: torch.Tensor, *, n_classes: int,
               pretrained: str | None = None, public: torch.Tensor | None = None,
               threads: int | None = 1, dp: Any = "settings") -> BaselineClient:
        """``client`` with a freshly built model of the method's architecture for its tier
        (seeded by the run seed and the client's index); FedMD's copy gets ``public``.

        ``dp``: the client's DP-SGD target (default ``settings.dp``; ``None``: no DP); its
        account is planned for the client's training set over ``settings.dp_epochs``.
        """
        from chainlearn_ray.learning.models import build_model

        client.model = build_model(method.arch_for(client.tier, arch_by_tier), n_classes,
                                   int(client.x.shape[1]), pretrained=pretrained,
                                   seed=settings.seed + client.index)
        if settings.private_models:
            from chainlearn_ray.learning.privacy import make_private_model

            client.model = make_private_model(client.model)[0]
        dp = settings.dp if dp == "settings" else dp
        if dp is not None:
            from chainlearn_ray.learning.privacy import PrivacyAccount

            client.privacy = PrivacyAccount(dp, client.n_samples, settings.batch_size,
                                            settings.dp_epochs)
        attach = getattr(method, "attach_public", None)
        if attach is not None:
            if public is None:
                raise ConfigError(f"{method.name} needs the public images")
            attach(public)
        return cls(method, client, settings, x_test, threads)

    @property
    def client_id(self) -> str:
        """Participant id (the hospital id, or ``"central"`` for the pooled trainer)."""
        return self.client.hospital_id

    def describe(self) -> dict[str, Any]:
        """Id, tier, shard size, parameter count and input channels of this client."""
        from chainlearn_ray.learning.models import count_parameters

        return {"client_id": self.client_id, "tier": self.client.tier.label,
                "n_samples": self.client.n_samples,
                "model_params": count_parameters(self.client.require_model()),
                "in_channels": int(self.client.x.shape[1])}

    def step(self, config: RoundConfig) -> ClientResult:
        """The method's client step for one phase, or its scoring of the predictor."""
        if config.phase == EVALUATE:
            return self.method.client_evaluate(self.client, config, self.settings, self.x_test)
        return self.method.client_step(self.client, config, self.settings)


def initial_state(method: FederatedMethod, fact: Mapping[str, Any],
                  arch_by_tier: Mapping[str, str], n_classes: int, *,
                  pretrained: str | None, seed: int,
                  private: bool = False) -> Mapping[str, torch.Tensor] | None:
    """The initial global state a method starts from (``None`` unless it needs one): a model of
    the first participant's architecture built with the run seed (made DP-compatible when
    ``private``). ``fact``: that participant's :meth:`BaselineClient.describe`."""
    if not method.needs_initial_state:
        return None
    from chainlearn_ray.learning.models import build_model

    model = build_model(method.arch_for(Tier.parse(fact["tier"]), arch_by_tier), n_classes,
                        int(fact["in_channels"]), pretrained=pretrained, seed=seed)
    if private:
        from chainlearn_ray.learning.privacy import make_private_model

        model = make_private_model(model)[0]
    return model.state_dict()
