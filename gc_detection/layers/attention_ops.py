"""Scaled dot-product attention, stage by stage, with an optional key mask.

GlobalContextAttention composes these; the attention benchmark times each
stage.
Queries come pre-scaled by 1/sqrt(d). Pure TensorFlow.
"""
import tensorflow as tf


def attention_scores(query, key):
  """Dot products of pre-scaled queries and keys: (N, h, Lq, d), (N, h, L, d)
  -> (N, h, Lq, L), in the inputs' dtype."""
  return tf.matmul(query, key, transpose_b=True)


def attention_probabilities(scores, key_mask=None):
  """Softmax over keys: (N, h, Lq, L) -> (N, h, Lq, L).

  In float32 for float16 / bfloat16 scores (float64 stays float64).

  Args:
    scores: (N, h, Lq, L).
    key_mask: None, or (N, 1, 1, L) bool (or float, nonzero = kept): the keys
      each image attends to. A left-out key gets probability exactly 0 whatever
      its score (its score is replaced, not offset, so a huge score cannot leak
      through); a query whose keys are all left out gets uniform weights.
  """
  if scores.dtype in (tf.float16, tf.bfloat16):
    scores = tf.cast(scores, tf.float32)
  if key_mask is not None:
    if key_mask.dtype != tf.bool:
      key_mask = tf.not_equal(key_mask, 0)
    scores = tf.where(key_mask, scores, tf.constant(scores.dtype.min, scores.dtype))
  return tf.nn.softmax(scores, axis=-1)


def attended_values(probabilities, value):
  """Weights times values: (N, h, Lq, L), (N, h, L, d) -> (N, h, Lq, d), in
  the values' dtype."""
  return tf.matmul(tf.cast(probabilities, value.dtype), value)


def attention(query, key, value, dropout_rate, seed, key_mask=None,
              return_probabilities=False):
  """Scaled dot-product attention; queries are pre-scaled by 1/sqrt(d).

  Args:
    query: (N, h, Lq, d).
    key, value: (N, h, L, d).
    dropout_rate: dropout on the probabilities when seed is not None.
    seed: int32 (2,) stateless seed, or None for no dropout.
    key_mask: None or (N, 1, 1, L), as attention_probabilities takes it.
    return_probabilities: also return the (N, h, Lq, L) weights (float32, or
      float64 for float64 inputs).

  Returns:
    (N, h, Lq, d) in the inputs' dtype [, probabilities].
  """
  probabilities = attention_probabilities(attention_scores(query, key), key_mask)
  weights = probabilities
  if seed is not None and dropout_rate > 0:
    weights = tf.nn.experimental.stateless_dropout(weights, dropout_rate, seed)
  context = attended_values(weights, value)
  if return_probabilities:
    return context, probabilities
  return context


def chunked_attention(query, key, value, chunk_size, dropout_rate, seed, training,
                      key_mask=None):
  """attention() over `chunk_size` queries at a time: (N, h, L, d) x3 -> (N, h, L, d).

  Only a (N, h, chunk_size, L) slice of scores exists at once; in training
  each chunk's attention is recomputed in the backward pass instead of being
  kept. The result is the same as attention()'s.

  Args:
    query, key, value, dropout_rate, key_mask: as attention() takes them.
    chunk_size: queries per chunk.
    seed: int32 (2,) stateless seed (each chunk gets its own), or None.
    training: recompute each chunk's attention in the backward pass.
  """
  batch, heads, num_tokens = tf.shape(query)[0], tf.shape(query)[1], tf.shape(query)[2]
  head_channels = query.shape[-1]
  num_chunks = (num_tokens + chunk_size - 1) // chunk_size
  padded = tf.pad(query, [[0, 0], [0, 0], [0, num_chunks * chunk_size - num_tokens],
                          [0, 0]])
  chunks = tf.reshape(padded, [batch, heads, num_chunks, chunk_size, head_channels])
  chunks = tf.transpose(chunks, [2, 0, 1, 3, 4])  # (chunks, N, h, chunk, d)
  # The chunk index and the mask (1 kept, 0 left out) travel as float32:
  # tf.recompute_grad watches every argument and warns about other dtypes.
  masks = () if key_mask is None else (tf.cast(key_mask, tf.float32),)

  def attend_chunk(query_chunk, key, value, chunk_index, *mask):
    chunk_seed = None
    if seed is not None:
      chunk_seed = seed + tf.stack([0, tf.cast(chunk_index, tf.int32)])
    return attention(query_chunk, key, value, dropout_rate, chunk_seed,
                     mask[0] if mask else None)

  if training:
    # Keep only each chunk's inputs for the backward pass; the chunk's
    # scores and softmax are recomputed there.
    attend_chunk = tf.recompute_grad(attend_chunk)
  # One chunk at a time: each matmul and softmax already uses every core,
  # and parallel chunks would multiply the peak memory chunking saves.
  outputs = tf.map_fn(
      lambda args: attend_chunk(args[0], key, value, args[1], *masks),
      (chunks, tf.cast(tf.range(num_chunks), tf.float32)),
      parallel_iterations=1,
      fn_output_signature=tf.TensorSpec(
          [query.shape[0], query.shape[1], chunk_size, head_channels], query.dtype))
  outputs = tf.reshape(tf.transpose(outputs, [1, 2, 0, 3, 4]),
                       [batch, heads, num_chunks * chunk_size, head_channels])
  return outputs[:, :, :num_tokens]
