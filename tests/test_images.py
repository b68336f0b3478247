"""Whatever images users have: every mode converted correctly, every bad file refused clearly."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import jaxstyle
from jaxstyle import cli
from jaxstyle.images import ImageWarning, load_image

RGB = np.array([[[200, 30, 60], [10, 220, 90]], [[0, 0, 255], [250, 250, 250]]], np.uint8)


def _png16_rgb(values_HxWx3: np.ndarray) -> bytes:
  """A 48-bit RGB PNG, written by hand (Pillow cannot write one)."""
  h, w, _ = values_HxWx3.shape
  raw = b"".join(b"\x00" + values_HxWx3[y].astype(">u2").tobytes() for y in range(h))
  def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
          + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _xyz(x, y, z):
  return b"XYZ \0\0\0\0" + b"".join(struct.pack(">i", round(v * 65536)) for v in (x, y, z))


def _icc_rgb_profile(red, green, blue, *, description=b"swapped test RGB") -> bytes:
  """A minimal ICC v2 matrix/TRC display profile with the given D50 primaries, gamma 2.2."""
  desc = (b"desc\0\0\0\0" + struct.pack(">I", len(description) + 1) + description + b"\0"
          + b"\0" * 8 + b"\0" * 3 + b"\0" * 67)
  curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(2.2 * 256)) + b"\0\0"
  tags = [(b"desc", desc), (b"wtpt", _xyz(0.9642, 1.0, 0.8249)), (b"rXYZ", _xyz(*red)),
          (b"gXYZ", _xyz(*green)), (b"bXYZ", _xyz(*blue)), (b"rTRC", curve), (b"gTRC", curve),
          (b"bTRC", curve), (b"cprt", b"text\0\0\0\0none\0\0\0\0")]
  offset = 128 + 4 + 12 * len(tags)
  table, data = b"", b""
  for sig, body in tags:
    body += b"\0" * (-len(body) % 4)
    table += sig + struct.pack(">II", offset + len(data), len(body))
    data += body
  size = offset + len(data)
  header = (struct.pack(">I", size) + b"\0" * 4 + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ "
            + b"\0" * 12 + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)
            + _xyz(0.9642, 1.0, 0.8249)[8:] + b"\0" * 4 + b"\0" * 16 + b"\0" * 28)
  assert len(header) == 128
  return header + struct.pack(">I", len(tags)) + table + data


SRGB_D50 = {"red": (0.4361, 0.2225, 0.0139), "green": (0.3851, 0.7169, 0.0971),
            "blue": (0.1431, 0.0606, 0.7141)}


def test_grey_palette_and_16_bit_images_convert(tmp_path):
  grey = tmp_path / "grey.png"
  Image.fromarray(np.array([[0, 128], [200, 255]], np.uint8)).save(grey)
  assert load_image(grey, min_side=1).tolist() == [[[0] * 3, [128] * 3], [[200] * 3, [255] * 3]]
  palette = tmp_path / "palette.png"
  Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(palette)
  np.testing.assert_array_equal(load_image(palette, min_side=1), RGB)
  grey16 = tmp_path / "grey16.png"
  Image.fromarray(np.array([[0, 40000], [65535, 256]], np.uint16)).save(grey16)
  assert load_image(grey16, min_side=1)[..., 0].tolist() == [[0, 156], [255, 1]]
  rgb16 = tmp_path / "rgb16.png"
  rgb16.write_bytes(_png16_rgb(RGB.astype(np.uint16) * 257))  # 8-bit v -> 16-bit v·257.
  np.testing.assert_array_equal(load_image(rgb16, min_side=1), RGB)


def test_transparency_is_composited_on_white_and_said(tmp_path):
  rgba = np.zeros((2, 2, 4), np.uint8)
  rgba[..., 0] = 255
  rgba[..., 3] = [[255, 0], [128, 255]]
  path = tmp_path / "alpha.png"
  Image.fromarray(rgba).save(path)
  with pytest.warns(ImageWarning, match="alpha.png: has transparency; composited on white"):
    got = load_image(path, min_side=1)
  assert got[0, 0].tolist() == [255, 0, 0] and got[0, 1].tolist() == [255, 255, 255]
  assert got[1, 0].tolist() == [255, 127, 127]  # Half transparent red over white.


def test_cmyk_jpeg_converts(tmp_path):
  path = tmp_path / "cmyk.jpg"
  cmyk = np.zeros((16, 16, 4), np.uint8)
  cmyk[..., 0] = 255  # Full cyan: no red.
  Image.fromarray(cmyk, "CMYK").save(path, quality=95)
  got = load_image(path, min_side=1).reshape(-1, 3).mean(0)
  assert got[0] < 20 and got[1] > 230 and got[2] > 230


def test_exif_orientation_is_applied(tmp_path):
  tall = np.zeros((32, 16, 3), np.uint8)
  tall[:4] = 255  # A white band at the top.
  img = Image.fromarray(tall)
  exif = img.getexif()
  exif[0x0112] = 6  # Rotate 90° clockwise to display.
  path = tmp_path / "rotated.jpg"
  img.save(path, exif=exif, quality=95)
  got = load_image(path, min_side=1)
  assert got.shape == (16, 32, 3)
  assert got[:, -4:].mean() > 200 and got[:, :4].mean() < 50  # The band is now on the right.


def test_icc_profile_is_converted_to_srgb(tmp_path):
  swapped = _icc_rgb_profile(SRGB_D50["blue"], SRGB_D50["green"], SRGB_D50["red"])
  red = np.zeros((4, 4, 3), np.uint8)
  red[..., 0] = 255
  path = tmp_path / "tagged.png"
  Image.fromarray(red).save(path, icc_profile=swapped)
  got = load_image(path, min_side=1)[0, 0]
  assert got[2] > 200 and got[0] < 60  # "Red" in that profile is sRGB's blue primary.
  # An sRGB-tagged image is left exactly as stored.
  from PIL import ImageCms
  srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
  Image.fromarray(RGB).save(path, icc_profile=srgb)
  np.testing.assert_array_equal(load_image(path, min_side=1), RGB)


def test_unreadable_profile_warns_and_keeps_the_pixels(tmp_path):
  path = tmp_path / "badicc.png"
  Image.fromarray(RGB).save(path, icc_profile=b"not a profile at all")
  with pytest.warns(ImageWarning, match="badicc.png: its embedded colour profile could not"):
    np.testing.assert_array_equal(load_image(path, min_side=1), RGB)


def _refusal(path, **kwargs):
  with pytest.raises(jaxstyle.ImageError) as info:
    load_image(path, **kwargs)
  message = str(info.value)
  assert "\n" not in message and str(path) in message
  return message


def test_pillows_own_warnings_are_said_with_the_file_name(tmp_path):
  # EXIF whose one tag (ImageDescription) claims 100 bytes past the end of the block:
  # Pillow warns while reading it; jaxstyle says so as an ImageWarning naming the file.
  tiff = (b"II*\x00" + struct.pack("<IH", 8, 1) + struct.pack("<HHII", 0x010E, 2, 100, 1000)
          + struct.pack("<I", 0))
  path = tmp_path / "odd_exif.jpg"
  Image.fromarray(np.full((20, 20, 3), 100, np.uint8)).save(path, exif=b"Exif\x00\x00" + tiff)
  with pytest.warns(ImageWarning) as caught:
    image = load_image(path, min_side=1)
  assert [str(w.message) for w in caught] == [f"{path}: Tag data larger than file. Skipping "
                                              "tag 270"]
  assert image.shape == (20, 20, 3)  # Still loaded: a warning, not a refusal.


def test_bad_files_are_refused_with_the_file_and_the_problem(tmp_path):
  assert "no such file" in _refusal(tmp_path / "missing.png")
  assert "is a directory" in _refusal(tmp_path)
  empty = tmp_path / "empty.png"
  empty.touch()
  assert "empty file" in _refusal(empty)
  text = tmp_path / "notes.jpg"
  text.write_text("shopping list")
  assert "not an image file" in _refusal(text)
  whole = tmp_path / "whole.png"
  Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(whole)
  cut = tmp_path / "cut.png"
  cut.write_bytes(whole.read_bytes()[:400])
  assert "truncated or corrupt" in _refusal(cut)
  tiny = tmp_path / "tiny.png"
  Image.fromarray(RGB).save(tiny)
  assert "at least 16" in _refusal(tiny)


def _png_header_only(width, height) -> bytes:
  """A valid PNG claiming width x height pixels, with almost no data: a decompression bomb."""
  def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
  header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
          + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


def test_decompression_bombs_are_refused_before_decoding(tmp_path):
  bomb = tmp_path / "bomb.png"
  bomb.write_bytes(_png_header_only(40000, 40000))
  assert "too large to be safe to decode" in _refusal(bomb)
  big = tmp_path / "big.png"
  big.write_bytes(_png_header_only(15000, 12000))  # 180 Mpx: past Pillow's hard limit.
  assert "too large to be safe to decode" in _refusal(big)


def test_cli_refuses_a_size_that_cannot_fit_in_memory(image_files, capsys):
  content, style = image_files
  code = cli.main(["stylize", str(content), str(style), "-o", str(content.with_name("o.png")),
                   "--weights", "random:0:0.125", "--size", "60000", "--quiet"])
  err = [line for line in capsys.readouterr().err.splitlines() if "warning" not in line]
  assert code == 2 and len(err) == 1, err
  err = err[0]
  assert "--size 60000: needs about" in err and "the largest --size that fits is about" in err
  assert not content.with_name("o.png").exists()


def test_a_small_photo_enlarged_by_size_is_fine(narrow_weights):
  small = np.random.default_rng(0).integers(0, 255, (10, 12, 3), np.uint8)
  result = jaxstyle.stylize(small, small, jaxstyle.StyleConfig(size=32, iters=1),
                            weights=narrow_weights)
  assert result.image.shape == (27, 32, 3)


def test_outputs_get_the_mode_a_plain_write_would(tmp_path):
  import os
  import stat

  from jaxstyle.files import atomic_path

  def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)
  previous = os.umask(0o027)  # Asymmetric: group keeps read, others get nothing.
  try:
    jaxstyle.save_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    with open(tmp_path / "plain.txt", "w"):
      pass
    assert mode(tmp_path / "a.png") == mode(tmp_path / "plain.txt") == 0o640
    os.umask(0o002)
    with atomic_path(tmp_path / "b.txt") as tmp:
      tmp.write_text("x")
    assert mode(tmp_path / "b.txt") == 0o664
    os.chmod(tmp_path / "a.png", 0o604)  # An existing file keeps its mode when rewritten.
    jaxstyle.save_image(tmp_path / "a.png", np.ones((4, 4, 3), np.uint8))
    assert mode(tmp_path / "a.png") == 0o604
  finally:
    os.umask(previous)


def test_enlarging_a_tiny_image_more_than_4x_warns_with_its_name_and_factor(tmp_path):
  import warnings
  path = tmp_path / "tiny.png"
  Image.fromarray(np.full((10, 12, 3), 90, np.uint8)).save(path)
  with pytest.warns(ImageWarning, match=r"tiny\.png: enlarged 5\.0x, from 12x10 to 60x50 px"):
    load_image(path, size=60)
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # 4x is fine: no warning.
    assert load_image(path, size=48).shape == (40, 48, 3)
