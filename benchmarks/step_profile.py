"""Where a training step's time goes: TF profiler op times grouped by layer.

Runs a step function under `tf.profiler.experimental` and reads the trace
(XSpace protobuf) back: every TensorFlow op executed on the host CPU is one
event named "<op name>:<op type>" with its duration. Op times are summed per
op name and averaged over the profiled steps.

Op time is not wall time: with inter-op parallelism two ops can run at once on
a 2-core machine, so the sum over ops exceeds the step's wall time. Shares of
the summed op time are what this module reports.
"""
import collections
import glob
import os
import re
import tempfile

# Scopes that wrap whole networks: the gradient tape, Keras functional models
# (numbered per process) and the SSD feature extractor.
_WRAPPER_SCOPES = re.compile(r'^(gradient_tape|model(_\d+)?|ResNet\d+V1_FPN)$')
# A ResNet layer: conv1, pool1 or conv<stage>_block<b>_...
_RESNET_STAGE = re.compile(r'^(conv\d)_block|^(conv1|pool1)')
MODULE_GROUP = 'global_context'


def op_times_ms(step, steps=3, log_dir=None):
  """{op name: milliseconds per step} over `steps` calls of step().

  The step must already be traced (warmed up): tracing would be profiled too.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=g-import-not-at-top

  log_dir = log_dir or tempfile.mkdtemp(prefix='gc_step_profile_')
  tf.profiler.experimental.start(log_dir)
  try:
    for _ in range(steps):
      step()
  finally:
    tf.profiler.experimental.stop()
  paths = glob.glob(os.path.join(log_dir, '**', '*.xplane.pb'), recursive=True)
  if len(paths) != 1:
    raise RuntimeError(f'expected one profile under {log_dir}, found {paths}')
  space = xplane_pb2.XSpace()
  with open(paths[0], 'rb') as trace:
    space.ParseFromString(trace.read())
  totals = collections.Counter()
  for plane in space.planes:
    if plane.name != '/host:CPU':
      continue
    for line in plane.lines:
      for event in line.events:
        metadata = plane.event_metadata[event.metadata_id]
        # TF ops have the op type as display name and "name:type" as name;
        # executor and Python trace events have neither.
        if metadata.display_name and metadata.name.endswith(':' + metadata.display_name):
          op_name = metadata.name[:-len(metadata.display_name) - 1]
          totals[op_name] += event.duration_ps / 1e9 / steps
  if not totals:
    raise RuntimeError(f'no TensorFlow op events in {paths[0]}')
  return totals


def group_of(op_name):
  """The part of the detector an op belongs to, forward and gradient alike.

  'global_context' for the module, 'ResNet conv<N>' for a ResNet stage,
  otherwise the op's outermost name scope inside the model (for example
  'FirstStageRPNFeatures', 'BatchMultiClassNonMaxSuppression', 'FeatureMaps').
  """
  scopes = op_name.split('/')
  if MODULE_GROUP in scopes:
    return MODULE_GROUP
  while len(scopes) > 1 and _WRAPPER_SCOPES.match(scopes[0]):
    scopes = scopes[1:]
  stage = _RESNET_STAGE.match(scopes[0])
  if stage:
    return f'ResNet {stage.group(1) or "conv1"}'
  return scopes[0]


def by_group(op_times):
  """{group_of(op): milliseconds per step}."""
  groups = collections.Counter()
  for op_name, milliseconds in op_times.items():
    groups[group_of(op_name)] += milliseconds
  return groups


def largest_differences(stock_groups, gc_groups, count=8):
  """[(group, stock ms, GC ms)] of the groups whose time differs most.

  Both arguments are Counters ({group: ms}; a missing group counts 0).
  """
  names = set(stock_groups) | set(gc_groups)
  ranked = sorted(names, key=lambda name: -abs(gc_groups[name] - stock_groups[name]))
  return [(name, stock_groups[name], gc_groups[name]) for name in ranked[:count]]
