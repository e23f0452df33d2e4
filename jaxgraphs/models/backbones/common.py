"""torch-style convolution and pooling shared by the torchvision-layout backbones (NHWC).

Two implementations compute the same numbers: 'xla' (XLA's convolution and reduce_window, what GPUs and TPUs
want) and 'cpu_matmul' (convolutions as matmuls and max-pooling as strided slices, which XLA's CPU backend runs
several times faster; benchmarks/backbones.py). The choice is explicit: a `Conv2d.implementation` /
`max_pool(implementation=...)` argument, else the scope set by `kernel_implementation(...)` (the trainer sets
it once from the platform of the devices its mesh uses), else 'auto' = by `jax.default_backend()`.
"""

import contextlib
import contextvars
import functools
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax import lax

from jaxgraphs.models.layers import pooling

# torchvision initialises ResNet/DenseNet/VGG convolutions with kaiming_normal_(mode="fan_out", nonlinearity="relu").
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")

# Output strides the fully convolutional forms support (the last one or two subsamplings become dilations).
OUTPUT_STRIDES = (32, 16, 8)

IMPLEMENTATIONS = ("auto", "xla", "cpu_matmul")
_scoped_implementation = contextvars.ContextVar("jaxgraphs_kernel_implementation", default="auto")


def implementation_for_platform(platform: str) -> str:
  """'cpu_matmul' for the 'cpu' platform, 'xla' for every other ('gpu', 'cuda', 'rocm', 'tpu')."""
  return "cpu_matmul" if platform == "cpu" else "xla"


@contextlib.contextmanager
def kernel_implementation(name: str) -> Iterator[None]:
  """Within the block (while tracing), convolutions and max-pools without their own choice use `name`."""
  if name not in IMPLEMENTATIONS:
    raise ValueError(f"kernel implementation {name!r} is not one of {IMPLEMENTATIONS}")
  token = _scoped_implementation.set(name)
  try:
    yield
  finally:
    _scoped_implementation.reset(token)


def resolve_implementation(implementation: str | None = None) -> str:
  """'xla' or 'cpu_matmul': the explicit choice, else the scoped one, with 'auto' decided by the default backend."""
  name = implementation or _scoped_implementation.get()
  if name not in IMPLEMENTATIONS:
    raise ValueError(f"kernel implementation {name!r} is not one of {IMPLEMENTATIONS}")
  return implementation_for_platform(jax.default_backend()) if name == "auto" else name


def _conv(x, kernel, stride, dilation):
  """NHWC x HWIO convolution with torch's symmetric padding dilation * (k - 1) / 2."""
  pad = dilation * (kernel.shape[0] - 1) // 2
  return lax.conv_general_dilated(
    x,
    kernel,
    (stride, stride),
    ((pad, pad), (pad, pad)),
    rhs_dilation=(dilation, dilation),
    dimension_numbers=("NHWC", "HWIO", "NHWC"),
  )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_with_tap_matmul_kernel_grad(x, kernel, stride, dilation):
  """`_conv` whose kernel gradient is one (N*H*W)-deep matmul per kernel tap (for XLA's CPU backend).

  XLA on CPU runs a convolution's kernel gradient 3-5x slower than torch once the map is large
  (112x112 and up: VGG, ResNet-101 at 576 px); k*k plain matmuls of the shifted input with the
  output gradient do the same arithmetic 2-3x faster. Reverse mode only (no jax.jvp through it).
  """
  return _conv(x, kernel, stride, dilation)


def _conv_forward(x, kernel, stride, dilation):
  return _conv(x, kernel, stride, dilation), (x, kernel)


