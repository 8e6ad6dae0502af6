"""The book's own GRU (d2l §10.2), which PyTorch has no fused module for:

    R_t = σ(X_t W_xr + H_{t-1} W_hr + b_r)      Z_t = σ(X_t W_xz + H_{t-1} W_hz + b_z)
    H̃_t = tanh(X_t W_xh + (R_t ⊙ H_{t-1}) W_hh + b_h)
    H_t = Z_t ⊙ H_{t-1} + (1 − Z_t) ⊙ H̃_t

R_t gates H_{t-1} *before* the product with W_hh, and each gate has one bias (no b_hh). The layer
(:class:`D2LGRU`) keeps PyTorch's layout (blocks r, z, n in ``weight_ih_l0`` (3h, d),
``weight_hh_l0`` (3h, h), ``bias_ih_l0`` (3h,)); its forward pass is one compiled loop
(:func:`rnnviz.kernels.gru_d2l_forward`) when no gradient is wanted, else a torch loop of the same
equations (training); its backward pass is :func:`rnnviz.kernels.gru_d2l_backward`; :func:`step` (one step, with intervention hooks) serves the stepped trace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .. import kernels
from .base import CellSpec, input_rows, keep
from .gru import GATES, NAMES
from .jacobian import LayerJacobian


def step(layer, x_part, h_prev, c_prev, edit=keep):
    """One step of the book's GRU on (h,) or (B, h); x_part = X_t W_x· + b· (…, 3h)."""
    H = h_prev.shape[-1]
    w = layer.weight_hh_l0
    xr, xz, xn = x_part.split(H, dim=-1)
    hr, hz = (h_prev @ w[:2 * H].T).split(H, dim=-1)
    r = edit("gates.r", torch.sigmoid(xr + hr))
    z = edit("gates.z", torch.sigmoid(xz + hz))
    cand = edit("candidate", torch.tanh(xn + (r * h_prev) @ w[2 * H:].T))
    h = edit("h", z * h_prev + (1 - z) * cand)
    return {"gates.r": r, "gates.z": z, "candidate": cand, "h": h}


