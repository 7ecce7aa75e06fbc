"""The optimiser of local training: Adam, without loading PyTorch's compiler stack on CPU."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


class CpuAdam:
    """Adam (no weight decay) doing exactly the arithmetic of ``torch.optim.Adam`` on CPU.

    For CPU tensors torch takes Adam's single-tensor path; this is that path, operation for
    operation, so parameters come out bit-identical (a test holds the two side by side). What
    it leaves out is the ``Optimizer`` machinery around it: its compiler wrappers import
    TorchDynamo on first use, about 2 s of CPU in every hospital process, for a compiler this
    package never invokes. Parameters without a gradient are skipped, as torch does.
    """

    def __init__(self, params: Iterable[Tensor], lr: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr, (self.beta1, self.beta2), self.eps = float(lr), betas, float(eps)
        self._state: dict[int, tuple[list[int], Tensor, Tensor]] = {}

    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        beta1, beta2 = self.beta1, self.beta2
        with torch.no_grad():
            for i, param in enumerate(self.params):
                grad = param.grad
                if grad is None:
                    continue
                if i not in self._state:
                    self._state[i] = ([0], torch.zeros_like(param), torch.zeros_like(param))
                count, exp_avg, exp_avg_sq = self._state[i]
                count[0] += 1
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step = float(count[0])
                step_size = self.lr / (1 - beta1**step)
                denom = (exp_avg_sq.sqrt() / (1 - beta2**step) ** 0.5).add_(self.eps)
                param.addcdiv_(exp_avg, denom, value=-step_size)


def adam(params: Iterable[Tensor], lr: float, device: torch.device) -> CpuAdam | torch.optim.Adam:
    """A fresh Adam: :class:`CpuAdam` on CPU, ``torch.optim.Adam`` (multi-tensor) elsewhere."""
    if device.type == "cpu":
        return CpuAdam(params, lr)
    return torch.optim.Adam(params, lr=lr)
