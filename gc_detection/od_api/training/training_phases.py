r"""The two-phase schedule of the paper (Adam, then momentum SGD) for the stock trainer.

scripts/train.sh runs the OD API's own model_main_tf2 once per phase, in one
model_dir; `python -m gc_detection.cli.training_phases` does the two things
between and around those runs:

  plan    Reads `training_phases` of the pipeline.config's gc_detection
          extension ([gc_detection.protos.global_context]) and model_dir's
          latest step, checks the numbers, writes the phase-2 config (the same
          pipeline with train_config.optimizer replaced by
          second_phase_optimizer) into model_dir, and prints the plan as
          shell assignments.
  switch  Starts phase 2: restores the latest (phase-1) checkpoint into the
          model and writes it again, at the same step, WITHOUT the optimizer
          state. Without this, the phase-2 trainer would restore phase 1's
          optimizer into phase 2's by name: every hyperparameter and slot
          the two share (`momentum`, `decay`, the `momentum` slot of
          RMSprop and SGD) would silently take phase 1's values instead of
          the phase-2 config's. With no optimizer state in the latest
          checkpoint, phase 2's optimizer starts exactly as configured, from
          the phase-1 weights, and the global step continues.
"""
import dataclasses
import os
import shlex

from gc_detection import atomic_files
from gc_detection import user_errors
from gc_detection.od_api.extension_settings import EXTENSION_NAME
from gc_detection.od_api.training import final_checkpoint
from gc_detection.od_api.training import model_dir_lock

PHASE2_CONFIG = 'pipeline_phase2.config'
PHASE2_MARKER = 'phase2_started'
STEPS_PER_ITERATION = 100  # model_lib_v2's NUM_STEPS_PER_ITERATION
DEFAULT_CHECKPOINT_EVERY_N = 1000  # model_main_tf2's default


class PhaseError(ValueError, user_errors.UserError):
  """The schedule or the model_dir does not allow the requested phase."""


@dataclasses.dataclass(frozen=True)
class Plan:
  """What scripts/train.sh runs.

  phases: 1 (no training_phases in the gc_detection extension) or 2.
  first_phase_steps: the step phase 1 ends at (0 with one phase).
  total_steps: the step training ends at.
  current_step: the latest checkpoint's step in model_dir (0 if none).
  phase1_checkpoint_every_n, phase2_checkpoint_every_n: --checkpoint_every_n
    for each phase: the user's value, or 100 where the user's would not
    write a checkpoint exactly at the phase's last step.
  phase2_config: the phase-2 pipeline.config ('' with one phase).
  phase2_started: the switch checkpoint has been written.
  """
  phases: int
  first_phase_steps: int
  total_steps: int
  current_step: int
  phase1_checkpoint_every_n: int
  phase2_checkpoint_every_n: int
  phase2_config: str
  phase2_started: bool

  def as_shell(self):
    """`name=value` lines, shell-quoted, for `eval` in bash."""
    return '\n'.join(f'{field.name}={shlex.quote(str(int(value) if isinstance(value, bool) else value))}'
                     for field in dataclasses.fields(self)
                     for value in [getattr(self, field.name)])


def _read_pipeline(path):
  """The parsed pipeline.config (pipeline_files.read_pipeline: errors name file,
  line and field)."""
  from gc_detection.od_api import pipeline_files  # pylint: disable=g-import-not-at-top
  try:
    return pipeline_files.read_pipeline(path)
  except pipeline_files.PipelineConfigError as error:
    raise PhaseError(f'--pipeline_config_path: {error}') from None


def phase2_pipeline(pipeline):
  """The phase-2 pipeline: second_phase_optimizer as train_config.optimizer."""
  from gc_detection.protos import global_context_pb2  # pylint: disable=g-import-not-at-top
  phase2 = type(pipeline)()
  phase2.CopyFrom(pipeline)
  extension = phase2.Extensions[global_context_pb2.global_context]
  phase2.train_config.optimizer.CopyFrom(extension.training_phases.second_phase_optimizer)
  extension.ClearField('training_phases')
  return phase2


