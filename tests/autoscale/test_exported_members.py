from __future__ import annotations

import ferryman.autoscale
import ferryman.autoscale.providers


def public_names(module: object) -> set[str]:
    return {
        name
        for name in vars(module)
        if not name.startswith("_") and not isinstance(vars(module)[name], type(ferryman))
    }


def test_autoscale_all_matches_its_public_names() -> None:
    names = public_names(ferryman.autoscale) - {"annotations"}
    assert set(ferryman.autoscale.__all__) == names


def test_providers_all_matches_its_public_names() -> None:
    names = public_names(ferryman.autoscale.providers) - {"annotations"}
    assert set(ferryman.autoscale.providers.__all__) == names
