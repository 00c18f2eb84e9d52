import numpy as np
import pytest

from farm.buckets import Bucket
from farm.client.film import Film, check_output_path, read_exr
from farm.exceptions import FarmError
from tests import frames


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


def test_a_failed_write_leaves_the_file_before_and_no_temporary_file(tmp_path):
    """A writer's own exception (OpenEXR raises RuntimeError), like an OSError, is one
    OutputError naming the file and the cause; what the path held stays, nothing else."""
    from farm.client.film import write_whole
    from farm.exceptions import OutputError

    (tmp_path / "a.exr").write_bytes(b"the round before")

    def fail(temporary):
        temporary.write_bytes(b"half")
        raise RuntimeError(f'Failed to write pixel data to image file "{temporary}". No space left on device.')

    with pytest.raises(OutputError, match=r"^cannot write .*a\.exr: No space left on device$"):
        write_whole(tmp_path / "a.exr", fail)
    assert [p.name for p in tmp_path.iterdir()] == ["a.exr"] and (tmp_path / "a.exr").read_bytes() == b"the round before"
    film = Film(3, 2)
    film.write(tmp_path / "a.exr")
    assert [p.name for p in tmp_path.iterdir()] == ["a.exr"] and np.array_equal(read_exr(tmp_path / "a.exr"), film.pixels)


def test_the_material_layer_is_the_id_of_sample_0_undone_exactly(tmp_path):
    """The kernel sums the id + 1 of a pixel's sample 0 only; divided by any number of
    samples, the film gets the integer back (-1: nothing hit), and writes it as material.ID."""
    import OpenEXR

    ids = np.array([[-1, 0, 7, 65535]])
    for spp in (1, 3, 1000, 1 << 20):
        film = Film(4, 1, ("material",), spp)
        tile = np.zeros((1, 4, 12), np.float32)
        tile[..., 11] = (ids + 1) / np.float64(spp)
        film.put(Bucket(0, 0, 0, 4, 1), tile)
        assert np.array_equal(film.layers()["material"], ids)
    film.write(tmp_path / "ids.exr")
    with OpenEXR.File(str(tmp_path / "ids.exr"), separate_channels=True) as exr:
        assert np.array_equal(exr.channels()["material.ID"].pixels, ids.astype(np.float32))


def test_output_paths_are_checked_before_rendering(tmp_path):
    with pytest.raises(FarmError, match="unsupported output format .jpg"):
        check_output_path(tmp_path / "a.jpg")
    with pytest.raises(FarmError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "a.png")
    assert check_output_path(tmp_path / "a.EXR").name == "a.EXR"


def _aov_frame(farm, device, aovs, spp=16):
    from farm.scene.load import load_scene
    from tests.files import CORNELL

    scene, document = load_scene(CORNELL, spp=spp, resolution=(40, 40))
    run = farm.render(scene, document, bucket_size=16, aovs=aovs)
    direct = frames.reference(device, document, aovs=True)
    return run, direct


def test_aov_layers_and_denoising_on_the_farm(farm, device, tmp_path):
    """The farm's AOV frame is the one-process frame bit for bit and its layers are written
    to the EXR; denoising it (guided by albedo and normal) lowers the error against a
    converged frame and keeps the raw one as a layer."""
    import OpenEXR

    run, direct = _aov_frame(farm, device, ("albedo", "normal", "depth", "variance"))
    film = run.film
    assert np.array_equal(film.pixels, direct[..., :3]) and np.array_equal(film.aov_channels, direct[..., 3:])
    film.write(tmp_path / "layers.exr")
    with OpenEXR.File(str(tmp_path / "layers.exr"), separate_channels=True) as exr:
        channels = exr.channels()
        assert {"R", "G", "B", "albedo.R", "albedo.G", "albedo.B", "normal.R", "normal.G", "normal.B", "depth.Z",
                "variance.Y"} == set(channels)
        assert np.array_equal(channels["albedo.G"].pixels, direct[..., 4])
        assert np.array_equal(channels["depth.Z"].pixels, direct[..., 9])
    variance = film.layers()["variance"]
    rgb = direct[..., :3].astype(np.float64)
    luminance = rgb[..., 0] * 0.2126 + rgb[..., 1] * 0.7152 + rgb[..., 2] * 0.0722
    expected = np.maximum(direct[..., 10] - luminance**2, 0) / 15
    # float32 in the film: its mean square less the squared mean loses digits to cancellation
    assert np.all(np.abs(variance - expected) <= 4 * 2.0**-23 * (direct[..., 10] + luminance**2) / 15)
    assert variance.max() > 0

    pytest.importorskip("pyoidn", reason="Intel Open Image Denoise (pyoidn, the `denoise` extra) is not installed")
    from farm.scene.load import load_scene
    from tests.files import CORNELL

    _, reference_document = load_scene(CORNELL, spp=1024, resolution=(40, 40))
    reference = frames.reference(device, reference_document)

    def rmse(image):
        return float(np.sqrt(np.mean((np.clip(image, 0, 1) - np.clip(reference, 0, 1)) ** 2)))

    raw = film.pixels.copy()
    film.denoise(prefilter=True)  # the guides denoised first (OIDN's cleanAux workflow)
    prefiltered = film.pixels.copy()
    assert np.array_equal(film.raw, raw) and rmse(prefiltered) < 0.7 * rmse(raw)
    film.denoise()  # again: from the raw frame, with the guides as rendered
    assert np.array_equal(film.raw, raw)
    assert rmse(film.pixels) < 0.7 * rmse(raw) and not np.array_equal(film.pixels, prefiltered)
    film.write(tmp_path / "denoised.exr")
    with OpenEXR.File(str(tmp_path / "denoised.exr"), separate_channels=True) as exr:
        assert np.array_equal(exr.channels()["raw.G"].pixels, raw[..., 1])
