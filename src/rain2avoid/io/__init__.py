"""Image files for rain2avoid: read, write, list, and convert to the pipeline's floats.

It is careful with users' photos:

* Reading (:mod:`.read`) checks the size in the header before any pixels are
  decoded, and every problem with an input file is one :class:`ImageReadError`
  that names the file and the reason. Pixels come back upright, in RGB order,
  with the file's bit depth and alpha channel.
* Writing (:mod:`.write`) encodes the whole image in memory first, then writes it
  atomically: the target is either the old file or the complete new one, never
  a partial file. Output problems raise :class:`ImageWriteError`. A JPEG's XMP, IPTC,
  comments and print size, a PNG's text, print size and gamma, and a WebP's XMP go into an
  output of the same format, and the XMP across JPEG, PNG and WebP (:mod:`.extra`). A result that
  is its input untouched is written as the input file's own bytes
  (:func:`encode_result`): no second JPEG compression.
* :func:`list_images` (:mod:`.folders`) lists a folder's images in natural order;
  :mod:`.pixels` converts arrays to and from float RGB in [0, 1].
"""

from ..files import ImageWriteError, temporary_files, write_bytes
from .folders import IMAGE_EXTENSIONS, list_images
from .pixels import from_float_rgb, same_pixels, to_float_rgb, to_uint8
from .read import (DEFAULT_MAX_PIXELS, ImageMeta, ImageReadError, PathLike, decode_image, read_file_bytes,
                   read_image)
from .write import encode_image, encode_result, is_input_as_read, write_image

__all__ = ["read_image", "decode_image", "read_file_bytes", "ImageReadError", "ImageMeta", "DEFAULT_MAX_PIXELS",
           "PathLike", "write_image", "encode_image", "encode_result", "is_input_as_read", "ImageWriteError",
           "write_bytes", "temporary_files", "list_images", "IMAGE_EXTENSIONS", "to_float_rgb", "from_float_rgb",
           "to_uint8", "same_pixels"]
