"""Importers: measure a chain model (docs/chain-model, model format 1) from a framework model.

``torch_import`` measures an ``nn.Sequential`` (or a list of modules) stage by stage with
PyTorch; ``zoo`` holds the reference architectures the shipped examples were produced from.
Both import PyTorch, which is an optional dependency (``pip install 'edgeplan[torch]'``); this
package itself imports nothing heavy.
"""

from __future__ import annotations

__all__ = ["torch_import", "zoo"]
