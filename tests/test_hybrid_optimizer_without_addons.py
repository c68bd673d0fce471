"""Without tensorflow-addons (the tf220 stack) the hybrid optimizer says so, before training."""
import importlib.util
import os

from object_detection import model_lib_v2
import pytest

import tiny_configs

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec('tensorflow_addons') is not None,
    reason='tensorflow-addons is installed (TF 2.15 stack): test_hybrid_optimizer')

HYBRID_BLOCK = ('global_context_optimizer { adam_optimizer { learning_rate { '
                'constant_learning_rate { learning_rate: 0.0001 } } } '
                'use_moving_average: false }')


def test_importing_the_hybrid_optimizer_names_what_is_missing_and_the_alternatives():
  with pytest.raises(ImportError, match='needs tensorflow-addons') as error:
    import gc_detection.od_api.training.hybrid_optimizer  # pylint: disable=g-import-not-at-top,unused-import
  assert 'training_phases' in str(error.value)


def test_the_stock_trainer_refuses_a_hybrid_config_before_building_anything(tmp_path):
  config = tiny_configs.faster_rcnn_gc_training_config(tmp_path, '', extra_block=HYBRID_BLOCK)
  model_dir = str(tmp_path / 'model')
  with pytest.raises(ValueError, match=r'global_context_optimizer: the hybrid optimizer '
                                       r'needs tensorflow-addons.*training_phases'):
    model_lib_v2.train_loop(pipeline_config_path=config, model_dir=model_dir)
  assert not os.path.exists(os.path.join(model_dir, 'checkpoint'))
