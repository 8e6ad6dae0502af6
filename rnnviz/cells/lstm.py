"""The LSTM, exactly the book's equations (d2l §10.1):

    I_t = σ(X_t W_xi + H_{t-1} W_hi + b_i)      F_t = σ(X_t W_xf + H_{t-1} W_hf + b_f)
    O_t = σ(X_t W_xo + H_{t-1} W_ho + b_o)      C̃_t = tanh(X_t W_xc + H_{t-1} W_hc + b_c)
    C_t = F_t ⊙ C_{t-1} + I_t ⊙ C̃_t             H_t = O_t ⊙ tanh(C_t)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .. import kernels
from .base import CellSpec, hidden_part, input_rows, keep, linear_recurrence
from .jacobian import LayerJacobian, arr, diag_sum

GATES = ("i", "f", "g", "o")                  # row order of the blocks in PyTorch's weights
NAMES = {"i": ("W_xi", "W_hi", "b_i"), "f": ("W_xf", "W_hf", "b_f"),
         "o": ("W_xo", "W_ho", "b_o"), "g": ("W_xc", "W_hc", "b_c")}


def step(layer, x_part, h_prev, c_prev, edit=keep):
    """One LSTM step on (h,) (module docstring)."""
    pi, pf, pg, po = (x_part + hidden_part(layer, h_prev)).chunk(4, dim=-1)
    i = edit("gates.i", torch.sigmoid(pi))
    f = edit("gates.f", torch.sigmoid(pf))
    o = edit("gates.o", torch.sigmoid(po))
    cand = edit("candidate", torch.tanh(pg))
    c = edit("c", f * c_prev + i * cand)
    h = edit("h", o * torch.tanh(c))
    return {"gates.i": i, "gates.f": f, "gates.o": o, "candidate": cand, "c": c, "h": h}


def recover(layer: nn.LSTM, inp: Tensor, ids: Tensor | None, out: Tensor, h0: Tensor,
            c0: Tensor | None) -> dict[str, Tensor]:
    """C_t, I_t, F_t, O_t, C̃_t for all steps of a fused LSTM run: inputs (T, d) (``ids`` (T,)
    when they are one-hot, to pick rows instead of multiplying), its output H (T, h),
    H_{-1} = h0 and C_{-1} = c0 (h,)."""
    H = out.shape[1]
    w_ih, w_hh = layer.weight_ih_l0, layer.weight_hh_l0
    # Every gate pre-activation at once: X_t W_x· + H_{t-1} W_h· + b (T, 4h). Layer 0's
    # one-hot X_t picks a row of W_ih^T, so biases fold into that small (|V|, 4h) table.
    pre = input_rows(w_ih, layer.bias_ih_l0 + layer.bias_hh_l0, ids, inp)
    pre[1:].addmm_(out[:-1], w_hh.T)                     # += H_{t-1} W_hh, in place
    if h0.any():                                         # H_{-1} W_hh (zero from a fresh state)
        pre[0].addmv_(w_hh, h0)
    # The activations in place, so the gates are (T, h) views of one buffer (torch order i, f, g, o),
    # and as one contiguous sigmoid: tanh(x) = 2σ(2x) − 1 for the candidate block (within 1.2e-7 of
    # torch.tanh in float32; ~1.4 ms less than three strided calls at T = 1000, h = 256).
    cand = pre[:, 2 * H:3 * H]
    cand.mul_(2)
    pre.sigmoid_()
    cand.mul_(2).sub_(1)
    gate_i, gate_f, cand, gate_o = pre.split(H, dim=1)
    return {"c": cell_scan(gate_i, gate_f, cand, c0), "gates.i": gate_i, "gates.f": gate_f,
            "gates.o": gate_o, "candidate": cand}


def cell_scan(i: Tensor, f: Tensor, g: Tensor, c0: Tensor) -> Tensor:
    """C_t = F_t ⊙ C_{t-1} + I_t ⊙ C̃_t for all t (an elementwise linear recurrence): the compiled
    pass of rnnviz.kernels on CPU float32/float64 tensors without autograd, else (autograd, other
    devices or dtypes) the two-level scan :func:`linear_recurrence`."""
    if (i.device.type == "cpu" and i.dtype in (torch.float32, torch.float64)
            and c0.dtype == i.dtype and not i.requires_grad):
        c = torch.empty(i.shape, dtype=i.dtype)
        kernels.cell_scan(i.numpy(), f.numpy(), g.numpy(), c0.contiguous().numpy(), c.numpy())
        return c
    return linear_recurrence(f, i * g, c0)


def step_terms(p: dict[str, Tensor], x: Tensor, h_prev: Tensor, c_prev: Tensor | None) -> dict[str, Tensor]:
    """The step-through view's terms from textbook parameters (see rnnviz.views.step_terms)."""
    i = torch.sigmoid(x @ p["W_xi"] + h_prev @ p["W_hi"] + p["b_i"])
    f = torch.sigmoid(x @ p["W_xf"] + h_prev @ p["W_hf"] + p["b_f"])
    o = torch.sigmoid(x @ p["W_xo"] + h_prev @ p["W_ho"] + p["b_o"])
    g = torch.tanh(x @ p["W_xc"] + h_prev @ p["W_hc"] + p["b_c"])
    c = f * c_prev + i * g
    h = o * torch.tanh(c)
    return {"I_t": i, "F_t": f, "O_t": o, "C̃_t": g, "C_{t-1}": c_prev, "C_t": c, "H_t": h}


