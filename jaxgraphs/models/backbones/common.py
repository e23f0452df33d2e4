"""torch-style convolution and pooling shared by the torchvision-layout backbones (NHWC)."""

import jax.numpy as jnp
from flax import linen as nn

from jaxgraphs.models.layers import pooling

# torchvision initialises ResNet/DenseNet/VGG convolutions with kaiming_normal_(mode="fan_out", nonlinearity="relu").
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")

# Output strides the fully convolutional forms support (the last one or two subsamplings become dilations).
OUTPUT_STRIDES = (32, 16, 8)


def conv(features, kernel_size, stride=1, dilation=1, *, name, dtype, param_dtype, use_bias=False):
  """torch's Conv2d(padding=dilation * (kernel_size - 1) // 2): the map shrinks only by the stride."""
  pad = dilation * (kernel_size - 1) // 2
  return nn.Conv(
      features, (kernel_size, kernel_size), strides=stride, padding=((pad, pad), (pad, pad)),
      kernel_dilation=dilation, use_bias=use_bias, kernel_init=conv_init, dtype=dtype,
      param_dtype=param_dtype, name=name)


def max_pool(x, kernel_size, stride, padding=0):
  """torch's MaxPool2d(kernel_size, stride, padding): padded positions never win the max."""
  return nn.max_pool(x, (kernel_size, kernel_size), strides=(stride, stride),
                     padding=((padding, padding), (padding, padding)))


def average_pool_2x2(x):
  """torch's AvgPool2d(2, stride=2): an odd last row/column is dropped."""
  return nn.avg_pool(x, (2, 2), strides=(2, 2), padding="VALID")


def global_average_pool(x, dtype):
  """Mean over height and width, accumulated in fp32, returned in `dtype`."""
  return pooling.global_average_pool(x.astype(jnp.float32)).astype(dtype)


def adaptive_average_pool(x, size: int):
  """torch's AdaptiveAvgPool2d(size): bin i spans [floor(i*H/size), ceil((i+1)*H/size)), so bins may overlap."""
  height, width = x.shape[-3], x.shape[-2]
  if height == width == size:
    return x.astype(jnp.float32)

  def bins(length):
    return [((i * length) // size, -((-(i + 1) * length) // size)) for i in range(size)]

  rows = [jnp.mean(x[..., start:end, :, :].astype(jnp.float32), axis=-3) for start, end in bins(height)]
  x = jnp.stack(rows, axis=-3)
  columns = [jnp.mean(x[..., start:end, :], axis=-2) for start, end in bins(width)]
  return jnp.stack(columns, axis=-2)


def check_output_stride(name: str, output_stride: int) -> None:
  """Raises naming the backbone when `output_stride` is not 32, 16 or 8."""
  if output_stride not in OUTPUT_STRIDES:
    raise ValueError(f"{name} output_stride must be one of {OUTPUT_STRIDES}, got {output_stride}")
