"""The infer command (gc_detection.cli.infer): SavedModel -> COCO results JSON, pictures.

A GC Faster R-CNN (random GLOROT weights, 64 px) is exported once with the
stock exporter_lib_v2. The reference for every detection is the SavedModel's
serving_default signature called directly here, with the pixel conversion
written here. The CLI runs in subprocesses for its exit codes and messages.
"""
import json
import os
import subprocess
import sys
import types

import numpy as np
from object_detection import exporter_lib_v2
from object_detection.builders import model_builder
from object_detection.utils import config_util
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
import pytest
import tensorflow as tf

from conftest import REPO_ROOT
from gc_detection.od_api import detection_inputs
from gc_detection.od_api import detection_outputs
from gc_detection.od_api import detection_run
from gc_detection.od_api import exported_detector
from gc_detection.data import coco_format
from gc_detection.data import image_files
from gc_detection.data import shapes
from gc_detection import atomic_files
from gc_detection.data import tf_example

MODEL_SIZE = 64
CONFIG = os.path.join(REPO_ROOT, 'pipeline_configs',
                      'faster_rcnn_resnet50_v1_gc_600x1024_coco.config')
CLASS_NAMES = list(shapes.SHAPE_COLOURS)
EXIF_ORIENTATION = 274  # the EXIF tag; value 6: rotate 90 degrees clockwise


def _tiny_pipeline(work_dir):
  """The shipped GC R-50 config at 64 px, 2 classes, GLOROT; returns the proto."""
  text = open(CONFIG).read().replace('initialization: BOTTLENECK',
                                     'initialization: GLOROT')
  path = os.path.join(work_dir, 'source.config')
  with open(path, 'w') as out:
    out.write(text)
  configs = config_util.get_configs_from_pipeline_file(path)
  configs = config_util.merge_external_params_with_configs(
      configs, kwargs_dict={'num_classes': len(CLASS_NAMES)})
  frcnn = configs['model'].faster_rcnn
  resizer = frcnn.image_resizer.keep_aspect_ratio_resizer
  resizer.min_dimension = resizer.max_dimension = MODEL_SIZE
  frcnn.first_stage_max_proposals = 8
  frcnn.initial_crop_size = 6
  post = frcnn.second_stage_post_processing.batch_non_max_suppression
  post.max_total_detections = post.max_detections_per_class = 20
  return configs


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
  """The export of a randomly initialised model: work_dir, export_dir, label_map."""
  work_dir = str(tmp_path_factory.mktemp('infer_model'))
  configs = _tiny_pipeline(work_dir)
  tf.keras.utils.set_random_seed(0)
  model = model_builder.build(configs['model'], is_training=False)
  model.predict(*model.preprocess(tf.zeros((1, MODEL_SIZE, MODEL_SIZE, 3))))
  # Random weights saturate the second stage (class logits ~100, box codes that
  # decode to empty boxes): nothing would be detected. Small box-classifier
  # weights give boxes near the proposals with scores near 1/3, all distinct.
  # (By object, not by name: Keras numbers the names of later models.)
  for variable in model._mask_rcnn_box_predictor.variables:  # pylint: disable=protected-access
    variable.assign(variable * 1e-3)
  checkpoint_dir = os.path.join(work_dir, 'checkpoint_in')
  tf.train.Checkpoint(model=model).save(os.path.join(checkpoint_dir, 'ckpt'))
  export_dir = os.path.join(work_dir, 'exported')
  exporter_lib_v2.export_inference_graph(
      'image_tensor', config_util.create_pipeline_proto_from_configs(configs),
      checkpoint_dir, export_dir)
  label_map = os.path.join(work_dir, 'label_map.pbtxt')
  atomic_files.write_text(label_map, tf_example.label_map_text(CLASS_NAMES))
  return types.SimpleNamespace(work_dir=work_dir, export_dir=export_dir,
                               label_map=label_map)


