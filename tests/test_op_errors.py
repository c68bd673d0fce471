"""op_errors.reason: the op's own message out of TensorFlow's error wording.

The errors are real ones, raised by TensorFlow here in the two wordings it
has: inside a tf.function (a SavedModel signature) and eagerly.
"""
import pytest
import tensorflow as tf

from gc_detection import op_errors


def _resize_to_nothing(image):
  return tf.image.resize(image, [0, 4])


@pytest.mark.parametrize('run', [tf.function(_resize_to_nothing), _resize_to_nothing],
                         ids=['graph', 'eager'])
def test_the_reason_is_the_ops_own_message(run):
  with pytest.raises(tf.errors.InvalidArgumentError) as raised:
    run(tf.zeros([1, 8, 8, 3]))
  assert op_errors.reason(raised.value) == (
      'InvalidArgumentError: output dimensions must be positive')
  assert 'Graph execution error' not in op_errors.reason(raised.value)


def test_other_errors_keep_their_message():
  assert op_errors.reason(ValueError('bad value\nsecond line')) == (
      'ValueError: bad value; second line')
  assert op_errors.reason(RuntimeError()) == 'RuntimeError'
