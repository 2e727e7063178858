"""The StarFlow RealNVP (normflows 1.7.3) and its batch-free log_prob wrapper for ONNX export.

Checked against the installed normflows 1.7.3 source:
* NormalizingFlow.log_prob(x): z = x; for layers in REVERSE order: z, ld = layer.inverse(z); log_q += ld;
  then log_q += q0.log_prob(z).
* Permute(6, 'swap').inverse: z1 = z[:, :(6+1)//2], z2 = z[:, 3:], z = cat([z2, z1])  (for 6 dims: swap the halves).
  Its log_det is torch.zeros(len(z)) -- the call that freezes the batch size on export.
* AffineCouplingBlock = [Split('channel'), AffineCoupling, Merge('channel')]; inverse walks them in reverse:
  Merge.inverse = Split.forward: z1, z2 = z.chunk(2, dim=1)  (first 3 / last 3 dims);
  AffineCoupling.inverse ('exp' scale map): param = param_map(z1); shift = param[:, 0::2]; scale = param[:, 1::2];
  z2 = (z2 - shift) * exp(-scale); log_det = -sum(scale, dim=1);
  Split.inverse: z = cat([z1, z2], dim=1).
* MLP([3, 16, 16, 6]) = Linear(3,16), LeakyReLU(0.0) (= ReLU), Linear(16,16), LeakyReLU(0.0), Linear(16,6).
* DiagGaussian(6, trainable=False): loc = 0, log_scale = 0 buffers; log_p = -0.5*6*log(2*pi) - sum(0.5 * z^2).
"""
from __future__ import annotations

import math

import normflows as nf
import numpy as np
import torch
from torch import nn

N_DIM = 6
N_BLOCKS = 6   # the paper's architecture
HIDDEN = 16


