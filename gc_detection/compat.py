"""Compatibility shims between the pinned OD API stack and current TensorFlow.

tf-slim 1.1.0 (its last release) calls `control_flow_ops.case` and
`control_flow_ops.cond`. TensorFlow 2.13 moved them to
`tensorflow.python.ops.control_flow_case` and `tensorflow.python.ops.cond`, so
the OD API's TFRecord decoder (`TfExampleDecoder`, used by the stock trainer
and evaluator) fails with `AttributeError: ... has no attribute 'case'`.
`apply()` puts the two names back on `control_flow_ops`; it edits no installed
file and changes nothing when the names already exist.

NumPy >= 1.24 removed `np.bool`/`np.float`, which the OD API's Pascal VOC and
Open Images metrics still use. No shim is applied for that: COCO metrics are
the supported set (see WORKSPACE.md).
"""

_applied = False


def restore_control_flow_ops_aliases():
  """Re-exports `case` and `cond` on tensorflow's `control_flow_ops` module.

  Returns:
    The names that were added (empty when TensorFlow still has them).
  """
  from tensorflow.python.ops import control_flow_ops  # pylint: disable=g-import-not-at-top

  added = []
  if not hasattr(control_flow_ops, 'case'):
    from tensorflow.python.ops import control_flow_case  # pylint: disable=g-import-not-at-top
    control_flow_ops.case = control_flow_case.case
    added.append('case')
  if not hasattr(control_flow_ops, 'cond'):
    from tensorflow.python.ops import cond  # pylint: disable=g-import-not-at-top
    control_flow_ops.cond = cond.cond
    added.append('cond')
  return added


def apply():
  """Applies every shim once per process; later calls do nothing."""
  global _applied
  if not _applied:
    restore_control_flow_ops_aliases()
    _applied = True