class D2LGRU(nn.Module):
    """One layer of the book's GRU with nn.GRU's interface: ``layer(inp, hx) → (out, hn)`` for
    inp (T, d) or (T, B, d) (time first) and hx (1, h) / (1, B, h) or None (zeros); out (T, [B,] h),
    hn (1, [B,] h). Initialised like nn.GRU: every parameter uniform in ±1/√h."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih_l0 = nn.Parameter(torch.empty(3 * hidden_size, input_size))
        self.weight_hh_l0 = nn.Parameter(torch.empty(3 * hidden_size, hidden_size))
        self.bias_ih_l0 = nn.Parameter(torch.empty(3 * hidden_size))
        bound = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, inp: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        H = self.hidden_size
        h0 = inp.new_zeros(inp.shape[1:-1] + (H,)) if hx is None else hx[0]
        x_part = torch.addmm(self.bias_ih_l0, inp.reshape(-1, inp.shape[-1]), self.weight_ih_l0.T)
        x_part = x_part.reshape(inp.shape[:-1] + (3 * H,))               # (T, [B,] 3h)
        if inp.shape[0] == 0:
            return inp.new_zeros(inp.shape[:-1] + (H,)), h0[None]
        if _compiled(x_part, self.weight_hh_l0, h0):
            out = _compiled_run(x_part, self.weight_hh_l0, h0)
        else:
            out = _torch_run(x_part, self.weight_hh_l0, h0)
        return out, out[-1][None]


def _compiled(x_part: Tensor, w: Tensor, h0: Tensor) -> bool:
    """Whether the compiled loop may run: no gradient wanted, CPU, one float dtype."""
    if torch.is_grad_enabled() and (x_part.requires_grad or w.requires_grad or h0.requires_grad):
        return False
    return (all(t.device.type == "cpu" for t in (x_part, w, h0))
            and x_part.dtype in (torch.float32, torch.float64) and w.dtype == h0.dtype == x_part.dtype)


def _compiled_run(x_part: Tensor, w: Tensor, h0: Tensor) -> Tensor:
    """:func:`rnnviz.kernels.gru_d2l_forward` on (T, [B,] 3h) → (T, [B,] h)."""
    from ..kernels import gru_d2l_forward
    T, H = x_part.shape[0], w.shape[1]
    xp = x_part.detach().reshape(T, -1, 3 * H)
    out = torch.empty((T, xp.shape[1], H), dtype=x_part.dtype)
    gru_d2l_forward(xp.contiguous().numpy(), w.detach().contiguous().numpy(),
                    h0.detach().reshape(-1, H).contiguous().numpy(), out.numpy())
    return out.reshape(x_part.shape[:-1] + (H,))


def _torch_run(x_part: Tensor, w: Tensor, h: Tensor) -> Tensor:
    """The same recurrence as a torch loop (differentiable: training), five ops a step."""
    H = h.shape[-1]
    w_rz, w_n = w[:2 * H].T, w[2 * H:].T
    outs = []
    for t in range(x_part.shape[0]):
        rz = torch.sigmoid(x_part[t, ..., :2 * H] + h @ w_rz)
        cand = torch.tanh(x_part[t, ..., 2 * H:] + (rz[..., :H] * h) @ w_n)
        h = torch.lerp(cand, h, rz[..., H:])                            # H̃ + Z ⊙ (H_{t−1} − H̃)
        outs.append(h)
    return torch.stack(outs)


def recover(layer: D2LGRU, inp: Tensor, ids: Tensor | None, out: Tensor, h0: Tensor,
            c0: Tensor | None) -> dict[str, Tensor]:
    """R_t, Z_t, H̃_t of a whole run from its H (T, h): inputs (T, d) (or their one-hot ``ids``)."""
    H = out.shape[1]
    w_ih, w_hh = layer.weight_ih_l0, layer.weight_hh_l0
    h_prev = torch.cat([h0[None], out[:-1]], dim=0)
    x_part = input_rows(w_ih, layer.bias_ih_l0, ids, inp)
    rz = torch.sigmoid(torch.addmm(x_part[:, :2 * H], h_prev, w_hh[:2 * H].T))
    r, z = rz[:, :H], rz[:, H:]
    cand = torch.tanh(torch.addmm(x_part[:, 2 * H:], r * h_prev, w_hh[2 * H:].T))
    return {"gates.z": z, "gates.r": r, "candidate": cand}


def step_terms(p: dict[str, Tensor], x: Tensor, h_prev: Tensor, c_prev: Tensor | None) -> dict[str, Tensor]:
    """The step-through view's terms from textbook parameters (see rnnviz.views.step_terms)."""
    r = torch.sigmoid(x @ p["W_xr"] + h_prev @ p["W_hr"] + p["b_r"])
    z = torch.sigmoid(x @ p["W_xz"] + h_prev @ p["W_hz"] + p["b_z"])
    xin = x @ p["W_xh"] + p["b_h"]
    hin = (r * h_prev) @ p["W_hh"]
    cand = torch.tanh(xin + hin)
    h = z * h_prev + (1 - z) * cand
    return {"R_t": r, "Z_t": z, "X_t W_xh + b_h": xin, "(R_t ⊙ H_{t-1}) W_hh": hin,
            "H̃_t": cand, "H_{t-1}": h_prev, "H_t": h}