@dataclass
class LSTMJacobian(LayerJacobian):
    """K (T, h) = O_t ⊙ (1 − tanh² C_t) (dC_t += dH_t ⊙ K), P (T, 4, h): pre-activation adjoints are
    [dC·P_i, dC·P_f, dC·P_g, dH·P_o]; f (T, h) the forget gate (dC_{t−1} = dC_t ⊙ F_t)."""

    K: Tensor | None = None
    P: Tensor | None = None
    f: Tensor | None = None
    has_kernel = True
    has_cell_state = True

    @classmethod
    def build(cls, cell, mod, terms, x):
        H, h_prev, w_hh, w_ih = cls._common(mod, terms, x)
        T, h = H.shape
        c, i, f, o, g = (terms[k] for k in ("c", "gates.i", "gates.f", "gates.o", "candidate"))
        tc = torch.tanh(c)
        K = torch.addcmul(o, o * tc, tc, value=-1)                  # O_t ⊙ (1 − tanh² C_t)
        P = torch.empty(T, 4, h, dtype=H.dtype)                      # written slot by slot
        torch.mul(g, torch.addcmul(i, i, i, value=-1), out=P[:, 0])  # C̃ ⊙ I(1 − I)
        P[0, 1].zero_()                                              # C_{−1} = 0
        torch.mul(c[:-1], torch.addcmul(f, f, f, value=-1)[1:], out=P[1:, 1])   # C_{t−1} ⊙ F(1 − F)
        torch.addcmul(i, i, g * g, value=-1, out=P[:, 2])            # I ⊙ (1 − C̃²)
        torch.mul(tc, torch.addcmul(o, o, o, value=-1), out=P[:, 3])  # tanh C ⊙ O(1 − O)
        return cls(cell, 4, H, h_prev, x, w_hh, w_ih, K=K, P=P, f=f)

    def backward_steps(self, E, last, cut):
        T, h = E.shape
        dH = E.clone()
        da = torch.zeros(T, 4 * h, dtype=E.dtype)
        dC = torch.zeros_like(dH)
        kernels.lstm_backward(self.w_hh.T.contiguous().numpy(), dH.numpy(), arr(self.K), arr(self.P),
                              arr(self.f), dC.numpy(), da.numpy(), last, cut, torch.get_num_threads())
        return {"dH": dH, "da": da, "dC": dC}

    def _matrices(self, W: Tensor, t: int, scale: float = 1.0) -> tuple[Tensor, Tensor]:
        """(B, Cm) with d(input) = dC_t^tot @ B + dH_t @ Cm for W = w_hh (h × h) or w_ih (h × d)."""
        h = self.h.shape[1]
        W = W.view(4, h, W.shape[1])
        P = self.P[t] * scale
        return diag_sum(P[:3], W[:3]), W[3] * P[3][:, None]

    def chain_step(self, t, inv, M, Mc, scaled, dst, dst_c):
        B, Cm = self._matrices(self.w_hh, t, inv)
        torch.addcmul(Mc, M, self.K[t][None, :], out=scaled)       # total adjoint of C_t (unscaled)
        torch.mm(M, Cm, out=dst)
        dst.addmm_(scaled, B)
        return dst, torch.mul(scaled, (self.f[t] * inv)[None, :], out=dst_c)

    def map_step(self, k, A, Ac, below, back):
        dct = Ac + A * self.K[k]
        ext = nxt = nxt_c = None
        if below:
            Bx, Cx = self._matrices(self.w_ih, k)
            ext = torch.addmm(A @ Cx, dct, Bx)
        if back:
            B, Cm = self._matrices(self.w_hh, k)
            nxt, nxt_c = torch.addmm(A @ Cm, dct, B), dct * self.f[k]
        return ext, nxt, nxt_c


