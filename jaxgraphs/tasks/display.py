"""Turning network inputs back into pictures for TensorBoard."""

import numpy as np


def images_for_display(images: np.ndarray) -> np.ndarray:
  """Rescales each normalised float image to uint8 by its own min and max, whatever the normalisation."""
  images = np.asarray(images, np.float32)
  low = images.min(axis=(1, 2, 3), keepdims=True)
  high = images.max(axis=(1, 2, 3), keepdims=True)
  return np.round(255 * (images - low) / np.maximum(high - low, 1e-6)).astype(np.uint8)
