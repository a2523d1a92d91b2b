"""Image readers on real medical images shipped in packages (pydicom, pydicom-data, scikit-image),
and the FAISS index choices: no model needed here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tools.images import vectors
from tools.images.readers import (ImageReadError, dicom_meta, iter_image_files, read_dicom, read_entries, read_image,
                                  window)

pydicom = pytest.importorskip("pydicom")


def pydicom_data_dir() -> Path:
    """pydicom-data's files, found inside the installed package: pydicom's get_testdata_file
    may reach for the network for these, the package itself never does."""
    spec = importlib.util.find_spec("data_store")
    if spec is None or spec.origin is None:
        pytest.skip("pydicom-data is not installed (pip install pydicom-data)")
    return Path(spec.origin).parent / "data"


def pydicom_test_file(name: str) -> Path:
    return Path(pydicom.__file__).parent / "data" / "test_files" / name


def test_window_maps_the_dicom_window_to_grey_levels():
    hu = np.array([-1000.0, -160.0, 40.0, 240.0, 3000.0])
    out = window(hu, center=40, width=400)  # a soft-tissue CT window
    assert out.dtype == np.uint8
    assert out[0] == 0 and out[1] == 0 and out[-1] == 255 and out[-2] >= 254
    assert abs(int(out[2]) - 128) <= 1


def test_window_without_a_window_uses_percentiles():
    values = np.concatenate([np.linspace(0, 1000, 1000), [1e6]])  # one outlier does not squash the rest
    out = window(values, None, None)
    assert out[500] > 100 and out[-1] == 255


def test_chest_radiograph_cr_is_windowed_and_monochrome1_inverted():
    from pydicom.pixels import apply_modality_lut

    path = pydicom_data_dir() / "RG1_UNCI.dcm"
    ds = pydicom.dcmread(path)
    assert ds.Modality == "CR" and ds.PhotometricInterpretation == "MONOCHROME1"
    img = read_image(path)
    assert img.mode == "RGB" and img.size == (ds.Columns, ds.Rows)
    plain = window(apply_modality_lut(ds.pixel_array, ds).astype(float), float(ds.WindowCenter), float(ds.WindowWidth))
    assert np.array_equal(np.asarray(img)[..., 0], 255 - plain)
    meta = dicom_meta(ds)
    assert meta["modality"] == "CR" and meta["body_part"] == "CHEST" and meta["sop_uid"]


def test_ct_rescale_intercept_gives_hounsfield_units_before_the_window():
    path = pydicom_test_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    assert float(ds.RescaleIntercept) == -1024 and "WindowCenter" not in ds
    grey = np.asarray(read_image(path))[..., 0]
    hu = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert np.array_equal(grey, window(hu, None, None))  # percentile window over HU
    assert grey.min() == 0 and grey.max() == 255


def test_multiframe_middle_frame_or_each_frame():
    path = pydicom_data_dir() / "emri_small_RLE.dcm"  # 10-frame MR, RLE: decoded by numpy alone
    middle = read_entries(path, "middle")
    assert len(middle) == 1 and middle[0].frame == 5 and middle[0].meta["frames"] == 10
    each = read_entries(path, "each")
    assert [e.frame for e in each] == list(range(10))
    assert not np.array_equal(np.asarray(each[0].image), np.asarray(each[9].image))
    assert np.array_equal(np.asarray(each[5].image), np.asarray(middle[0].image))


def test_colour_and_palette_dicom_become_rgb():
    rgb = read_image(pydicom_data_dir() / "US1_UNCI.dcm")
    arr = np.asarray(rgb)
    assert rgb.mode == "RGB" and not np.array_equal(arr[..., 0], arr[..., 2])
    two = read_entries(pydicom_data_dir() / "OBXXXX1A_2frame.dcm", "each")  # palette colour, 2 frames
    assert len(two) == 2 and two[0].image.mode == "RGB"


def test_compressed_pixel_data_without_a_decoder_is_a_clear_error():
    path = pydicom_data_dir() / "emri_small_jpeg_ls_lossless.dcm"
    with pytest.raises(ImageReadError) as info:
        read_dicom(path)
    assert "JPEG-LS" in str(info.value) and "decoder" in str(info.value)


def test_dicom_without_pixels_and_non_images_are_refused(tmp_path):
    with pytest.raises(ImageReadError, match="no pixel data"):
        read_entries(pydicom_test_file("rtstruct.dcm"))
    fake = tmp_path / "scan.png"
    fake.write_text("not an image")
    with pytest.raises(ImageReadError, match="PNG/JPEG"):
        read_entries(fake)
    with pytest.raises(ImageReadError, match="no such file"):
        read_entries(tmp_path / "missing.jpg")


def test_png_jpeg_and_16_bit_png(tmp_path):
    skimage_data = pytest.importorskip("skimage.data")
    Image.fromarray(skimage_data.retina()).save(tmp_path / "retina.jpg", quality=90)
    Image.fromarray(skimage_data.microaneurysms()).save(tmp_path / "micro.png")
    deep = (np.linspace(0, 4095, 64 * 64).reshape(64, 64)).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert read_image(tmp_path / "retina.jpg").size == (1411, 1411)
    assert read_image(tmp_path / "micro.png").mode == "RGB"
    grey = np.asarray(read_image(tmp_path / "deep.png"))[..., 0]
    assert grey.min() == 0 and grey.max() == 255  # scaled to 8 bits, not clipped at 255


def test_folder_walk_finds_images_and_dicom_without_suffix(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    Image.new("RGB", (8, 8)).save(tmp_path / ".hidden" / "b.png")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub" / "IM0001").write_bytes(pydicom_test_file("MR_small.dcm").read_bytes())
    assert [p.relative_to(tmp_path).as_posix() for p in iter_image_files(tmp_path)] == ["a.png", "sub/IM0001"]


def test_factory_follows_collection_size_and_hardware():
    assert vectors.factory_for(1_000, gpu=False) == "Flat"
    assert vectors.factory_for(vectors.FLAT_MAX, gpu=True) == "Flat"
    assert vectors.factory_for(vectors.FLAT_MAX + 1, gpu=False) == "HNSW32,Flat"      # CPU: HNSW (7 ms vs 140 ms at 1M)
    assert vectors.factory_for(1_000_000, gpu=True) == "IVF4096,Flat"                 # GPU: lists it scans fast
    assert vectors.ivf_nlist(100_000) == 1024
    assert vectors.ef_search(100_000) == 128 < vectors.ef_search(1_000_000)


def test_hnsw_search_widens_as_the_collection_grows(monkeypatch):
    monkeypatch.setattr(vectors, "HNSW_LARGE", 1_000)
    rng = np.random.default_rng(0)
    data = rng.standard_normal((1_500, 32)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    index = vectors.build_index(data[:800], np.arange(800), "HNSW16,Flat")
    hnsw = lambda: vectors._faiss().downcast_index(index.index).hnsw  # noqa: E731
    assert hnsw().efSearch == vectors.HNSW_EF_SEARCH
    vectors.add_vectors(index, data[800:], np.arange(800, 1_500))
    assert hnsw().efSearch == vectors.HNSW_EF_SEARCH_LARGE
    assert list(vectors.search(index, data[[1_200]], 1)[1][0]) == [1_200]


@pytest.mark.parametrize("factory", ["Flat", "IVF16,Flat", "HNSW16,Flat"])
def test_built_indexes_answer_with_row_ids(factory):
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((16, 64)).astype(np.float32)
    data = centres[rng.integers(0, 16, 2000)] + 0.1 * rng.standard_normal((2000, 64)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    ids = np.arange(1000, 3000, dtype=np.int64)  # SQLite row ids, not positions
    index = vectors.build_index(data, ids, factory)
    scores, found = vectors.search(index, data[[7, 1500]], 3)
    assert list(found[:, 0]) == [1007, 2500]
    assert np.allclose(scores[:, 0], 1.0, atol=1e-4)