SPEC = CellSpec(
    name="lstm", title="LSTM", gates=GATES, names=NAMES,
    terms=("h", "c", "gates.i", "gates.f", "gates.o", "candidate"), step=step, recover=recover,
    make_layer=lambda d, h: nn.LSTM(d, h), jacobian=LSTMJacobian,
    step_view=("I_t", "F_t", "O_t", "C̃_t", "C_{t-1}", "C_t", "H_t"), step_terms=step_terms,
    gate_view=("i", "f", "o"), torch_class=nn.LSTM, map_cost=2,
    spectrum_blocks=("W_hi", "W_hf", "W_ho", "W_hc"), main_block="W_hc",
    step_jacobian="the state is (H_t, C_t). Along the memory cell ∂C_t/∂C_{t−1} = diag(F_t): no weight "
                  "matrix, no squashing, so a forget gate near 1 carries the gradient far back. Through the "
                  "gates, ∂C_t/∂H_{t−1} = diag(C_{t−1} ⊙ F_t ⊙ (1−F_t)) W_hfᵀ + diag(C̃_t ⊙ I_t ⊙ (1−I_t)) W_hiᵀ "
                  "+ diag(I_t ⊙ (1−C̃_t²)) W_hcᵀ, ∂H_t/∂H_{t−1} = diag(tanh(C_t) ⊙ O_t ⊙ (1−O_t)) W_hoᵀ "
                  "+ diag(O_t ⊙ (1−tanh²(C_t))) ∂C_t/∂H_{t−1} and ∂H_t/∂C_{t−1} = "
                  "diag(O_t ⊙ (1−tanh²(C_t)) ⊙ F_t).",
    latex=(r"I_t = \sigma(X_t W_{xi} + H_{t-1} W_{hi} + b_i) \quad F_t = \sigma(X_t W_{xf} + H_{t-1} W_{hf} + b_f) \quad O_t = \sigma(X_t W_{xo} + H_{t-1} W_{ho} + b_o)",
           r"\tilde C_t = \tanh(X_t W_{xc} + H_{t-1} W_{hc} + b_c) \qquad C_t = F_t \odot C_{t-1} + I_t \odot \tilde C_t \qquad H_t = O_t \odot \tanh(C_t)"), order=3)
#: The cells of this module (rnnviz.cells collects every module's SPECS).
SPECS = (SPEC,)
