"""Guest images: the registry of bootable images and the build of the built-in `tiny` image."""

from hangar.images.registry import Image, ImageError, ImageKind, Registry, default_data_dir

__all__ = ["Image", "ImageError", "ImageKind", "Registry", "default_data_dir"]
