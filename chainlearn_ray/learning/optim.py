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

    Each operation is applied to all parameters at once (``torch._foreach_*``, which on CPU runs
    the same per-tensor kernels): a step is 7 calls into torch instead of 7 per parameter, so a
    thread training one hospital holds Python's interpreter lock less while another thread of
    the process trains the next.
    """

    def __init__(self, params: Iterable[Tensor], lr: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr, (self.beta1, self.beta2), self.eps = float(lr), betas, float(eps)
        self._state: dict[int, tuple[list[int], Tensor, Tensor]] = {}

    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        beta1, beta2 = self.beta1, self.beta2
        # parameters that have taken the same number of steps share the bias corrections
        groups: dict[int, tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]] = {}
        with torch.no_grad():
            for i, param in enumerate(self.params):
                grad = param.grad
                if grad is None:
                    continue
                if i not in self._state:
                    self._state[i] = ([0], torch.zeros_like(param), torch.zeros_like(param))
                count, exp_avg, exp_avg_sq = self._state[i]
                count[0] += 1
                group = groups.setdefault(count[0], ([], [], [], []))
                for members, item in zip(group, (param, grad, exp_avg, exp_avg_sq), strict=True):
                    members.append(item)
            for count_, (params, grads, exp_avgs, exp_avg_sqs) in groups.items():
                torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
                torch._foreach_mul_(exp_avg_sqs, beta2)
                torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
                step = float(count_)
                step_size = self.lr / (1 - beta1**step)
                denoms = torch._foreach_sqrt(exp_avg_sqs)
                torch._foreach_div_(denoms, (1 - beta2**step) ** 0.5)
                torch._foreach_add_(denoms, self.eps)
                torch._foreach_addcdiv_(params, exp_avgs, denoms, value=-step_size)


def adam(params: Iterable[Tensor], lr: float, device: torch.device) -> CpuAdam | torch.optim.Adam:
    """A fresh Adam: :class:`CpuAdam` on CPU, ``torch.optim.Adam`` (multi-tensor) elsewhere."""
    if device.type == "cpu":
        return CpuAdam(params, lr)
    return torch.optim.Adam(params, lr=lr)
