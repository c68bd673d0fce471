"""Checks a training pipeline's files before any training step runs.

The stock trainer finds a missing TFRecord, a label map that does not fit
`num_classes` or a bad `fine_tune_checkpoint` late (after building the model,
some only when the first batch is read) and reports it as a TensorFlow stack
trace, or not at all: a label map with more classes than the model has trains
without complaint. gc_detection.od_api.trainer_hooks runs `check_training_pipeline` at the
start of the stock `model_lib_v2.train_loop`; each problem is one
PipelineFileError naming the config field, the file and what was expected.
"""
import tensorflow as tf

from gc_detection import user_errors

PLACEHOLDER = 'PATH_TO_BE_CONFIGURED'
# fine_tune_checkpoint_type -> the top-level object the OD API restores from a
# checkpoint of that type (the models' restore_from_objects).
_CHECKPOINT_ROOTS = {'classification': 'feature_extractor', 'detection': 'model',
                     'full': 'model'}


class PipelineFileError(ValueError, user_errors.UserError):
  """A file named in pipeline.config is missing or does not fit the config."""


def check_input_paths(reader, field):
  """Every input_path pattern of an input reader matches at least one file."""
  patterns = list(reader.tf_record_input_reader.input_path)
  if not patterns:
    raise PipelineFileError(f'{field}.tf_record_input_reader.input_path: no input '
                            'file is configured')
  for pattern in patterns:
    if PLACEHOLDER in pattern:
      raise PipelineFileError(
          f'{field}.tf_record_input_reader.input_path: {pattern!r} still holds '
          f'{PLACEHOLDER}; set it to your TFRecord files (WORKSPACE.md)')
    if not tf.io.gfile.glob(pattern):
      raise PipelineFileError(
          f'{field}.tf_record_input_reader.input_path: no file matches '
          f'{pattern!r} (expected TFRecord files of tf.Examples)')


def _first_record(path, field):
  """The first record of TFRecord file `path` (bytes), or None if it holds none.

  Raises:
    PipelineFileError: path is a directory or not a TFRecord file.
  """
  if tf.io.gfile.isdir(path):
    raise PipelineFileError(
        f'{field}.tf_record_input_reader.input_path: {path!r} is a directory; '
        f'expected TFRecord files (e.g. {path.rstrip("/")}/train-?????-of-000NN)')
  try:
    for record in tf.data.TFRecordDataset(path).take(1):
      return record.numpy()
  except tf.errors.OpError as error:
    first_line = (error.message or str(error)).strip().splitlines()[0]
    raise PipelineFileError(
        f'{field}.tf_record_input_reader.input_path: {path!r} is not a TFRecord '
        f'file ({first_line}); expected TFRecord files of tf.Examples, e.g. '
        'from create_coco_tf_record') from None
  return None


def _check_is_example(record, path, field):
  """The record is a serialized tf.train.Example with an encoded image."""
  try:
    example = tf.train.Example.FromString(record)
  except Exception:  # pylint: disable=broad-except
    example = None
  if example is None or 'image/encoded' not in example.features.feature:
    raise PipelineFileError(
        f'{field}.tf_record_input_reader.input_path: the first record of '
        f'{path!r} is not a tf.train.Example with an image/encoded feature '
        '(the OD API\'s TfExampleDecoder reads only those)')


def check_input_records(reader, field, num_input_pipelines=1):
  """Reads the first record of every input file; training needs some records.

  The stock input pipeline repeats its files forever: if none of them holds a
  record, the trainer spins at full CPU without a word, and a directory or a
  file that is not a TFRecord fails only at the first step. Empty shards
  among full ones are normal (create_coco_tf_record writes a fixed number of
  shards), but every worker must read at least one record.
  """
  from object_detection.protos import input_reader_pb2  # pylint: disable=g-import-not-at-top

  files = []
  for pattern in reader.tf_record_input_reader.input_path:
    files.extend(tf.io.gfile.glob(pattern))
  with_records = set()
  check_example = reader.input_type != input_reader_pb2.TF_SEQUENCE_EXAMPLE
  for path in dict.fromkeys(files):
    record = _first_record(path, field)
    if record is not None:
      with_records.add(path)
      if check_example:
        _check_is_example(record, path, field)
  if not with_records:
    raise PipelineFileError(
        f'{field}.tf_record_input_reader.input_path: the {len(files)} file(s) '
        f'matched ({", ".join(repr(f) for f in files[:3])}'
        f'{", ..." if len(files) > 3 else ""}) hold no record; the trainer would '
        'wait for input forever. Write the TFRecords first (WORKSPACE.md)')
  if num_input_pipelines > 1 and not reader.shuffle:
    # Without shuffling, worker i reads files[i::workers] in glob order
    # (dataset_builder.shard_function_for_context).
    for worker in range(num_input_pipelines):
      if not with_records.intersection(files[worker::num_input_pipelines]):
        raise PipelineFileError(
            f'{field}.tf_record_input_reader.input_path: worker {worker} of '
            f'{num_input_pipelines} would read only empty files '
            f'({", ".join(files[worker::num_input_pipelines])}) and wait for '
            'input forever; spread the records over the shards')


