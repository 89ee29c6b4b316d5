"""Random networks whose normalisation layers are not at their initial values (which would hide a wrong load)."""

from __future__ import annotations

import torch


def perturb_norms(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """``model`` with its batch norms' weights and running statistics moved off their initial values, in place."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._NormBase):
                if module.running_mean is not None:
                    module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
                    module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
                if module.weight is not None:
                    module.weight.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
                    module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
    return model
