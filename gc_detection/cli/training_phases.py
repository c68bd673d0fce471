r"""The two phases of the paper's schedule around the stock trainer (scripts/train.sh).

  plan    checks `training_phases` of the pipeline.config's gc_detection
          extension against model_dir, writes the phase-2 config into
          model_dir and prints the plan as shell assignments;
  switch  rewrites model_dir's latest (phase-1) checkpoint without optimizer
          state, so phase 2's optimizer starts as configured.

gc_detection.od_api.training.training_phases explains both. scripts/train.sh
runs them for you:

  python -m gc_detection.cli.training_phases --action=plan \
      --pipeline_config_path=P --model_dir=D [--num_train_steps=N] \
      [--checkpoint_every_n=K]
  python -m gc_detection.cli.training_phases --action=switch \
      --pipeline_config_path=D/pipeline_phase2.config --model_dir=D
"""
from absl import flags

from gc_detection.cli import program
from gc_detection.od_api.training import training_phases

flags.DEFINE_enum('action', None, ['plan', 'switch'], 'What to do. Required.')
flags.DEFINE_string('pipeline_config_path', None, 'pipeline.config of the run. Required.')
flags.DEFINE_string('model_dir', None, 'The run\'s model_dir. Required.')
flags.DEFINE_integer('num_train_steps', None,
                     'Total steps (default: train_config.num_steps).')
flags.DEFINE_integer('checkpoint_every_n', training_phases.DEFAULT_CHECKPOINT_EVERY_N,
                     'The --checkpoint_every_n passed to model_main_tf2.')
FLAGS = flags.FLAGS


def main(argv):
  program.no_arguments(argv)
  program.require('action', 'pipeline_config_path', 'model_dir')
  if FLAGS.action == 'plan':
    print(training_phases.plan(FLAGS.pipeline_config_path, FLAGS.model_dir,
                               FLAGS.num_train_steps,
                               FLAGS.checkpoint_every_n).as_shell())
  else:
    path, step = training_phases.switch(FLAGS.pipeline_config_path, FLAGS.model_dir)
    print(f'phase 2 starts from {path} (step {step}, fresh optimizer state)')


if __name__ == '__main__':
  program.run(main)