def check_input_shards(reader, field, num_input_pipelines):
  """Every input pipeline (one per worker) gets at least one file.

  The OD API shards the input by file across workers
  (dataset_builder.shard_function_for_context); a worker left without a file
  ends its input at once and the whole job stops with an OutOfRangeError.
  """
  if num_input_pipelines <= 1:
    return
  files = set()
  for pattern in reader.tf_record_input_reader.input_path:
    files.update(tf.io.gfile.glob(pattern))
  if len(files) < num_input_pipelines:
    raise PipelineFileError(
        f'{field}.tf_record_input_reader.input_path: {len(files)} file(s) for '
        f'{num_input_pipelines} workers; the input is split by file, so give at '
        f'least one TFRecord shard per worker (e.g. train-?????-of-000NN)')


def check_label_map(reader, field, num_classes, num_classes_field):
  """The label map exists, parses and its largest id is num_classes."""
  from gc_detection.od_api import label_maps  # pylint: disable=g-import-not-at-top

  path = reader.label_map_path
  if not path:
    return
  try:
    label_map = label_maps.load_label_map(path)
  except label_maps.LabelMapError as error:
    raise PipelineFileError(f'{field}.label_map_path: {error}') from None
  if not label_map.item:
    raise PipelineFileError(f'{field}.label_map_path: {path!r} has no item')
  largest = max(item.id for item in label_map.item)
  if largest != num_classes:
    raise PipelineFileError(
        f'{field}.label_map_path: the largest class id in {path!r} is {largest}, '
        f'but {num_classes_field} is {num_classes}; class ids must run from 1 to '
        f'{num_classes_field} (gaps allowed), so set {num_classes_field}: '
        f'{largest} or fix the label map')


def check_fine_tune_checkpoint(train_config):
  """The fine_tune_checkpoint is a readable TF2 checkpoint of the given type."""
  path = train_config.fine_tune_checkpoint
  if not path:
    return
  field = 'train_config.fine_tune_checkpoint'
  if PLACEHOLDER in path:
    raise PipelineFileError(f'{field}: {path!r} still holds {PLACEHOLDER}; set it '
                            'to a checkpoint prefix or remove the field')
  if tf.io.gfile.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    hint = f'; did you mean {latest!r}?' if latest else ''
    raise PipelineFileError(f'{field}: {path!r} is a directory; expected a '
                            f'checkpoint prefix such as .../ckpt-0{hint}')
  try:
    reader = tf.train.load_checkpoint(path)
  except (tf.errors.OpError, ValueError) as error:
    first_line = str(error).strip().splitlines()[0]
    raise PipelineFileError(
        f'{field}: {path!r} is not a readable TensorFlow checkpoint (expected '
        f'the prefix of <prefix>.index and <prefix>.data-*): {first_line}') from None
  checkpoint_type = train_config.fine_tune_checkpoint_type or 'detection'
  root = _CHECKPOINT_ROOTS.get(checkpoint_type)
  if root is None:
    raise PipelineFileError(
        f'train_config.fine_tune_checkpoint_type: {checkpoint_type!r} is not one of '
        f'{", ".join(sorted(_CHECKPOINT_ROOTS))}')
  roots = sorted({name.split('/')[0] for name in reader.get_variable_to_shape_map()
                  if '/' in name} - {'_CHECKPOINTABLE_OBJECT_GRAPH'})
  if root not in roots:
    other = {'model': 'detection', 'feature_extractor': 'classification'}
    guess = next((other[r] for r in roots if r in other), None)
    hint = (f'; it looks like a {guess!r} checkpoint: set '
            f'fine_tune_checkpoint_type: "{guess}"' if guess else '')
    raise PipelineFileError(
        f'{field}: {path!r} has no "{root}" object, which fine_tune_checkpoint_type '
        f'{checkpoint_type!r} restores (it holds: {", ".join(roots) or "nothing"})'
        f'{hint}')


def check_training_pipeline(configs, num_input_pipelines=1):
  """Runs every check on the dict config_util.get_configs_from_pipeline_file returns.

  `num_input_pipelines` is the number of workers reading input (1 unless
  MultiWorkerMirroredStrategy runs on several hosts).

  Raises:
    PipelineFileError: the first problem found, naming its field.
  """
  model_config = configs['model']
  meta_architecture = model_config.WhichOneof('model')
  if meta_architecture is None:
    raise PipelineFileError(
        'model: pipeline.config defines no model (expected model { faster_rcnn '
        '{ ... } } or model { ssd { ... } }); is the file empty?')
  num_classes = getattr(model_config, meta_architecture).num_classes
  num_classes_field = f'model.{meta_architecture}.num_classes'
  reader = configs['train_input_config']
  check_input_paths(reader, 'train_input_reader')
  check_input_shards(reader, 'train_input_reader', num_input_pipelines)
  check_input_records(reader, 'train_input_reader', num_input_pipelines)
  check_label_map(reader, 'train_input_reader', num_classes, num_classes_field)
  check_fine_tune_checkpoint(configs['train_config'])