@pytest.fixture(scope='module')
def detector(exported):
  return exported_detector.Detector(
      exported_detector.find_saved_model(exported.export_dir))


# --- reference: the signature called directly, converted here ---------------


def _decoded(path):
  """uint8 (H, W, 3) of a plain RGB JPEG/PNG, without any infer code."""
  return np.asarray(Image.open(path).convert('RGB'))


def _reference(detector, image, score_threshold=0.0):
  """[(score, [x, y, w, h] pixels, class id)] of the signature on image."""
  outputs = detector.signature(input_tensor=tf.constant(image[None]))
  count = int(outputs['num_detections'][0])
  height, width = image.shape[:2]
  found = []
  for box, score, class_id in zip(outputs['detection_boxes'][0, :count].numpy(),
                                  outputs['detection_scores'][0, :count].numpy(),
                                  outputs['detection_classes'][0, :count].numpy()):
    assert np.all((box >= 0) & (box <= 1))  # the OD API clips to the image
    ymin, xmin, ymax, xmax = box
    if score >= score_threshold:
      found.append((float(score), [xmin * width, ymin * height,
                                   (xmax - xmin) * width, (ymax - ymin) * height],
                    int(round(class_id))))
  return found


def _assert_same_detections(entries, reference):
  """entries (JSON dicts of one image) == reference, in any order of ties."""
  assert len(entries) == len(reference) > 0
  got = sorted((e['score'], e['bbox'], e['category_id']) for e in entries)
  want = sorted(reference)
  for (score, bbox, class_id), (ref_score, ref_bbox, ref_class) in zip(got, want):
    assert class_id == ref_class
    assert score == pytest.approx(ref_score, abs=1e-6)
    np.testing.assert_allclose(bbox, ref_bbox, atol=2e-3)


def _by_file(results):
  grouped = {}
  for entry in results:
    grouped.setdefault(entry['file_name'], []).append(entry)
  return grouped


def _leftovers(*directories):
  """Temporary or hidden files left in the directories."""
  return [name for directory in directories for name in os.listdir(directory)
          if name.startswith('.') or name.endswith('.tmp')]


@pytest.fixture(scope='module')
def coco_data(tmp_path_factory):
  """Generated COCO images (96x128 JPEGs) and their instances JSON."""
  root = tmp_path_factory.mktemp('coco')
  images, annotations = str(root / 'images'), str(root / 'instances.json')
  coco_format.write(images, annotations, seed=4, count=3, height=96, width=128)
  return types.SimpleNamespace(images=images, annotations=annotations)


# --- in process -------------------------------------------------------------


def test_results_match_the_signature_called_directly(detector, exported,
                                                     coco_data, tmp_path):
  photo = str(tmp_path / 'photo.png')
  Image.fromarray(shapes.generate(seed=9, count=1, height=70, width=50)[0].image
                  ).save(photo)
  paths = detection_inputs.expand_images([coco_data.images, photo])
  output = str(tmp_path / 'out' / 'results.json')
  category_index = exported_detector.load_category_index(exported.label_map)
  summary = detection_run.run(detector, category_index, paths, output,
                              score_threshold=0.0)
  assert summary.failures == [] and summary.processed == 4
  results = json.load(open(output))
  assert results == summary.results
  grouped = _by_file(results)
  assert sorted(grouped) == ['000000000001.jpg', '000000000002.jpg',
                             '000000000003.jpg', 'photo.png']
  for path in paths:
    entries = grouped[os.path.basename(path)]
    _assert_same_detections(entries, _reference(detector, _decoded(path)))
    # COCO-style stems give the id; other names get the next free one.
    ids = {entry['image_id'] for entry in entries}
    assert ids == {4 if path == photo else int(os.path.basename(path)[:-4])}
    for entry in entries:
      assert entry['category_name'] == CLASS_NAMES[entry['category_id'] - 1]
  assert _leftovers(os.path.dirname(output)) == []


