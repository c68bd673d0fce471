"""The benchmarks' shared pieces: BENCHMARKS.md sections, the harness, op profiles.

The benchmarks themselves take an hour and are not run here; what they rest on
is: the section writer that regenerates BENCHMARKS.md, the harness (interleaved
timing, paired ratios and verdicts, child-process memory, the module FLOP count
from shapes, checked against the TF profiler), and the op-time profile reader.
"""
import collections
import os
import statistics
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, 'benchmarks'))
# pylint: disable=g-import-not-at-top,wrong-import-position
import harness
import markdown_report
import step_profile
from gc_detection.layers import GlobalContextAttention
# pylint: enable=g-import-not-at-top,wrong-import-position


def _read(path):
  with open(path, encoding='utf-8') as document:
    return document.read()


def test_replace_section_creates_the_document(tmp_path):
  path = str(tmp_path / 'BENCHMARKS.md')
  markdown_report.replace_section(path, 'first', '## First\n\nrow 1\n')
  assert _read(path) == (f'{markdown_report.DOCUMENT_TITLE}\n\n'
                         f'{markdown_report.DOCUMENT_INTRO}\n\n'
                         '<!-- begin: first -->\n## First\n\nrow 1\n'
                         '<!-- end: first -->\n')


def test_replace_section_rewrites_only_its_own_section(tmp_path):
  path = str(tmp_path / 'BENCHMARKS.md')
  markdown_report.replace_section(path, 'first', 'old first')
  markdown_report.replace_section(path, 'second', 'second body')
  before = _read(path)
  markdown_report.replace_section(path, 'first', 'new first\nover two lines')
  after = _read(path)
  assert after == before.replace('old first', 'new first\nover two lines')
  assert markdown_report.section_text(path, 'first') == 'new first\nover two lines\n'
  assert markdown_report.section_text(path, 'second') == 'second body\n'
  assert markdown_report.section_text(path, 'third') is None
  # A body with regex replacement syntax is written literally.
  markdown_report.replace_section(path, 'second', r'\1 \g<0> $1')
  assert markdown_report.section_text(path, 'second') == '\\1 \\g<0> $1\n'
  assert os.listdir(tmp_path) == ['BENCHMARKS.md']  # no temporary file left


def test_a_renamed_benchmark_replaces_its_former_section_in_place(tmp_path):
  path = str(tmp_path / 'BENCHMARKS.md')
  new_name, former = next(iter(markdown_report.FORMER_NAMES.items()))
  markdown_report.replace_section(path, 'first', 'first body')
  markdown_report.replace_section(path, former, 'old body')
  markdown_report.replace_section(path, 'last', 'last body')
  markdown_report.replace_section(path, new_name, 'new body')
  text = _read(path)
  assert markdown_report.section_text(path, former) is None
  assert markdown_report.section_text(path, new_name) == 'new body\n'
  assert text.index('first body') < text.index('new body') < text.index('last body')
  markdown_report.replace_section(path, new_name, 'newer body')
  assert markdown_report.section_text(path, new_name) == 'newer body\n'


@pytest.mark.parametrize('text', [
    '<!-- begin: first -->\nno end\n',
    'no begin\n<!-- end: first -->\n',
    '<!-- end: first -->\n<!-- begin: first -->\n',
    '<!-- begin: first -->\n<!-- end: first -->\n' * 2,
])
def test_malformed_document_is_refused_and_kept(tmp_path, text):
  path = tmp_path / 'BENCHMARKS.md'
  path.write_text(text)
  with pytest.raises(markdown_report.MalformedReportError,
                     match=r'BENCHMARKS\.md.*<!-- begin: first -->'):
    markdown_report.replace_section(str(path), 'first', 'body')
  assert path.read_text() == text


def test_committed_benchmarks_md_holds_every_generated_section():
  path = os.path.join(REPO_ROOT, 'BENCHMARKS.md')
  for name, command in (('attention', 'benchmarks/attention.py'),
                        ('end_to_end', 'benchmarks/end_to_end.py')):
    body = markdown_report.section_text(path, name)
    assert body is not None, f'BENCHMARKS.md lacks the generated section {name}'
    assert command in body and '| CPU |' in body and '| verdict |' in body


def test_machine_rows_name_the_stack():
  rows = dict(markdown_report.machine_rows())
  assert rows['TensorFlow'].startswith(tf.__version__)
  assert rows['cores usable'].startswith(str(len(os.sched_getaffinity(0))))


