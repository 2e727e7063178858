"""Training one StarFlow flow: augmentation by method, standardization, Adam with early stopping.

Method `paper` (Stone-Martinez et al. 2025, sec. 4.1): each star's six values drawn 500 times from Gaussians of its
reported errors. Method `v2`: the labels are already noisy measurements, so they are NOT blurred again; each star is
repeated 500 times with a small jitter (`jitter` x its errors, a kernel that keeps the flow from collapsing onto single
stars), except log g, whose training values are seismic (10x cleaner than the spectroscopic values the model is
applied to): it gets the full spectroscopic scatter (data.py). See docs/METHOD.md.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

import data as D
import flow as F

N_AUG = 500
BATCH = 2 ** 16
MIN_LR = 1e-5
LR_FACTOR = 0.5


@dataclass
class TrainConfig:
    method: str = "v2"
    jitter: float = 0.1          # v2: augmentation sigma = jitter x reported error (not log g)
    hidden: int = F.HIDDEN
    blocks: int = F.N_BLOCKS
    seed: int = 20251124
    lr: float = 3e-3             # measured, models/train/README.md
    lr_patience: int = 40        # halve the lr after this many epochs without improvement (0: constant)
    patience: int = 100          # early stopping
    max_minutes: float = 25.0
    max_epochs: int = 0          # 0: no cap besides early stopping and the wall time
    threads: int = 0             # 0: time 1 and 2 threads and keep the faster

    def to_dict(self):
        return asdict(self)


def augmentation(df, md, cfg: TrainConfig, seed: int) -> np.ndarray:
    """The augmented rows [n_stars * N_AUG, 6] of a split, by method."""
    v, e = D.values_errors(df, md)
    return D.augment(v, D.augmentation_errors(e, cfg.method, cfg.jitter), N_AUG, seed)


def choose_threads(wrapper, params, xb):
    """Time a forward+backward at 1 and 2 threads (the 2 cores may be shared with a build) and keep the faster."""
    times = {}
    for nt in (1, 2):
        torch.set_num_threads(nt)
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            loss = -wrapper(xb).mean()
            loss.backward()
            best = min(best, time.perf_counter() - t0)
        for p in params:
            p.grad = None
        times[nt] = best
    nt = min(times, key=times.get)
    torch.set_num_threads(nt)
    return nt, times


def nll(wrapper, x, chunk=1 << 17):
    tot = 0.0
    with torch.no_grad():
        for i in range(0, len(x), chunk):
            tot += float(-wrapper(x[i:i + chunk]).double().sum())
    return tot / len(x)


def train(name, md, cfg: TrainConfig, log=print, full_losses=True, standardization=None):
    """Train one flow on `md`'s training split; early stopping on a fixed 2^16-row subset of the augmented validation
    split. `standardization`: (mean, std) to use (the members of an ensemble share one), else those of this run's
    augmented training rows. Returns (flow with the best-validation weights, info)."""
    seed = cfg.seed
    tr, va, te = md.split("train"), md.split("validation"), md.split("test")
    aug_tr = augmentation(tr, md, cfg, seed * 10 + 1)
    aug_va = augmentation(va, md, cfg, seed * 10 + 2)
    mean, std = standardization if standardization is not None else (aug_tr.mean(axis=0), aug_tr.std(axis=0))
    x_tr = torch.from_numpy(((aug_tr - mean) / std).astype(np.float32))
    x_va = torch.from_numpy(((aug_va - mean) / std).astype(np.float32))
    del aug_tr, aug_va
    rng = np.random.default_rng(seed * 10 + 4)
    x_mon = x_va[torch.from_numpy(rng.choice(len(x_va), size=min(BATCH, len(x_va)), replace=False))]
    log(f"{name}: stars train/val/test = {len(tr)}/{len(va)}/{len(te)}; augmented rows {len(x_tr)}/{len(x_va)}; "
        f"config {cfg.to_dict()}")

    flow = F.build_flow(seed, cfg.hidden, cfg.blocks)
    wrapper = F.LogProb(flow)  # shares flow's parameters; identical math to flow.log_prob, faster to trace
    params = [p for p in flow.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    gen = torch.Generator().manual_seed(seed * 10 + 5)
    perm = torch.randperm(len(x_tr), generator=gen)
    pos = 0
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
        nt, tt = cfg.threads, {}
    else:
        nt, tt = choose_threads(wrapper, params, x_tr[perm[:BATCH]])
    log(f"{name}: threads {nt} (forward+backward s/batch: {tt})")

    max_s = cfg.max_minutes * 60.0
    best = (float("inf"), 0, None)
    cur_lr, last_improve, last_cut, lr_cuts = cfg.lr, 0, 0, []
    hist_tr, hist_va = [], []
    epoch = 0
    stopped = None
    t0 = time.time()
    while True:
        if pos + BATCH > len(x_tr):
            perm = torch.randperm(len(x_tr), generator=gen)
            pos = 0
        xb = x_tr[perm[pos:pos + BATCH]]
        pos += BATCH
        opt.zero_grad(set_to_none=True)
        loss = -wrapper(xb).mean()
        loss.backward()
        opt.step()
        epoch += 1
        with torch.no_grad():
            lv = float(-wrapper(x_mon).mean())
        lt = float(loss.detach())
        hist_tr.append(lt)
        hist_va.append(lv)
        if not (math.isfinite(lt) and math.isfinite(lv)):
            stopped = f"non-finite loss at epoch {epoch}"
            break
        if lv < best[0]:
            best = (lv, epoch, copy.deepcopy(flow.state_dict()))
            last_improve = epoch
        elif cfg.lr_patience > 0 and epoch - max(last_improve, last_cut) >= cfg.lr_patience:
            # plateau: halve the learning rate (the epoch-to-epoch noise of the validation loss shrinks with it)
            cur_lr = max(cur_lr * LR_FACTOR, MIN_LR)
            for g in opt.param_groups:
                g["lr"] = cur_lr
            last_cut = epoch
            lr_cuts.append((epoch, cur_lr))
        if epoch - best[1] >= cfg.patience:
            stopped = f"early stopping: validation loss did not improve for {cfg.patience} epochs"
            break
        el = time.time() - t0
        if el >= max_s:
            stopped = f"wall-time cap of {cfg.max_minutes} min reached"
            break
        if cfg.max_epochs and epoch >= cfg.max_epochs:
            stopped = f"epoch cap of {cfg.max_epochs} reached"
            break
        if epoch % 200 == 0:
            log(f"{name}: epoch {epoch} train {lt:.4f} val {lv:.4f} best {best[0]:.4f}@{best[1]} lr {cur_lr:.2g} "
                f"({el / epoch * 1000:.0f} ms/epoch)")
    train_time = time.time() - t0
    flow.load_state_dict(best[2])
    flow.eval()
    log(f"{name}: stopped after {epoch} epochs ({stopped}); best epoch {best[1]}; {train_time:.0f} s")
    losses = {"validation_monitor_best": best[0]}
    if full_losses:
        aug_te = augmentation(te, md, cfg, seed * 10 + 3)
        x_te = torch.from_numpy(((aug_te - mean) / std).astype(np.float32))
        losses.update({"train": nll(wrapper, x_tr), "validation": nll(wrapper, x_va), "test": nll(wrapper, x_te)})
        log(f"{name}: NLL (standardized space) {losses}")
    else:
        losses["validation"] = nll(wrapper, x_va)
    info = {"seed": seed, "epochs": epoch, "best_epoch": best[1], "stopped_because": stopped,
            "samples_per_epoch": BATCH, "train_time_s": train_time, "lr_cuts": lr_cuts, "threads": nt,
            "thread_timing_s": tt, "losses": losses, "mean": mean, "std": std, "pool": x_va[:200_000].numpy(),
            "history": {"train": hist_tr, "validation_monitor": hist_va}, "config": cfg.to_dict()}
    return flow, info