def plan(pipeline_config_path, model_dir, num_train_steps=None,
         checkpoint_every_n=DEFAULT_CHECKPOINT_EVERY_N):
  """Checks the schedule against model_dir; writes the phase-2 config.

  Raises:
    PhaseError: naming the field or flag whose value does not work.
  """
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  from gc_detection.protos import global_context_pb2  # pylint: disable=g-import-not-at-top
  pipeline = _read_pipeline(pipeline_config_path)
  extension = global_context_pb2.global_context
  total = num_train_steps or pipeline.train_config.num_steps
  current = final_checkpoint.latest_step(model_dir)
  has_phases = (pipeline.HasExtension(extension) and
                pipeline.Extensions[extension].HasField('training_phases'))
  if not has_phases:
    return Plan(1, 0, total, current, checkpoint_every_n, checkpoint_every_n,
                '', False)

  phases = pipeline.Extensions[extension].training_phases
  first = phases.first_phase_steps
  field = f'{EXTENSION_NAME} training_phases'
  if first <= 0 or first % STEPS_PER_ITERATION:
    raise PhaseError(f'{field}.first_phase_steps: must be a positive multiple of '
                     f'{STEPS_PER_ITERATION} (the stock trainer runs '
                     f'{STEPS_PER_ITERATION} steps per iteration of its loop), '
                     f'got {first}')
  if not phases.HasField('second_phase_optimizer'):
    raise PhaseError(f'{field}.second_phase_optimizer: missing; set the phase-2 '
                     'optimizer, e.g. momentum_optimizer { ... }')
  if total <= first:
    raise PhaseError(
        f'train_config.num_steps (or --num_train_steps): {total} must exceed '
        f'{field}.first_phase_steps = {first}, or there is no phase 2')
  if checkpoint_every_n <= 0:
    raise PhaseError(f'--checkpoint_every_n: must be positive, got {checkpoint_every_n}')

  def every_n(start, end):
    # The stock trainer checkpoints at the end of an iteration once
    # checkpoint_every_n steps have passed since it started; a phase must end
    # on a checkpoint.
    if checkpoint_every_n % STEPS_PER_ITERATION or (end - start) % checkpoint_every_n:
      return STEPS_PER_ITERATION
    return checkpoint_every_n

  phase2_path = os.path.join(model_dir, PHASE2_CONFIG)
  os.makedirs(model_dir, exist_ok=True)
  atomic_files.write_text(phase2_path, text_format.MessageToString(phase2_pipeline(pipeline)))
  started = os.path.exists(os.path.join(model_dir, PHASE2_MARKER))
  return Plan(2, first, total, current, every_n(min(current, first), first),
              every_n(max(current, first), total), phase2_path, started)


def switch(pipeline_config_path, model_dir):
  """Rewrites model_dir's latest checkpoint without optimizer state.

  Builds the model from the (phase-2) pipeline.config, restores the latest
  checkpoint's step and weights (every model variable must be found), and
  saves them as the new latest checkpoint, then marks phase 2 as started.

  Returns:
    (the new checkpoint's path, its step).
  Raises:
    PhaseError: model_dir has no checkpoint.
    model_dir_lock.ModelDirInUseError: a trainer is running in model_dir.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  latest = tf.train.latest_checkpoint(model_dir)
  if latest is None:
    raise PhaseError(f'--model_dir: {model_dir} has no checkpoint to start '
                     'phase 2 from; run phase 1 first')
  _read_pipeline(pipeline_config_path)
  with model_dir_lock.ModelDirLock(model_dir, purpose='this training run'):
    return _write_switch_checkpoint(pipeline_config_path, model_dir, latest)


def _write_switch_checkpoint(pipeline_config_path, model_dir, latest):
  """switch() with model_dir locked: the rewritten checkpoint and its step."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from object_detection import inputs  # pylint: disable=g-import-not-at-top
  from object_detection import model_lib_v2  # pylint: disable=g-import-not-at-top
  from object_detection.builders import model_builder  # pylint: disable=g-import-not-at-top
  from object_detection.utils import config_util  # pylint: disable=g-import-not-at-top

  configs = config_util.get_configs_from_pipeline_file(pipeline_config_path)
  train_config = configs['train_config']
  model = model_builder.build(configs['model'], is_training=True)
  dataset = inputs.train_input(train_config, configs['train_input_config'],
                               configs['model'], model=model)
  model_lib_v2._ensure_model_is_built(  # pylint: disable=protected-access
      model, dataset, train_config.unpad_groundtruth_tensors)
  step = tf.Variable(0, dtype=tf.int64, trainable=False, name='global_step')
  checkpoint = tf.train.Checkpoint(step=step, model=model)
  checkpoint.restore(latest).expect_partial().assert_existing_objects_matched()
  # max_to_keep=None: the phase-1 checkpoints stay; the trainer prunes later.
  manager = tf.train.CheckpointManager(checkpoint, model_dir, max_to_keep=None)
  saved = manager.save()
  atomic_files.write_text(os.path.join(model_dir, PHASE2_MARKER),
                    f'phase 2 starts at step {int(step.numpy())} from {latest}; '
                    f'weights without optimizer state in {saved}\n')
  return saved, int(step.numpy())

