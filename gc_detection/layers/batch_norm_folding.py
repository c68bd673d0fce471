"""Folding a frozen batch norm into the 1x1 convolution in front of it.

A frozen batch norm after a convolution is an affine map per output channel:

  bn(x W + b) = (x W + b - mean) * gamma / sqrt(variance + epsilon) + beta

so it folds into a new kernel and bias:

  W' = W * s,  b' = (b - mean) * s + beta,  with s = gamma / sqrt(variance + epsilon).
"""
import dataclasses
from typing import Optional

import numpy as np


@dataclasses.dataclass(frozen=True)
class BatchNormParams:
  """The statistics and affine parameters of one frozen batch norm.

  Every array has shape (channels,), the output channels of the convolution.
  """
  gamma: np.ndarray
  beta: np.ndarray
  mean: np.ndarray
  variance: np.ndarray
  epsilon: float = 1e-3


def as_dense_kernel(kernel, name):
  """Returns a (in_channels, out_channels) float64 array.

  Args:
    kernel: a 1x1 convolution kernel, shape (1, 1, in, out), or a dense kernel,
      shape (in, out).
    name: the argument's name, used in error messages.

  Raises:
    ValueError: the kernel has another shape.
  """
  kernel = np.asarray(kernel, dtype=np.float64)
  if kernel.ndim == 4 and kernel.shape[:2] == (1, 1):
    return kernel[0, 0]
  if kernel.ndim == 2:
    return kernel
  raise ValueError(f'{name} must be a 1x1 convolution kernel (1, 1, in, out) or a '
                   f'dense kernel (in, out), got shape {kernel.shape}')


def fold_batch_norm(kernel, bias: Optional[np.ndarray], batch_norm: BatchNormParams):
  """Returns (kernel, bias) of `batch_norm(x @ kernel + bias)` as one affine map.

  Args:
    kernel: (in_channels, out_channels) array.
    bias: (out_channels,) array or None (zero).
    batch_norm: parameters with (out_channels,) arrays.

  Raises:
    ValueError: a batch-norm array does not have out_channels entries, or a
      variance + epsilon is not positive.
  """
  out_channels = kernel.shape[1]
  arrays = {}
  for field in ('gamma', 'beta', 'mean', 'variance'):
    value = np.asarray(getattr(batch_norm, field), dtype=np.float64)
    if value.shape != (out_channels,):
      raise ValueError(f'batch norm {field} must have shape ({out_channels},) to '
                       f'match the kernel\'s output channels, got {value.shape}')
    arrays[field] = value
  denominator = arrays['variance'] + batch_norm.epsilon
  if np.any(denominator <= 0):
    raise ValueError('batch norm variance + epsilon must be positive, got a '
                     f'minimum of {denominator.min()}')
  scale = arrays['gamma'] / np.sqrt(denominator)
  bias = np.zeros(out_channels) if bias is None else np.asarray(bias, np.float64)
  return kernel * scale, (bias - arrays['mean']) * scale + arrays['beta']
