"""Spectrum of the hidden-to-hidden weights: eigenvalues, spectral radius and singular values."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..serving.deadline import check
from ..cells import SPECS
from ..model import CharRNN
from .errors import GradientError
from .whatif import NO_WHATIF, WhatIf, apply_whatif


#: Cell → the block shown by default: the one the candidate / state update multiplies (the cell
#: spec's ``main_block``; its ``spectrum_blocks`` are all the hidden-to-hidden blocks).
MAIN_BLOCK = {name: s.main_block for name, s in SPECS.items()}


@dataclass
class BlockSpectrum:
    """Spectrum of one hidden-to-hidden block W (h × h, d2l's row convention H_{t−1} W).

    eigenvalues: (h,) complex128, sorted by decreasing modulus; spectral_radius: max |λ|.
    singular_values: (h,) float64, descending; spectral_norm: the largest (= ‖W‖₂).
    """

    layer: int
    block: str
    eigenvalues: Tensor
    spectral_radius: float
    singular_values: Tensor
    spectral_norm: float


@dataclass
class Spectrum:
    """Per layer, per block spectra. ``blocks[l][name]`` → BlockSpectrum; ``main`` is the block name
    shown by default (W_hh for RNN/GRU — the candidate's — and W_hc for the LSTM)."""

    blocks: list[dict[str, BlockSpectrum]]
    main: str
    cell: str
    whatif: WhatIf

    def radius(self, layer: int, block: str | None = None) -> float:
        return self.blocks[layer][block or self.main].spectral_radius


@torch.no_grad()
def whh_spectrum(model: CharRNN, whatif: WhatIf | None = None, blocks: tuple[str, ...] | None = None) -> Spectrum:
    """Eigenvalues, spectral radius and singular values of W_hh (every block) of every layer.

    Computed in float64 on the textbook matrices (what-ifs applied to a copy). ``blocks`` limits the
    names (e.g. ("W_hc",)); default all of the cell's hidden-to-hidden blocks.
    """
    whatif = whatif or NO_WHATIF
    work = apply_whatif(model, whatif)
    cell = work.spec
    names = blocks or cell.spectrum_blocks
    unknown = set(names) - set(cell.spectrum_blocks)
    if unknown:
        raise GradientError(f"A {cell.name} has no block(s) {sorted(unknown)}; it has {cell.spectrum_blocks}.")
    out = []
    for l in range(work.config.num_layers):
        p = work.textbook_params(l)
        per = {}
        for name in names:
            check()
            W = p[name].double()
            if not torch.isfinite(W).all():
                raise GradientError(f"{name} of layer {l} has non-finite entries.")
            ev = torch.linalg.eigvals(W)
            ev = ev[torch.argsort(ev.abs(), descending=True)]
            sv = torch.linalg.svdvals(W)
            per[name] = BlockSpectrum(l, name, ev, float(ev.abs().max()), sv, float(sv[0]))
        out.append(per)
    return Spectrum(out, cell.main_block if cell.main_block in names else names[0], cell.name, whatif)