@pytest.mark.parametrize('side,channels,heads,layers', [(20, 256, 4, 1),
                                                        (9, 128, 2, 2)])
def test_module_flops_from_shapes_match_the_tf_profiler(side, channels, heads, layers):
  layer = GlobalContextAttention(num_heads=heads, num_layers=layers)
  spec = tf.TensorSpec([1, side, side, channels], tf.float32)
  matmuls = harness.profiled_flops(lambda features: layer(features), spec,
                                   op_types=harness.MATMUL_OP_TYPES)
  every_op = harness.profiled_flops(lambda features: layer(features), spec)
  from_shapes = harness.module_flops(side * side, channels, num_layers=layers).total
  assert matmuls == from_shapes
  # Element-wise ops (bias, scale, softmax, residual) add a few percent.
  assert from_shapes < every_op < 1.1 * from_shapes


def test_paired_ratios_pair_rounds():
  samples = {'stock': [1.0, 2.0, 4.0], 'gc': [1.1, 2.0, 5.0]}
  ratio = harness.paired_ratio(samples['gc'], samples['stock'])
  assert (ratio.median, ratio.low, ratio.high) == pytest.approx((1.1, 1.0, 1.25))


def test_paired_ratio_is_the_median_and_range_of_per_round_ratios():
  rng = np.random.default_rng(0)
  for rounds in (1, 2, 5, 8):
    stock = rng.uniform(1.0, 2.0, rounds)
    gc = stock * rng.uniform(0.9, 1.3, rounds)
    ratio = harness.paired_ratio(list(gc), list(stock))
    assert ratio.median == pytest.approx(np.median(gc / stock))
    assert (ratio.low, ratio.high) == pytest.approx((np.min(gc / stock),
                                                     np.max(gc / stock)))
    assert ratio.rounds == rounds
  # Not the ratio of medians: FRCNN 640 batch 1 in BENCHMARKS.md differed so.
  stock, gc = [1.0, 3.0, 2.0], [1.3, 3.0, 2.1]
  assert harness.paired_ratio(gc, stock).median == pytest.approx(1.05)
  assert statistics.median(gc) / statistics.median(stock) == pytest.approx(1.05)
  assert str(harness.paired_ratio([1.1, 2.4], [1.0, 2.0])) == '1.150 [1.100, 1.200]'
  with pytest.raises(ValueError, match='equally long'):
    harness.paired_ratio([1.0], [1.0, 2.0])


@pytest.mark.parametrize('low,high,at_least,verdict', [
    (1.01, 1.04, False, harness.MET),
    (1.06, 1.20, False, harness.MISSED),
    (0.99, 1.10, False, harness.WITHIN_NOISE),   # straddles 1.05: decides nothing
    (1.05, 1.05, False, harness.MET),            # on the target meets it
    (1.35, 1.60, True, harness.MET),
    (1.00, 1.20, True, harness.MISSED),
    (1.20, 1.40, True, harness.WITHIN_NOISE),
])
def test_ratio_verdict_is_called_only_outside_the_range(low, high, at_least, verdict):
  ratio = harness.PairedRatio(median=(low + high) / 2, low=low, high=high, rounds=5)
  target = 1.3 if at_least else 1.05
  assert harness.ratio_verdict(ratio, target, at_least=at_least) == verdict


@pytest.mark.parametrize('time_share,flop_share,verdict', [
    (0.013, 0.020, harness.MET),     # 0.64x: faster per FLOP than the rest
    (0.001, 0.020, harness.MET),
    (0.030, 0.020, harness.MET),     # exactly 1.5x
    (0.031, 0.020, harness.MISSED),  # slower per FLOP than 1.5x
])
def test_share_verdict_is_one_sided(time_share, flop_share, verdict):
  assert harness.share_verdict(time_share, flop_share, 1.5) == verdict


def test_time_alternately_interleaves_the_rounds():
  order = []
  calls = {name: (lambda name=name: order.append(name)) for name in ('a', 'b')}
  times = harness.time_alternately(calls, rounds=3, warmup=2)
  assert order == ['a', 'a', 'b', 'b'] + ['a', 'b'] * 3
  assert {name: len(seconds) for name, seconds in times.items()} == {'a': 3, 'b': 3}
  assert all(seconds >= 0 for values in times.values() for seconds in values)


