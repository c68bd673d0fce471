"""The README's main job: one stock training step on generated data."""
import math
import re

from conftest import run_python


def test_one_training_step_of_faster_rcnn_gc_prints_a_finite_loss():
  result = run_python(['-m', 'gc_detection.cli.train_steps', '--num_steps=1'])
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'faster_rcnn_resnet50_gc' in result.stdout
  assert 'global context: GlobalContextSettings(num_heads=4, num_layers=1' in (
      result.stdout)
  step_line, = [l for l in result.stdout.splitlines() if l.startswith('step 1:')]
  losses = {name: float(value)
            for name, value in re.findall(r'([\w/]+)=([^,\s]+)', step_line)}
  assert set(losses) == {
      'RPNLoss/localization_loss', 'RPNLoss/objectness_loss',
      'BoxClassifierLoss/localization_loss',
      'BoxClassifierLoss/classification_loss', 'regularization_loss',
      'total_loss'}
  total = losses.pop('total_loss')
  assert math.isfinite(total) and total > 0
  # The stock step's total is the sum of its terms.
  assert math.isclose(sum(losses.values()), total, rel_tol=1e-3)


def test_a_missing_config_is_named():
  result = run_python(['-m', 'gc_detection.cli.train_steps',
                       '--pipeline_config_path=/nonexistent/pipeline.config'])
  assert result.returncode != 0
  assert '/nonexistent/pipeline.config' in result.stderr