def _conv_backward(stride, dilation, residuals, grad):
  x, kernel = residuals
  (grad_x,) = jax.linear_transpose(lambda x: _conv(x, kernel, stride, dilation), x)(grad)
  k = kernel.shape[0]
  pad = dilation * (k - 1) // 2
  padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  out_height, out_width = grad.shape[1], grad.shape[2]
  window_shape = (x.shape[0], (out_height - 1) * stride + 1, (out_width - 1) * stride + 1, x.shape[-1])
  grad_rows = grad.reshape(-1, grad.shape[-1])

  def tap_gradient(_, offset):
    # One tap at a time (a loop, not k*k independent slices) keeps a single shifted copy of x alive.
    window = lax.dynamic_slice(padded, (0, offset[0], offset[1], 0), window_shape)[:, ::stride, ::stride, :]
    return None, lax.dot_general(
      window.reshape(-1, x.shape[-1]), grad_rows, (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32
    )

  offsets = jnp.array([(row * dilation, column * dilation) for row in range(k) for column in range(k)])
  _, taps = lax.scan(tap_gradient, None, offsets)
  grad_kernel = taps.reshape(kernel.shape).astype(kernel.dtype)
  return grad_x, grad_kernel


conv_with_tap_matmul_kernel_grad.defvjp(_conv_forward, _conv_backward)


# On CPU, maps up to 16x16 convolve faster as one im2col matmul (up to 20x for 2x2 maps: ResNet's
# layer4 on small inputs); above that the column matrix costs more than XLA's convolution.
IM2COL_MAX_POSITIONS = 16 * 16


def _output_size(size, k, stride, dilation):
  pad = dilation * (k - 1) // 2
  return (size + 2 * pad - dilation * (k - 1) - 1) // stride + 1


def conv_as_im2col_matmul(x, kernel, stride, dilation):
  """`_conv` as one matmul of the k*k shifted (strided) copies of x, concatenated along channels."""
  k = kernel.shape[0]
  pad = dilation * (k - 1) // 2
  out_height = _output_size(x.shape[1], k, stride, dilation)
  out_width = _output_size(x.shape[2], k, stride, dilation)
  padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  columns = jnp.concatenate(
    [
      padded[
        :,
        row * dilation : row * dilation + (out_height - 1) * stride + 1 : stride,
        column * dilation : column * dilation + (out_width - 1) * stride + 1 : stride,
        :,
      ]
      for row in range(k)
      for column in range(k)
    ],
    axis=-1,
  )
  y = columns.reshape(-1, k * k * x.shape[-1]) @ kernel.reshape(-1, kernel.shape[-1])
  return y.reshape(x.shape[0], out_height, out_width, kernel.shape[-1])


class Conv2d(nn.Module):
  """torch's Conv2d(padding=dilation * (kernel_size - 1) // 2) on NHWC maps, kernel HWIO named 'kernel'.

  A 1x1 convolution is computed as a 2-D matrix product on every implementation: XLA's CPU backend runs
  the kernel gradient of a 1x1 `conv_general_dilated` as a convolution over the whole batch and map, 5-15x
  slower than the matmul; on GPU both lower to the same library calls. With 'cpu_matmul' larger kernels run
  as one im2col matmul on maps up to 16x16 and otherwise take their kernel gradient from
  `conv_with_tap_matmul_kernel_grad`; with 'xla' they are one `conv_general_dilated`.
  Numbers: benchmarks/backbones.py.
  """

  features: int
  kernel_size: int
  stride: int = 1
  dilation: int = 1
  use_bias: bool = False
  kernel_init: Callable = conv_init
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  implementation: str | None = None  # 'xla', 'cpu_matmul', 'auto'; None: the scoped choice (module docstring)

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    kernel = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features), self.param_dtype)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    if k == 1:
      x = x[..., :: self.stride, :: self.stride, :] if self.stride > 1 else x
      # 2-D, so that the kernel gradient is one plain matmul; a 4-D dot_general gets transposes on CPU.
      y = (x.reshape(-1, x.shape[-1]) @ kernel[0, 0]).reshape(x.shape[:-1] + (self.features,))
    elif resolve_implementation(self.implementation) == "cpu_matmul":
      positions = _output_size(x.shape[-3], k, self.stride, self.dilation) * _output_size(
        x.shape[-2], k, self.stride, self.dilation
      )
      if positions <= IM2COL_MAX_POSITIONS:
        y = conv_as_im2col_matmul(x, kernel, self.stride, self.dilation)
      else:
        y = conv_with_tap_matmul_kernel_grad(x, kernel, self.stride, self.dilation)
    else:
      y = _conv(x, kernel, self.stride, self.dilation)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype).astype(self.dtype)
    return y


def conv(features, kernel_size, stride=1, dilation=1, *, name, dtype, param_dtype, use_bias=False):
  """A bias-free (by default) torch-style Conv2d; the map shrinks only by the stride."""
  return Conv2d(features, kernel_size, stride, dilation, use_bias, dtype=dtype, param_dtype=param_dtype, name=name)


def max_pool(x, kernel_size, stride, padding=0, implementation: str | None = None):
  """torch's MaxPool2d(kernel_size, stride, padding) on NHWC maps: padded positions never win the max.

  'xla' is one `reduce_window`. 'cpu_matmul' writes it as the maximum of kernel_size^2 strided slices:
  XLA's CPU backend runs reduce_window's gradient (select-and-scatter) ~6x slower
  (benchmarks/backbones.py). Where a window's maximum is attained more than once the slices share the
  gradient among the ties (torch and reduce_window give it to one); in these networks pools follow ReLUs,
  whose zero gradient at 0 makes the two agree.
  """
  if resolve_implementation(implementation) == "xla":
    pad = ((0, 0),) * (x.ndim - 3) + ((padding, padding), (padding, padding), (0, 0))
    window = (1,) * (x.ndim - 3) + (kernel_size, kernel_size, 1)
    strides = (1,) * (x.ndim - 3) + (stride, stride, 1)
    return lax.reduce_window(x, -jnp.inf, lax.max, window, strides, pad)  # a Python -inf: differentiable max
  x = jnp.pad(x, ((0, 0),) * (x.ndim - 3) + ((padding, padding), (padding, padding), (0, 0)), constant_values=-jnp.inf)
  height, width = x.shape[-3], x.shape[-2]
  out_height, out_width = (height - kernel_size) // stride + 1, (width - kernel_size) // stride + 1
  pooled = None
  for row in range(kernel_size):
    for column in range(kernel_size):
      window = x[
        ...,
        row : row + (out_height - 1) * stride + 1 : stride,
        column : column + (out_width - 1) * stride + 1 : stride,
        :,
      ]
      pooled = window if pooled is None else jnp.maximum(pooled, window)
  return pooled


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