def test_module_flops_by_stage():
  flops = harness.module_flops(tokens=100, channels=64, bottleneck_ratio=4, num_layers=2)
  assert flops == harness.ModuleFlops(qkv=2 * 2 * 100 * 64 * 48, scores=2 * 2 * 100**2 * 16,
                                      context=2 * 2 * 100**2 * 16,
                                      output=2 * 2 * 100 * 16 * 64)
  assert flops.total == flops.qkv + flops.scores + flops.context + flops.output


def test_measure_in_child_reports_peak_memory_or_the_failure(tmp_path):
  script = tmp_path / 'child.py'
  script.write_text(
      f'import sys\nsys.path.insert(0, {os.path.join(REPO_ROOT, "benchmarks")!r})\n'
      'import harness\n'
      'if sys.argv[1] == "fail":\n  sys.exit("no luck")\n'
      'block = bytearray(64 * 2**20)\n'
      'harness.child_result(seconds=1.5)\n')
  result = harness.measure_in_child([str(script), 'ok'])
  assert result['seconds'] == 1.5 and result['peak_kib'] > 64 * 1024, result
  assert harness.measure_in_child([str(script), 'fail']) == {
      'error': 'exit status 1 no luck'}


@pytest.mark.parametrize('op_name,group', [
    ('model_3/conv4_block1_1_conv/Conv2D', 'ResNet conv4'),
    ('gradient_tape/model/conv2_block3_2_conv/Conv2D/Conv2DBackpropInput',
     'ResNet conv2'),
    ('model_1/conv1_conv/Conv2D', 'ResNet conv1'),
    ('gradient_tape/model/global_context/MatMul/MatMul_1', 'global_context'),
    ('gradient_tape/ResNet50V1_FPN/global_context/MatMul', 'global_context'),
    ('ResNet50V1_FPN/model/conv5_block3_out/Relu', 'ResNet conv5'),
    ('gradient_tape/ResNet50V1_FPN/FeatureMaps/top_down/smoothing_1_conv/Conv2D',
     'FeatureMaps'),
    ('BatchMultiClassNonMaxSuppression/while/Less', 'BatchMultiClassNonMaxSuppression'),
    ('AddN_3', 'AddN_3'),
])
def test_group_of_names_the_part_of_the_detector(op_name, group):
  assert step_profile.group_of(op_name) == group


def test_op_times_find_a_layers_forward_and_gradient_ops(tmp_path):
  inputs = tf.keras.Input([64])
  hidden = tf.keras.layers.Dense(512, name='wide_probe')(inputs)
  model = tf.keras.Model(inputs, tf.keras.layers.Dense(1, name='narrow_probe')(hidden))
  data = tf.constant(np.random.default_rng(0).normal(size=(256, 64)), tf.float32)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(model(data))
    return tape.gradient(loss, model.trainable_variables)

  step()
  op_times = step_profile.op_times_ms(step, steps=2, log_dir=str(tmp_path))
  assert any(name.startswith('gradient_tape/') for name in op_times)
  groups = step_profile.by_group(op_times)
  assert groups['wide_probe'] > 0 and groups['narrow_probe'] > 0
  assert sum(groups.values()) == pytest.approx(sum(op_times.values()))
  busiest = max(groups, key=groups.get)
  differences = step_profile.largest_differences(groups, collections.Counter(), count=1)
  assert differences == [(busiest, groups[busiest], 0)]


def test_the_padded_inputs_benchmark_counts_the_cells_the_module_attends_to():
  """The paper's 600-1024 resize of the mix, worked by hand: 4:3 -> 600x800
  (38x50 cells at stride 16), 3:4 -> 800x600, 16:9 -> 576x1024 (36x64), 1:1
  -> 600x600 (38x38); a batch of two attends over its common extent."""
  import padded_inputs  # pylint: disable=g-import-not-at-top
  resize = (600, 1024)
  assert [padded_inputs._resized(shape, resize) for shape in padded_inputs.PHOTOS.values()] == [  # pylint: disable=protected-access
      (600, 800), (800, 600), (576, 1024), (600, 600)]
  flops = lambda tokens: harness.module_flops(tokens, 1024).total
  whole, attended = padded_inputs.module_flops_per_image('faster_rcnn_r50', 1, resize, 1.0)
  assert whole == flops(64 * 64)
  assert attended == pytest.approx(
      (flops(38 * 50) + flops(50 * 38) + flops(36 * 64) + flops(38 * 38)) / 4)
  _, attended = padded_inputs.module_flops_per_image('faster_rcnn_r50', 2, resize, 1.0)
  assert attended == pytest.approx((2 * flops(50 * 50) + 2 * flops(38 * 64)) / 4)