def build_flow(seed: int, hidden: int = HIDDEN, blocks: int = N_BLOCKS) -> nf.NormalizingFlow:
    """Paper architecture (hidden 16, 6 blocks): blocks x (AffineCouplingBlock(MLP [3, hidden, hidden, 6], ReLU),
    Permute(6, 'swap')), DiagGaussian(6) base.

    PyTorch default initialisation (uniform +-1/sqrt(fan_in)), as the paper says (init_zeros=False).
    """
    torch.manual_seed(seed)
    base = nf.distributions.base.DiagGaussian(N_DIM, trainable=False)
    flows = []
    for _ in range(blocks):
        param_map = nf.nets.MLP([N_DIM // 2, hidden, hidden, N_DIM], init_zeros=False)
        flows.append(nf.flows.AffineCouplingBlock(param_map, scale=True, scale_map="exp", split_mode="channel"))
        flows.append(nf.flows.Permute(N_DIM, mode="swap"))
    return nf.NormalizingFlow(q0=base, flows=flows)


class LogProb(nn.Module):
    """Batch-free log_prob of a normflows RealNVP built by build_flow (shares its parameters).

    Mirrors NormalizingFlow.log_prob exactly (inverse pass, layers in reverse order) with only ops that keep the
    batch dimension symbolic: slicing, cat, Linear, ReLU, exp, sum.
    """

    def __init__(self, flow: nf.NormalizingFlow):
        super().__init__()
        self.steps = []
        for layer in flow.flows:
            if isinstance(layer, nf.flows.Permute):
                assert layer.mode == "swap" and layer.num_channels == N_DIM
                self.steps.append(("swap", None))
            elif isinstance(layer, nf.flows.AffineCouplingBlock):
                split, coup, merge = layer.flows
                assert isinstance(split, nf.flows.reshape.Split) and split.mode == "channel"
                assert isinstance(merge, nf.flows.reshape.Merge) and merge.mode == "channel"
                assert coup.scale and coup.scale_map == "exp"
                self.steps.append(("coupling", coup.param_map))
            else:
                raise TypeError(f"unsupported layer {type(layer)}")
        self.maps = nn.ModuleList([m for k, m in self.steps if k == "coupling"])
        q0 = flow.q0
        assert isinstance(q0, nf.distributions.base.DiagGaussian)
        self.register_buffer("loc", q0.loc.detach().clone().reshape(1, N_DIM))
        self.register_buffer("log_scale", q0.log_scale.detach().clone().reshape(1, N_DIM))
        self.half = N_DIM // 2

    def forward(self, x):
        z = x
        log_q = None
        h = self.half
        mi = len(self.maps) - 1
        for kind, _ in reversed(self.steps):
            if kind == "swap":
                # Permute.inverse (swap): cat([z[:, 3:], z[:, :3]])
                z = torch.cat([z[:, h:], z[:, :h]], dim=1)
            else:
                z1 = z[:, :h]
                z2 = z[:, h:]
                param = self.maps[mi](z1)
                mi -= 1
                shift = param[:, 0::2]
                scale = param[:, 1::2]
                z2 = (z2 - shift) * torch.exp(-scale)
                ld = -torch.sum(scale, dim=1)
                log_q = ld if log_q is None else log_q + ld
                z = torch.cat([z1, z2], dim=1)
        u = (z - self.loc) * torch.exp(-self.log_scale)
        base = -0.5 * N_DIM * math.log(2 * math.pi) - torch.sum(self.log_scale + 0.5 * u * u, dim=1)
        return base if log_q is None else log_q + base


def export_onnx(flows, path: str, opset: int = 17) -> None:
    """Export a flow, or the mixture of several (onnx_ensemble.py), as one log_prob graph."""
    import onnx

    import onnx_ensemble
    import onnx_halves
    members = []
    for flow in (flows if isinstance(flows, (list, tuple)) else [flows]):
        wrapper = LogProb(flow).float().eval()
        x = torch.randn(5, N_DIM, dtype=torch.float32)
        with torch.no_grad():
            torch.onnx.export(wrapper, (x,), path, input_names=["x"], output_names=["log_prob"],
                              dynamic_axes={"x": {0: "N"}, "log_prob": {0: "N"}}, opset_version=opset, dynamo=False,
                              do_constant_folding=True)
        m = onnx.load(path)
        onnx.checker.check_model(m)
        # the same function without the export's Slice/Concat copies: ~2x faster in ONNX Runtime (onnx_halves.py)
        members.append(onnx_halves.rewrite(m))
    onnx.save(onnx_ensemble.merge(members), path)


class EnsembleLogProb(nn.Module):
    """log(mean_k exp(log_prob_k)): the mixture density of several flows (what onnx_ensemble.merge exports)."""

    def __init__(self, flows):
        super().__init__()
        self.members = nn.ModuleList([LogProb(f) for f in flows])

    def forward(self, x):
        lp = torch.stack([m(x) for m in self.members], dim=1)
        if len(self.members) == 1:
            return lp[:, 0]
        # a member with a non-finite log-density contributes zero density (onnx_ensemble.FLOOR)
        lp = torch.where(torch.isfinite(lp), lp, torch.full_like(lp, -3.0e38))
        return torch.logsumexp(lp, dim=1) - math.log(len(self.members))


def verify_onnx(module: nn.Module, path: str, pool: np.ndarray, batch_sizes=(1, 7, 4096, 100000),
                seed: int = 0) -> dict:
    """Run the ONNX file in onnxruntime at several batch sizes and compare with `module` (a flow's log_prob or an
    EnsembleLogProb) in float32.

    Inputs: rows drawn from `pool` (standardized augmented data rows) plus N(0, 0.1) jitter, so that they cover the
    region the engine evaluates. Returns {batch: max |diff| / max(1, |log_prob|)} (float32 rounding grows with the
    magnitude of the log-density) and asserts identical finiteness.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    ins = sess.get_inputs()
    outs = sess.get_outputs()
    assert [i.name for i in ins] == ["x"] and [o.name for o in outs] == ["log_prob"], (ins, outs)
    rng = np.random.default_rng(seed)
    res = {}
    module = module.float().eval()
    for n in batch_sizes:
        x = (pool[rng.integers(len(pool), size=n)] + 0.1 * rng.standard_normal((n, N_DIM))).astype(np.float32)
        (y,) = sess.run(["log_prob"], {"x": x})
        assert y.shape == (n,) and y.dtype == np.float32, (y.shape, y.dtype)
        with torch.no_grad():
            ref = module(torch.from_numpy(x)).numpy()
        assert np.array_equal(np.isfinite(y), np.isfinite(ref)), "finiteness differs"
        m = np.isfinite(y)
        ref64 = ref[m].astype(np.float64)
        res[str(n)] = float(np.max(np.abs(y[m].astype(np.float64) - ref64) / np.maximum(1.0, np.abs(ref64)), initial=0.0))
    return res