def test_score_threshold_and_max_detections_select_the_best(detector, coco_data,
                                                            tmp_path):
  path = os.path.join(coco_data.images, '000000000001.jpg')
  all_scores = sorted((s for s, _, _ in _reference(detector, _decoded(path))),
                      reverse=True)
  threshold = float(np.median(all_scores))
  _, selected = detection_run.process_image(detector, path, threshold, 100, 4096)
  assert len(selected.scores) == sum(s >= threshold for s in all_scores)
  assert np.all(selected.scores >= threshold)
  _, top = detection_run.process_image(detector, path, 0.0, 2, 4096)
  np.testing.assert_allclose(top.scores, all_scores[:2], atol=1e-6)


def test_the_json_loads_with_pycocotools_and_cocoeval_runs(detector, exported,
                                                          coco_data, tmp_path):
  output = str(tmp_path / 'results.json')
  summary = detection_run.run(
      detector, exported_detector.load_category_index(exported.label_map),
      detection_inputs.expand_images([coco_data.images]), output,
      score_threshold=0.0,
      coco_ids=detection_inputs.read_coco_image_ids(coco_data.annotations))
  assert summary.failures == []
  ground_truth = COCO(coco_data.annotations)
  detections = ground_truth.loadRes(output)
  assert len(detections.getAnnIds()) == len(summary.results) > 0
  evaluation = COCOeval(ground_truth, detections, 'bbox')
  evaluation.evaluate()
  evaluation.accumulate()
  evaluation.summarize()
  assert len(evaluation.stats) == 12


def test_coco_ids_are_looked_up_by_file_name(coco_data, tmp_path):
  ids = detection_inputs.read_coco_image_ids(coco_data.annotations)
  assert ids == {'000000000001.jpg': 1, '000000000002.jpg': 2,
                 '000000000003.jpg': 3}
  assert detection_inputs.assign_image_ids(['x/000000000002.jpg', 'y/other.jpg'],
                                           ids) == [2, None]
  bad = tmp_path / 'bad.json'
  bad.write_text('{"annotations": []}')
  with pytest.raises(detection_inputs.InputError, match='--coco_annotations_file'):
    detection_inputs.read_coco_image_ids(str(bad))


def test_image_ids_without_annotations():
  assert detection_inputs.assign_image_ids(
      ['a/000000000007.jpg', 'b/cat.png', 'c/12.jpg', 'd/000000000007.png',
       'e/dog.jpg']) == [7, 13, 12, 14, 15]
  assert detection_inputs.assign_image_ids(['cat.jpg', 'dog.png']) == [1, 2]


def test_picture_names_are_distinct_and_keep_the_plain_names():
  assert detection_outputs.picture_names(
      ['a/x.jpg', 'b/x.jpg', 'c/x_2.png', 'x.png', 'y.jpg'],
      'png') == ['x.png', 'x_3.png', 'x_2.png', 'x_4.png', 'y.png']
  assert detection_outputs.picture_names(['a/x.jpg'], 'jpg') == ['x.jpg']


def test_expand_images_files_directories_globs_and_commas(tmp_path):
  (tmp_path / 'd').mkdir()
  for name in ('b.JPG', 'a.png', 'c.jpeg', 'notes.txt', 'e.gif'):
    (tmp_path / 'd' / name).write_bytes(b'x')
  one, d = str(tmp_path / 'd' / 'notes.txt'), str(tmp_path / 'd')
  expanded = detection_inputs.expand_images([f'{d},{one}', os.path.join(d, '*.gif'),
                                             os.path.join(d, 'a.png')])
  assert expanded == [os.path.join(d, name) for name in
                      ('a.png', 'b.JPG', 'c.jpeg', 'notes.txt', 'e.gif')]
  for values, message in ((['nothing_here.jpg'], 'nothing_here.jpg'),
                          ([os.path.join(d, '*.bmp')], '*.bmp'),
                          ([str(tmp_path)], 'a directory with no'), ([], 'required')):
    with pytest.raises(detection_inputs.InputError, match='--images') as error:
      detection_inputs.expand_images(values)
    assert message in str(error.value)


