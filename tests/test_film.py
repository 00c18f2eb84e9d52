import numpy as np
import pytest

from farm.buckets import Bucket
from farm.client.film import Film, check_output_path, read_exr
from farm.exceptions import FarmError


def test_tiles_land_where_their_bucket_is():
    film = Film(5, 3)
    film.put(Bucket(0, 3, 1, 2, 2), np.ones((2, 2, 3), np.float32))
    assert film.pixels[1:3, 3:5].min() == 1 and film.pixels.sum() == 12
    assert not film.complete
    with pytest.raises(ValueError):
        film.put(Bucket(1, 0, 0, 2, 2), np.ones((3, 2, 3), np.float32))


def test_png_is_srgb_encoded_and_clamped(tmp_path):
    from PIL import Image

    film = Film(4, 1)
    film.pixels[0] = [[0, 0, 0], [0.0031308, 0.0031308, 0.0031308], [0.18, 0.18, 0.18], [5, 5, 5]]
    film.write(tmp_path / "a.png")
    pixels = np.asarray(Image.open(tmp_path / "a.png"))[0, :, 0]
    assert pixels.tolist() == [0, 10, 118, 255]  # sRGB(0.18) = 0.4613


def test_exr_keeps_linear_floats_exactly(tmp_path):
    film = Film(7, 5)
    film.pixels[:] = np.random.default_rng(1).random((5, 7, 3), dtype=np.float32) * 40
    film.write(tmp_path / "a.exr")
    assert np.array_equal(read_exr(tmp_path / "a.exr"), film.pixels)


def test_output_paths_are_checked_before_rendering(tmp_path):
    with pytest.raises(FarmError, match="unsupported output format .jpg"):
        check_output_path(tmp_path / "a.jpg")
    with pytest.raises(FarmError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "a.png")
    assert check_output_path(tmp_path / "a.EXR").name == "a.EXR"
