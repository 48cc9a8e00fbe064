from __future__ import annotations

import numpy as np
import pytest

from ferryman.autoscale import DEFAULT_SERVICE_MODEL, SERVICE_MODELS, BootTime, get_service_model


def test_boot_time_quantiles_match_median_and_p95() -> None:
    boot = BootTime(median_s=120.0, p95_s=300.0)
    assert (boot.quantile(0.5), boot.quantile(0.95)) == pytest.approx((120.0, 300.0))


def test_boot_time_sample_is_deterministic_for_a_seed_and_has_the_median() -> None:
    boot = BootTime(median_s=120.0, p95_s=300.0)
    first = boot.sample(np.random.default_rng(7), 20_000)
    again = boot.sample(np.random.default_rng(7), 20_000)
    assert np.array_equal(first, again)
    assert float(np.median(first)) == pytest.approx(120.0, rel=0.03)


def test_boot_time_rejects_p95_below_median() -> None:
    with pytest.raises(ValueError, match="median_s <= p95_s"):
        BootTime(median_s=300.0, p95_s=100.0)


def test_service_s_is_prefill_plus_decode_time() -> None:
    model = get_service_model("llama-2-13b@a100-80gb")
    seconds = model.service_s([6000, 0], [0, 28])
    assert seconds.tolist() == pytest.approx([1.0, 1.0])


def test_worker_price_counts_every_gpu() -> None:
    model = get_service_model("llama-2-70b@4xa100-80gb")
    assert model.price_usd_per_worker_hour == pytest.approx(4 * model.price_usd_per_gpu_hour)


def test_get_service_model_lists_known_names_when_unknown() -> None:
    with pytest.raises(KeyError, match="llama-2-13b@a100-80gb"):
        get_service_model("gpt-9@abacus")


def test_catalogue_entries_are_named_by_their_key_and_default_exists() -> None:
    assert DEFAULT_SERVICE_MODEL in SERVICE_MODELS
    assert all(name == model.name for name, model in SERVICE_MODELS.items())