@dataclass
class D2LGRUJacobian(LayerJacobian):
    """With a_n = X W_xh + (R ⊙ H_{t−1}) W_hh + b_h: qn = ∂H/∂a_n = (1 − Z)(1 − H̃²),
    qz = ∂H/∂a_z = (H_{t−1} − H̃) Z(1 − Z), s = ∂(R ⊙ H_{t−1})/∂a_r = H_{t−1} R(1 − R); all (T, h).
    One step back: da_n = dH qn, g = da_n W_hh(n) (the adjoint of R ⊙ H_{t−1}), da_r = g s,
    da_z = dH qz, dH_{t−1} = dH Z + g R + [da_r, da_z] W_h(r,z) — two products, not one."""

    qn: Tensor | None = None
    qz: Tensor | None = None
    s: Tensor | None = None
    r: Tensor | None = None
    z: Tensor | None = None
    has_kernel = True

    @classmethod
    def build(cls, cell, mod, terms, x):
        H, h_prev, w_hh, w_ih = cls._common(mod, terms, x)
        z, r, n = terms["gates.z"], terms["gates.r"], terms["candidate"]
        return cls(cell, 3, H, h_prev, x, w_hh, w_ih, qn=(1 - z) * (1 - n * n),
                   qz=(h_prev - n) * z * (1 - z), s=h_prev * r * (1 - r), r=r, z=z)

    def _adjoint(self, t: int, dH: Tensor, scale: float = 1.0) -> tuple[Tensor, Tensor]:
        """dH (…, h) of H_t, times ``scale`` → (pre-activation adjoints [a_r, a_z, a_n] (…, 3h),
        the adjoint of H_{t−1} (…, h))."""
        h = self.h.shape[1]
        dn = dH * (self.qn[t] * scale)
        g = dn @ self.w_hh[2 * h:]
        drz = torch.cat([g * self.s[t], dH * (self.qz[t] * scale)], dim=-1)
        prev = torch.addcmul(dH * (self.z[t] * scale), g, self.r[t]).add_(drz @ self.w_hh[:2 * h])
        return torch.cat([drz, dn], dim=-1), prev

    def backward_steps(self, E, last, cut):
        """The compiled kernel :func:`rnnviz.kernels.gru_d2l_backward` (two products a step)."""
        dH = E.clone()
        T, h = E.shape
        da = torch.zeros(T, 3 * h, dtype=E.dtype)
        Q = torch.stack([self.qn, self.qz, self.s, self.r, self.z], dim=1).to(E.dtype)
        kernels.gru_d2l_backward(self.w_hh.T.contiguous().numpy(), dH.numpy(), Q.numpy(), da.numpy(),
                                 last, cut, torch.get_num_threads())
        return {"dH": dH, "da": da}

    def param_grads(self, back):
        da, h = back["da"], self.h.shape[1]
        w_hh = torch.cat([da[:, :2 * h].T @ self.h_prev, da[:, 2 * h:].T @ (self.r * self.h_prev)])
        return {"weight_ih_l0": da.T @ self.x, "weight_hh_l0": w_hh, "bias_ih_l0": da.sum(0)}

    def chain_step(self, t, inv, M, Mc, scaled, dst, dst_c):
        """dst = inv · M A_t with the step matrix A_t = diag(Z) + diag(qn) W_n (diag(R) + diag(s) W_r)
        + diag(qz) W_z (the rows of :meth:`_adjoint`), built for a block of steps at once (one
        large product) so each step is one (h × h) product, not three."""
        torch.addmm(dst, M, self.chain_matrix(t, self.h.shape[1], self._step_matrices),
                    beta=0, alpha=inv, out=dst)
        return dst, None

    def _step_matrices(self, lo: int, hi: int) -> Tensor:
        """A_t (n, h, h) for t = lo … hi − 1 (see :meth:`chain_step`)."""
        h, n = self.h.shape[1], hi - lo
        w_r, w_z, w_n = self.w_hh.view(3, h, h)
        U = w_n[None] * self.qn[lo:hi, :, None]                # diag(qn) W_n
        A = U * self.r[lo:hi, None, :]
        A.addcmul_(w_z[None], self.qz[lo:hi, :, None])
        U.mul_(self.s[lo:hi, None, :])                           # diag(qn) W_n diag(s)
        A.view(n * h, h).addmm_(U.view(n * h, h), w_r)
        A.diagonal(dim1=1, dim2=2).add_(self.z[lo:hi])
        return A

    def map_step(self, k, A, Ac, below, back):
        da, prev = self._adjoint(k, A)
        return (da @ self.w_ih if below else None), (prev if back else None), None


SPEC = CellSpec(
    name="gru_d2l", title="GRU (the book's form)", gates=GATES, names=NAMES,
    terms=("h", "gates.z", "gates.r", "candidate"), step=step, recover=recover,
    make_layer=D2LGRU, jacobian=D2LGRUJacobian,
    step_view=("R_t", "Z_t", "X_t W_xh + b_h", "(R_t ⊙ H_{t-1}) W_hh", "H̃_t", "H_{t-1}", "H_t"),
    step_terms=step_terms, gate_view=("z", "r"), map_cost=2,
    spectrum_blocks=("W_hr", "W_hz", "W_hh"), main_block="W_hh",
    step_jacobian="∂H_t/∂H_{t−1} = diag(Z_t) + diag((H_{t−1} − H̃_t) ⊙ Z_t ⊙ (1−Z_t)) W_hzᵀ "
                  "+ diag((1−Z_t) ⊙ (1−H̃_t²)) W_hhᵀ (diag(R_t) + diag(H_{t−1} ⊙ R_t ⊙ (1−R_t)) W_hrᵀ): "
                  "the update gate's diag(Z_t) passes the gradient on with no weight matrix, so Z_t near 1 "
                  "carries it far back.",
    latex=(r"R_t = \sigma(X_t W_{xr} + H_{t-1} W_{hr} + b_r) \qquad Z_t = \sigma(X_t W_{xz} + H_{t-1} W_{hz} + b_z)",
           r"\tilde H_t = \tanh\big(X_t W_{xh} + (R_t \odot H_{t-1}) W_{hh} + b_h\big)",
           r"H_t = Z_t \odot H_{t-1} + (1 - Z_t) \odot \tilde H_t"),
    note="The book's own GRU (d2l §10.2), exactly: R_t ⊙ H_{t-1} is multiplied by W_hh, one bias per gate.",
    order=4)
#: The cells of this module (rnnviz.cells collects every module's SPECS).
SPECS = (SPEC,)
