"""The image of image-to-video, as a file the engine decodes: a path as given, or a
PIL-style image (anything with ``save``) written losslessly to a temporary PNG."""
import contextlib
import os
import tempfile

from ._native import FerryValueError


@contextlib.contextmanager
def image_file(image):
    """Yields a path for ``image`` (None stays None); a temporary file is removed after."""
    if image is None:
        yield None
        return
    if isinstance(image, (str, bytes, os.PathLike)):
        yield os.fsdecode(image)
        return
    if not callable(getattr(image, "save", None)):
        raise FerryValueError(f"image {type(image).__name__}: give a PNG/JPEG path or a PIL image", "invalid")
    fd, path = tempfile.mkstemp(prefix="ferry-image-", suffix=".png")
    os.close(fd)
    try:
        image.save(path, format="PNG")
        yield path
    finally:
        os.unlink(path)
