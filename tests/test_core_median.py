"""ocr_core.median gives np.median's values (it exists only to skip numpy.ma's import)."""

import numpy as np
import pytest

from ocr_core.median import median


@pytest.mark.parametrize("n", [1, 2, 7, 10])
def test_same_values_as_numpy(n: int) -> None:
    rng = np.random.default_rng(n)
    floats = rng.normal(size=n)
    pixels = rng.integers(0, 256, size=(n, 3), dtype=np.uint8)
    assert median(floats) == np.median(floats)
    assert median(pixels, axis=0).dtype == np.float64
    np.testing.assert_array_equal(median(pixels, axis=0), np.median(pixels, axis=0))
    np.testing.assert_array_equal(median(pixels), np.median(pixels))


def test_an_empty_array_is_refused() -> None:
    with pytest.raises(ValueError):
        median(np.zeros(0))
