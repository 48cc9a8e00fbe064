"""Service models: how fast one worker (a named model on named GPUs) serves jobs, boots, and costs.

The figures are approximations, derived from public hardware specs with the roofline reasoning below
and checked against the orders of magnitude that published serving papers report. They are good
enough to compare autoscaling policies against each other (every policy sees the same model), not to
predict one deployment's latency. See docs/autoscaler.md for the derivation table.

Sources:
- NVIDIA A100 datasheet (80GB SXM: 2,039 GB/s HBM2e, 312 TFLOPS dense BF16) and NVIDIA H100 datasheet
  (SXM: 3.35 TB/s HBM3, 989 TFLOPS dense BF16).
- Touvron et al., "Llama 2: Open Foundation and Fine-Tuned Chat Models", 2023: layer counts and widths;
  70B uses grouped-query attention with 8 KV heads.
- Kwon et al., "Efficient Memory Management for LLM Serving with PagedAttention" (vLLM), SOSP 2023:
  about 800 KB of KV cache per token for a 13B model; batching many sequences is memory-bound.
- Pope et al., "Efficiently Scaling Transformer Inference", MLSys 2023: 2·N FLOPs per token; decode
  steps are bound by reading the weights once per step, so per-sequence speed is roughly flat in
  batch size until the KV cache reads dominate.
- Patel et al., "Splitwise", ISCA 2024 (the source of the Azure traces): prompt (prefill) phase is
  compute-bound, token (decode) phase memory-bound; decode time-between-tokens of tens of ms.
- Fu et al., "ServerlessLLM", OSDI 2024: cold starts that download and load checkpoints take tens of
  seconds to minutes, dominated by checkpoint size; we model boot (instance + image + weights) as
  lognormal with the median and p95 given per entry.
- Prices: round mid-market figures between marketplace listings (Vast.ai, RunPod) and neocloud
  on-demand list prices (e.g. Lambda) in 2024-25: about $1.50 per A100-80GB-hour and $2.50 per
  H100-80GB-hour. Check current prices before quoting costs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

_STANDARD_NORMAL = NormalDist()
# z-score of the 95th percentile: p95 = median * exp(_Z95 * sigma)
_Z95 = _STANDARD_NORMAL.inv_cdf(0.95)


@dataclass(frozen=True, slots=True)
class BootTime:
    """Time from provisioning a worker to its first free slot: instance start, image pull, weights load.

    Lognormal: boot times have a hard floor of work and a long tail of slow hosts and downloads.
    """

    median_s: float
    p95_s: float

    def __post_init__(self) -> None:
        if not 0 < self.median_s <= self.p95_s:
            raise ValueError(f"need 0 < median_s <= p95_s, got {self.median_s} and {self.p95_s}")

    @property
    def sigma(self) -> float:
        return math.log(self.p95_s / self.median_s) / _Z95

    def quantile(self, q: float) -> float:
        """The q-quantile (0 < q < 1) of boot time, in seconds."""
        return self.median_s * math.exp(self.sigma * _STANDARD_NORMAL.inv_cdf(q))

    def sample(self, rng: np.random.Generator, count: int) -> npt.NDArray[np.float64]:
        """`count` independent boot times drawn from `rng` (deterministic for a seeded generator)."""
        return np.asarray(self.median_s * np.exp(self.sigma * rng.standard_normal(count)), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class ServiceModel:
    """One worker serving one model: a job holds one slot for prefill plus decode time.

    `decode_tokens_per_s` is per sequence with all `slots` busy; continuous batching keeps it roughly
    constant while fewer slots are busy, so we do not model the small speed-up of a lightly loaded
    worker. Prefill is charged to the job alone (no interference with other slots): an optimistic
    simplification that applies equally to every policy.
    """

    name: str
    model: str
    gpu: str
    gpus_per_worker: int
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    slots: int
    boot: BootTime
    price_usd_per_gpu_hour: float

    @property
    def price_usd_per_worker_hour(self) -> float:
        return self.price_usd_per_gpu_hour * self.gpus_per_worker

    def service_s(
        self, prompt_tokens: npt.ArrayLike, output_tokens: npt.ArrayLike
    ) -> npt.NDArray[np.float64]:
        """Seconds a job occupies one slot, element-wise over token counts."""
        prompts = np.asarray(prompt_tokens, dtype=np.float64)
        outputs = np.asarray(output_tokens, dtype=np.float64)
        return np.asarray(
            prompts / self.prefill_tokens_per_s + outputs / self.decode_tokens_per_s, dtype=np.float64
        )


# Derivations (docs/autoscaler.md has the full table). Decode step ≈ (weights + KV read) / (HBM
# bandwidth x 0.6 achieved); prefill ≈ 2·N FLOPs per token at 45-50% of dense BF16 peak.
SERVICE_MODELS: Mapping[str, ServiceModel] = MappingProxyType(
    {
        "llama-2-7b@a100-80gb": ServiceModel(
            name="llama-2-7b@a100-80gb",
            model="Llama-2-7B (fp16)",
            gpu="A100-80GB SXM",
            gpus_per_worker=1,
            prefill_tokens_per_s=11_000.0,
            decode_tokens_per_s=33.0,
            slots=32,
            boot=BootTime(median_s=90.0, p95_s=240.0),
            price_usd_per_gpu_hour=1.50,
        ),
        "llama-2-13b@a100-80gb": ServiceModel(
            name="llama-2-13b@a100-80gb",
            model="Llama-2-13B (fp16)",
            gpu="A100-80GB SXM",
            gpus_per_worker=1,
            prefill_tokens_per_s=6_000.0,
            decode_tokens_per_s=28.0,
            slots=16,
            boot=BootTime(median_s=120.0, p95_s=300.0),
            price_usd_per_gpu_hour=1.50,
        ),
        "llama-2-13b@h100-80gb": ServiceModel(
            name="llama-2-13b@h100-80gb",
            model="Llama-2-13B (fp16)",
            gpu="H100-80GB SXM",
            gpus_per_worker=1,
            prefill_tokens_per_s=17_000.0,
            decode_tokens_per_s=45.0,
            slots=16,
            boot=BootTime(median_s=120.0, p95_s=300.0),
            price_usd_per_gpu_hour=2.50,
        ),
        "llama-2-70b@4xa100-80gb": ServiceModel(
            name="llama-2-70b@4xa100-80gb",
            model="Llama-2-70B (fp16, tensor-parallel 4)",
            gpu="A100-80GB SXM",
            gpus_per_worker=4,
            prefill_tokens_per_s=4_500.0,
            decode_tokens_per_s=25.0,
            slots=32,
            boot=BootTime(median_s=240.0, p95_s=600.0),
            price_usd_per_gpu_hour=1.50,
        ),
    }
)

DEFAULT_SERVICE_MODEL = "llama-2-13b@a100-80gb"


def get_service_model(name: str) -> ServiceModel:
    """The catalogue entry called `name`; raises KeyError listing the known names."""
    try:
        return SERVICE_MODELS[name]
    except KeyError:
        raise KeyError(f"unknown service model {name!r}; known: {sorted(SERVICE_MODELS)}") from None
