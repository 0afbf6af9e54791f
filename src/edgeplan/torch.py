"""edgeplan for a PyTorch training loop: plan any ``nn.Module`` and train it with the schedule.

    import edgeplan.torch as ept

    model = MyNet()                                   # any nn.Module: residuals, dicts, ...
    wrapped = ept.fit(model, example_batch, memory="512 MiB", device="jetson-nano")
    opt = torch.optim.AdamW(wrapped.parameters())
    for x, y in loader:                               # your loop, unchanged
        loss = criterion(wrapped(x), y)
        opt.zero_grad(); loss.backward(); opt.step()

* :func:`fit` captures the model (torch.fx), measures its chain on the example batch, plans
  the optimal checkpointing schedule for the memory and/or device, and wraps the model;
* :func:`checkpoint` wraps it with a schedule or plan you already have;
* :func:`capture` only finds the chain (stages, cut values, carried tensors);
* the wrapper (:class:`CheckpointedModule`) has the model's parameters and ``state_dict``;
  under ``torch.no_grad()`` or in ``eval()`` it is the plain model.

Requires the ``torch`` extra (``pip install 'edgeplan[torch]'``).
"""

from __future__ import annotations

from .torchrun.capture import CapturedChain, Cut, capture
from .torchrun.dropin import LOSSES, CheckpointedModule, captured_spec, checkpoint, fit

__all__ = ["LOSSES", "CapturedChain", "CheckpointedModule", "Cut", "capture", "captured_spec",
           "checkpoint", "fit"]
