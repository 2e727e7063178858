"""The engine's per-star Monte-Carlo draws (udfs/src/draws.rs), ported to Python so that a reference computation can
use exactly the draws `starflow_age(...)` uses. Pure Python integers and the `math` module (glibc, as Rust's f64 ln,
cos and sin on Linux), so the numbers are bitwise the same. `plan_rows` takes a draw plan of
models/train/reference.py (`Model.draw_plan`: the values drawn around, their sigmas, the number of draws) as the
engine does: the values themselves when no sigma is left (method v2 within the training noise), else the draws.
"""
import math
import struct

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
DEFAULT_SEED = 20251123


def _mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def _bits(v: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", v))[0]


def star_key(seed: int, values) -> int:
    h = _mix(seed ^ GOLDEN)
    for v in values:
        h = _mix(((h + GOLDEN) & M64) ^ _bits(float(v)))
    return h


def _uniform(key: int, counter: int) -> float:
    bits = _mix(key ^ _mix(((counter * GOLDEN) & M64) + 1 & M64))
    return ((bits >> 11) + 0.5) * (1.0 / float(1 << 53))


def normal(key: int, k: int) -> float:
    pair = k // 2
    u1 = _uniform(key, 2 * pair)
    u2 = _uniform(key, 2 * pair + 1)
    r = math.sqrt(-2.0 * math.log(u1))
    theta = 2.0 * math.pi * u2
    return r * math.cos(theta) if k % 2 == 0 else r * math.sin(theta)


def sample_labels(seed: int, labels, errors, draws: int):
    """`draws` x 5 label draws, as udfs/src/draws.rs::sample_labels."""
    key = star_key(seed, list(labels) + list(errors))
    n = len(labels)
    flat = [labels[i % n] + errors[i % n] * normal(key, i) for i in range(draws * n)]
    return [flat[d * n:(d + 1) * n] for d in range(draws)]


def plan_rows(seed: int, center, sigma, draws: int):
    """The label rows of a draw plan, as udfs/src/draws.rs::DrawPlan::rows."""
    if all(float(s) == 0.0 for s in sigma):
        return [[float(v) for v in center] for _ in range(draws)]
    return sample_labels(seed, [float(v) for v in center], [float(s) for s in sigma], draws)
