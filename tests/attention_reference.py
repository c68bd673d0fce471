"""An independent NumPy float64 implementation of the paper's attention block.

Written from the paper's equations, not from the layer: separate Q, K and V
matrices, explicit per-head loops and a max-subtracted softmax.
"""
import numpy as np


def softmax(x, axis=-1):
  shifted = x - x.max(axis=axis, keepdims=True)
  exponentials = np.exp(shifted)
  return exponentials / exponentials.sum(axis=axis, keepdims=True)


def attention_block(x, wq, bq, wk, bk, wv, bv, wo, bo, num_heads):
  """One block on tokens x (N, L, C); returns (output (N, L, C), weights (N, h, L, L))."""
  x = np.asarray(x, np.float64)
  q, k, v = x @ wq + bq, x @ wk + bk, x @ wv + bv
  batch, length, key_channels = q.shape
  head = key_channels // num_heads
  context = np.zeros_like(q)
  weights = np.zeros((batch, num_heads, length, length))
  for n in range(batch):
    for h in range(num_heads):
      part = slice(h * head, (h + 1) * head)
      logits = q[n, :, part] @ k[n, :, part].T / np.sqrt(head)
      weights[n, h] = softmax(logits)
      context[n, :, part] = weights[n, h] @ v[n, :, part]
  return context @ wo + bo, weights


def global_context(feature_map, blocks, num_heads, use_residual=True):
  """Applies stacked blocks to an (N, H, W, C) map.

  Args:
    feature_map: (N, H, W, C).
    blocks: list of dicts with wq, bq, wk, bk, wv, bv, wo, bo (float64).
  Returns:
    ((N, H, W, C) output, list of (N, h, HW, HW) weights per block).
  """
  n, height, width, channels = feature_map.shape
  tokens = np.asarray(feature_map, np.float64).reshape(n, height * width, channels)
  all_weights = []
  for block in blocks:
    out, weights = attention_block(tokens, num_heads=num_heads, **block)
    tokens = tokens + out if use_residual else out
    all_weights.append(weights)
  return tokens.reshape(n, height, width, channels), all_weights


def blocks_of(layer):
  """Reads a built GlobalContextAttention's weights as reference blocks.

  The layer stores Q, K, V in one (C, 3, heads, d) kernel: split it.
  """
  weights = {w.name.split('/')[-2] + '/' + w.name.split('/')[-1].split(':')[0]: w
             for w in layer.weights}
  blocks = []
  for index in range(layer.num_layers):
    # (C, 3, heads, d) and (3, heads, d): Q, K, V along axis 1 / 0, heads
    # concatenated in order within each.
    qkv = weights[f'block_{index}/qkv_kernel'].numpy().astype(np.float64)
    qkv_bias = weights[f'block_{index}/qkv_bias'].numpy().astype(np.float64)
    channels = qkv.shape[0]
    wq, wk, wv = (qkv[:, i].reshape(channels, -1) for i in range(3))
    bq, bk, bv = (qkv_bias[i].reshape(-1) for i in range(3))
    output = weights[f'block_{index}/output_kernel'].numpy().astype(np.float64)
    blocks.append(dict(
        wq=wq, bq=bq, wk=wk, bk=bk, wv=wv, bv=bv,
        wo=output.reshape(-1, output.shape[-1]),
        bo=weights[f'block_{index}/output_bias'].numpy().astype(np.float64)))
  return blocks


def global_context_on_valid_regions(feature_map, valid_shape, blocks, num_heads,
                                    use_residual=True):
  """The module that ignores padding, by definition: each image's top-left
  valid block alone, refined; every other cell unchanged.

  Args:
    feature_map: (N, H, W, C).
    valid_shape: (N, 2) rows and columns of each image's valid block.
  Returns:
    ((N, H, W, C) output, list of (N, h, HW, HW) weights per block, zero for
    every query or key outside the valid block).
  """
  feature_map = np.asarray(feature_map, np.float64)
  n, height, width, _ = feature_map.shape
  output = feature_map.copy()
  weights = [np.zeros((n, num_heads, height * width, height * width)) for _ in blocks]
  cells = np.arange(height * width).reshape(height, width)
  for index, (rows, columns) in enumerate(np.asarray(valid_shape)):
    rows, columns = min(rows, height), min(columns, width)
    if rows == 0 or columns == 0:
      continue
    refined, block_weights = global_context(
        feature_map[index:index + 1, :rows, :columns], blocks, num_heads, use_residual)
    output[index, :rows, :columns] = refined[0]
    kept = cells[:rows, :columns].reshape(-1)
    for full, block in zip(weights, block_weights):
      full[index][:, kept[:, None], kept[None, :]] = block[0]
  return output, weights


def recording_calls(layer):
  """Records (inputs, outputs) of every call of a Keras layer, in order (as
  NumPy arrays; eager calls only)."""
  calls = []
  call = layer.call

  def recorded(inputs, *args, **kwargs):
    outputs = call(inputs, *args, **kwargs)
    calls.append((inputs.numpy(), outputs.numpy()))
    return outputs

  object.__setattr__(layer, 'call', recorded)
  return calls