def test_find_saved_model_accepts_the_export_or_its_saved_model(exported, tmp_path):
  inner = os.path.join(exported.export_dir, 'saved_model')
  assert exported_detector.find_saved_model(exported.export_dir) == inner
  assert exported_detector.find_saved_model(inner) == inner
  for path, message in ((str(tmp_path), 'no saved_model.pb'),
                        (str(tmp_path / 'missing'), 'no such directory')):
    with pytest.raises(detection_inputs.InputError, match=f'--saved_model_dir: {message}'):
      exported_detector.find_saved_model(path)


def _save(path, array, **options):
  Image.fromarray(array).save(path, **options)
  return str(path)


def test_load_image_converts_every_mode_to_rgb(tmp_path):
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 255, (5, 7, 3), dtype=np.uint8)
  gray = rng.integers(0, 255, (5, 7), dtype=np.uint8)
  sixteen = rng.integers(0, 65535, (5, 7), dtype=np.uint16)
  rgba = np.dstack([rgb, np.full((5, 7), 10, np.uint8)])
  np.testing.assert_array_equal(image_files.load_image(_save(tmp_path / 'g.png', gray)),
                                np.repeat(gray[:, :, None], 3, axis=2))
  np.testing.assert_array_equal(image_files.load_image(_save(tmp_path / 'a.png', rgba)),
                                rgb)  # alpha dropped, colours kept
  np.testing.assert_array_equal(
      image_files.load_image(_save(tmp_path / 's.png', sixteen)),
      np.repeat(np.rint(sixteen / 257.0).astype(np.uint8)[:, :, None], 3, axis=2))
  palette = Image.fromarray(rgb).convert('P')
  palette.save(tmp_path / 'p.png')
  np.testing.assert_array_equal(image_files.load_image(str(tmp_path / 'p.png')),
                                np.asarray(palette.convert('RGB')))
  assert image_files.load_image(_save(tmp_path / 'tiny.png', rgb[:4, :4])).shape == (4, 4, 3)
  # A multi-picture JPEG (as phones write): the first frame.
  Image.fromarray(rgb).save(tmp_path / 'm.jpg', format='MPO', save_all=True,
                            append_images=[Image.fromarray(rgb[::-1])])
  assert Image.open(tmp_path / 'm.jpg').format == 'MPO'
  first = image_files.load_image(str(tmp_path / 'm.jpg')).astype(int)
  assert np.abs(first - rgb).mean() < np.abs(first - rgb[::-1]).mean()


def _exif_rotated_jpeg(path, stored):
  """Saves stored (H, W, 3) as a JPEG whose EXIF says: rotate 90 clockwise."""
  exif = Image.Exif()
  exif[EXIF_ORIENTATION] = 6
  Image.fromarray(stored).save(path, exif=exif.tobytes(), quality=95)
  return str(path)


def test_load_image_applies_the_exif_orientation(tmp_path):
  stored = np.zeros((60, 100, 3), np.uint8)
  stored[:10, :20] = 255  # a white block at the stored top-left
  image = image_files.load_image(_exif_rotated_jpeg(tmp_path / 'r.jpg', stored))
  assert image.shape == (100, 60, 3)
  assert image[:10, -5:].mean() > 200 and image[-10:, :10].mean() < 50  # now top-right


def test_model_input_caps_the_longer_side():
  image = np.zeros((1500, 2000, 3), np.uint8)
  assert detection_inputs.model_input(image, 512).shape == (384, 512, 3)
  assert detection_inputs.model_input(image, 0) is image
  assert detection_inputs.model_input(image, 2000) is image


def test_to_coco_boxes_is_xywh_in_pixels():
  np.testing.assert_allclose(
      detection_outputs.to_coco_boxes(np.array([[0.1, 0.2, 0.5, 1.0]]), height=100,
                                      width=200),
      [[40.0, 10.0, 160.0, 40.0]])


