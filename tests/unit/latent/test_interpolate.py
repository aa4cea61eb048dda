"""lerp / slerp: exact endpoints, norms, bad input."""

import numpy as np
import pytest

from core.errors import UserError
from core.latent.interpolate import interpolate, lerp, slerp


def test_lerp_endpoints_and_midpoint():
    a, b = np.array([0.0, 2.0, -1.0]), np.array([4.0, 0.0, 1.0])
    path = lerp(a, b, 5)
    assert path.shape == (5, 3)
    np.testing.assert_array_equal(path[0], a)
    np.testing.assert_array_equal(path[-1], b)
    np.testing.assert_allclose(path[2], (a + b) / 2)


def test_slerp_keeps_equal_norms():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=64), rng.normal(size=64)
    b = b / np.linalg.norm(b) * np.linalg.norm(a)
    path = slerp(a, b, 11)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), np.linalg.norm(a), rtol=1e-5)
    # a straight line cuts inside the sphere
    assert np.linalg.norm(lerp(a, b, 11)[5]) < 0.9 * np.linalg.norm(a)


def test_slerp_norm_goes_linearly_and_angle_evenly():
    a, b = np.array([3.0, 0.0]), np.array([0.0, 1.0])
    path = slerp(a, b, 5)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), np.linspace(3, 1, 5), rtol=1e-5)
    angles = np.arctan2(path[:, 1], path[:, 0])
    np.testing.assert_allclose(np.diff(angles), np.pi / 8, rtol=1e-5)


def test_slerp_keeps_shape_of_grids_and_exact_endpoints():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(4, 4, 3)), rng.normal(size=(4, 4, 3))
    path = slerp(a, b, 4)
    assert path.shape == (4, 4, 4, 3)
    np.testing.assert_allclose(path[0], a, rtol=1e-6)
    np.testing.assert_allclose(path[-1], b, rtol=1e-6)


def test_parallel_and_zero_endpoints_fall_back_to_lerp():
    a = np.array([1.0, 1.0])
    np.testing.assert_allclose(slerp(a, 3 * a, 3), lerp(a, 3 * a, 3))
    np.testing.assert_allclose(slerp(np.zeros(2), a, 3), lerp(np.zeros(2), a, 3))


@pytest.mark.parametrize("args", [
    (np.zeros(2), np.zeros(3), 4, "linear"),
    (np.zeros(2), np.ones(2), 1, "linear"),
    (np.zeros(2), np.ones(2), 4, "cubic"),
    (np.array([np.nan, 0.0]), np.ones(2), 4, "spherical"),
])
def test_bad_input_is_a_user_error(args):
    with pytest.raises(UserError):
        interpolate(*args)
