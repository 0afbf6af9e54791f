"""Importers: measure a chain model (docs/chain-model.md, model format 1) from a framework model.

``torch`` measures an ``nn.Sequential`` (or a list of modules) stage by stage with PyTorch;
``onnx`` costs an ONNX graph without running it; ``zoo`` holds the reference architectures the
shipped examples were produced from. torch and onnx are optional dependencies
(``pip install 'edgeplan[torch]'``, ``'edgeplan[onnx]'``); this package itself imports nothing
heavy. The model files are written by ``formats.model_file``.
"""

from __future__ import annotations

__all__ = ["onnx", "torch", "zoo"]