def test_writes_are_atomic(tmp_path):
  output = str(tmp_path / 'results.json')
  detection_outputs.write_json(output, [{'a': 1}])
  with pytest.raises(TypeError):
    detection_outputs.write_json(output, [{'a': {1, 2}}])  # not JSON: fails mid-write
  assert json.load(open(output)) == [{'a': 1}]
  assert _leftovers(str(tmp_path)) == []


# --- the CLI ----------------------------------------------------------------


def _cli(args, timeout=300):
  return subprocess.run([sys.executable, '-m', 'gc_detection.cli.infer'] + args,
                        capture_output=True, text=True, cwd=REPO_ROOT,
                        timeout=timeout, env=dict(os.environ))


def _mixed_inputs(root, coco_images):
  """Writes good and bad inputs under root; returns the --images values."""
  rng = np.random.default_rng(1)
  good, bad, other = root / 'good', root / 'bad', root / 'other'
  for directory in (good, bad, other):
    directory.mkdir()
  scene = shapes.generate(seed=2, count=1, height=80, width=90)[0].image
  _save(good / 'gray.png', scene[:, :, 0])
  _save(good / 'rgba.png', np.dstack([scene, np.full(scene.shape[:2], 128, np.uint8)]))
  _save(good / 'sixteen.png', scene[:, :, 1].astype(np.uint16) * 257)
  _save(good / 'tiny.png', scene[:4, :4])
  _exif_rotated_jpeg(good / 'rotated.jpg', scene[:60, :])  # stored 60x90
  _save(good / 'large.jpg', rng.integers(0, 255, (1500, 2000, 3), dtype=np.uint8))
  # Same name as a COCO image, in another directory.
  _save(other / '000000000001.jpg', scene)
  jpeg = open(os.path.join(coco_images, '000000000002.jpg'), 'rb').read()
  (bad / 'truncated.jpg').write_bytes(jpeg[:len(jpeg) // 2])
  (bad / 'empty.png').write_bytes(b'')
  (bad / 'notes.txt').write_text('not an image\n')
  Image.fromarray(scene).save(bad / 'anim.gif')
  return [f'{coco_images},{good}', str(other / '*.jpg'), str(bad / '*')]


def test_cli_skips_bad_files_processes_the_rest_and_exits_1(
    exported, detector, coco_data, tmp_path):
  values = _mixed_inputs(tmp_path, coco_data.images)
  output = str(tmp_path / 'out' / 'results.json')
  pictures = str(tmp_path / 'pictures')
  result = _cli([f'--saved_model_dir={exported.export_dir}',
                 f'--label_map_path={exported.label_map}',
                 f'--output_json={output}', f'--output_image_dir={pictures}',
                 '--score_threshold=0'] + [f'--images={v}' for v in values])
  assert result.returncode == 1, result.stderr[-3000:]
  skipped = {line.split(': ', 2)[1][len('skipped '):]: line.split(': ', 2)[2]
             for line in result.stderr.splitlines()
             if line.startswith('infer: skipped ')}
  bad = tmp_path / 'bad'
  assert skipped == {
      str(bad / 'anim.gif'): 'unsupported image format GIF (supported: JPEG, PNG)',
      str(bad / 'empty.png'): 'empty file (0 bytes)',
      str(bad / 'notes.txt'): 'not a JPEG or PNG image (its content is no image '
                              'format Pillow recognises)',
      str(bad / 'truncated.jpg'): skipped.get(str(bad / 'truncated.jpg'))}
  assert skipped[str(bad / 'truncated.jpg')].startswith(
      'corrupt or truncated JPEG data (image file is truncated')
  assert '10 images' in result.stdout and '4 skipped' in result.stdout

  sizes = {  # picture name -> (width, height) of the oriented original
      '000000000001.png': (128, 96), '000000000002.png': (128, 96),
      '000000000003.png': (128, 96), 'gray.png': (90, 80), 'rgba.png': (90, 80),
      'sixteen.png': (90, 80), 'tiny.png': (4, 4), 'rotated.png': (60, 90),
      'large.png': (2000, 1500), '000000000001_2.png': (90, 80)}
  assert sorted(os.listdir(pictures)) == sorted(sizes)
  for name, size in sizes.items():
    assert Image.open(os.path.join(pictures, name)).size == size
  assert _leftovers(pictures, os.path.dirname(output)) == []

  grouped = _by_file(json.load(open(output)))
  size_of = {'gray.png': (90, 80), 'rgba.png': (90, 80), 'sixteen.png': (90, 80),
             'tiny.png': (4, 4), 'rotated.jpg': (60, 90), 'large.jpg': (2000, 1500)}
  for name, (width, height) in size_of.items():
    boxes = np.array([entry['bbox'] for entry in grouped[name]])
    assert np.all(boxes[:, 0] + boxes[:, 2] <= width + 1e-3)
    assert np.all(boxes[:, 1] + boxes[:, 3] <= height + 1e-3)
  # The rotated image's boxes are those of the viewer's frame: the signature
  # on the stored pixels turned 90 degrees clockwise here.
  stored = np.asarray(Image.open(tmp_path / 'good' / 'rotated.jpg').convert('RGB'))
  _assert_same_detections(grouped['rotated.jpg'],
                          _reference(detector, np.rot90(stored, k=-1)))
  # Two files named 000000000001.jpg: the COCO one keeps id 1, the other a new id.
  ids = sorted({entry['image_id'] for entry in grouped['000000000001.jpg']})
  assert len(ids) == 2 and ids[0] == 1


def test_cli_exits_0_with_coco_ids_when_every_image_is_read(exported, coco_data,
                                                             tmp_path):
  output = str(tmp_path / 'results.json')
  result = _cli([f'--saved_model_dir={os.path.join(exported.export_dir, "saved_model")}',
                 f'--label_map_path={exported.label_map}',
                 f'--images={os.path.join(coco_data.images, "*.jpg")}',
                 f'--coco_annotations_file={coco_data.annotations}',
                 f'--output_json={output}', '--score_threshold=0',
                 '--max_detections=3'])
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'skipped' not in result.stderr
  results = json.load(open(output))
  assert {entry['image_id'] for entry in results} == {1, 2, 3}
  assert max(len(entries) for entries in _by_file(results).values()) == 3
  COCO(coco_data.annotations).loadRes(output)


def test_cli_usage_errors_exit_2_naming_the_flag(exported, coco_data, tmp_path):
  good = [f'--saved_model_dir={exported.export_dir}',
          f'--label_map_path={exported.label_map}',
          f'--images={coco_data.images}', f'--output_json={tmp_path / "r.json"}']
  bad_label_map = tmp_path / 'bad.pbtxt'
  bad_label_map.write_text('item { idd: 1 }\n')
  cases = (
      ({'saved_model_dir': str(tmp_path / 'nope')}, '--saved_model_dir: no such directory'),
      ({'saved_model_dir': str(tmp_path)}, '--saved_model_dir: no saved_model.pb'),
      ({'label_map_path': str(tmp_path / 'nope.pbtxt')}, '--label_map_path: no such file'),
      ({'label_map_path': str(bad_label_map)}, 'no field named "idd"'),
      ({'images': str(tmp_path / '*.jpg')}, '--images:'),
      ({'images': None}, '--images is required'),
      ({'coco_annotations_file': str(tmp_path / 'x.json')},
       '--coco_annotations_file: no such file'),
      ({'score_threshold': '1.5'}, '--score_threshold=1.5'),
      ({'no_such_flag': '1'}, 'no_such_flag'),
  )
  for change, message in cases:
    args = [arg for arg in good
            if arg.split('=')[0][2:] not in change]
    args += [f'--{name}={value}' for name, value in change.items() if value]
    result = _cli(args, timeout=120)
    assert result.returncode == 2, (change, result.stderr[-2000:])
    assert message in result.stderr, (change, result.stderr[-2000:])
  assert not os.path.exists(tmp_path / 'r.json')


def test_bad_output_paths_are_refused_before_the_first_image(exported, coco_data,
                                                             tmp_path):
  """Before: every image 'skipped: cannot write the picture' and the JSON [],
  or every image processed and then a traceback with no JSON."""
  blocker = tmp_path / 'a_file'
  blocker.write_text('in the way\n')
  (tmp_path / 'results_dir').mkdir()
  good = [f'--saved_model_dir={exported.export_dir}',
          f'--label_map_path={exported.label_map}', f'--images={coco_data.images}']
  cases = (
      ([f'--output_json={tmp_path / "r.json"}',
        f'--output_image_dir={blocker / "pictures"}'],
       f'--output_image_dir: cannot write into {blocker / "pictures"}'),
      ([f'--output_json={blocker / "r.json"}'], f'--output_json: cannot write into {blocker}'),
      ([f'--output_json={tmp_path / "results_dir"}'],
       f'--output_json: {tmp_path / "results_dir"} is a directory'),
  )
  for outputs, message in cases:
    result = _cli(good + outputs, timeout=120)
    assert result.returncode == 2, (outputs, result.stderr[-2000:])
    assert f'infer: error: {message}' in result.stderr, (outputs, result.stderr[-2000:])
    assert 'skipped' not in result.stderr and 'Traceback' not in result.stderr
  assert not os.path.exists(tmp_path / 'r.json')


def test_an_image_too_thin_for_the_resizer_is_skipped_with_the_cause(exported, tmp_path):
  """Before: 'InvalidArgumentError: Graph execution error:' and nothing else."""
  thin = tmp_path / 'thin.png'
  _save(thin, np.full((1, 5000, 3), 200, np.uint8))
  result = _cli([f'--saved_model_dir={exported.export_dir}',
                 f'--label_map_path={exported.label_map}', f'--images={thin}',
                 f'--output_json={tmp_path / "r.json"}'])
  assert result.returncode == 1, result.stderr[-2000:]
  line = next(line for line in result.stderr.splitlines()
              if line.startswith('infer: skipped'))
  assert line == (f'infer: skipped {thin}: the model failed on this image '
          '(InvalidArgumentError: output dimensions must be positive): its resizer '
          'scaled a side of the 1x4096 input to 0 pixels; the aspect ratio is too '
          'extreme for the model (the 1x5000 image was downscaled to 1x4096 by '
          '--max_input_side)'), line
  assert json.load(open(tmp_path / 'r.json')) == []


def test_an_interrupted_run_writes_the_results_it_has(exported, detector, coco_data,
                                                      tmp_path):
  paths = sorted(os.path.join(coco_data.images, name)
                 for name in os.listdir(coco_data.images))
  calls = []

  def interrupted_detector(image):
    calls.append(image.shape)
    if len(calls) == 2:
      raise KeyboardInterrupt
    return detector(image)

  output = str(tmp_path / 'partial.json')
  with pytest.raises(KeyboardInterrupt):
    detection_run.run(interrupted_detector,
                      exported_detector.load_category_index(exported.label_map),
                      paths, output, score_threshold=0)
  written = _by_file(json.load(open(output)))
  assert list(written) == [os.path.basename(paths[0])]
  _assert_same_detections(written[os.path.basename(paths[0])],
                          _reference(detector, _decoded(paths[0])))


def test_infer_script_explains_missing_arguments():
  result = subprocess.run(['bash', os.path.join(REPO_ROOT, 'scripts', 'infer.sh')],
                          capture_output=True, text=True)
  assert result.returncode == 2
  assert ('missing --saved_model_dir --label_map_path --images --output_json'
          in result.stderr)
  assert 'usage: scripts/infer.sh' in result.stderr
  assert os.access(os.path.join(REPO_ROOT, 'scripts', 'infer.sh'), os.X_OK)
