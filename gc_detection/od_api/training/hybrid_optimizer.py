"""One optimizer for the global-context module, another for everything else.

Beyond the paper, from its own observation (section 4.5, Table 6): the new,
randomly started attention weights need an adaptive optimizer (momentum SGD
alone diverged), while the pretrained backbone and heads are fine-tuned best
with momentum SGD. Instead of Adam-then-SGD phases, this trains in one phase
with Adam on the module and SGD on the rest, using tensorflow-addons'
MultiOptimizer.

MultiOptimizer pairs variables with optimizers by variable name, collected
when it is constructed; the OD API's trainer builds its optimizer before the
model has run, when the module may not have variables yet (RetinaNet builds
its backbone lazily). So the split is made at the first apply_gradients, from
the variables actually being trained. Both optimizers are tracked children
(`global_context_optimizer`, `other_optimizer`), so their slots are saved in
and restored from the trainer's checkpoints.
"""
import warnings

try:
  with warnings.catch_warnings():
    # Its import announces the end of its development (known; see WORKSPACE.md).
    warnings.filterwarnings('ignore', message=r'[\s\S]*TensorFlow Addons')
    import tensorflow_addons as tfa
except ImportError as error:  # TF >= 2.16 stacks have no tensorflow-addons.
  raise ImportError(
      'global_context_optimizer needs tensorflow-addons (MultiOptimizer), which '
      'supports TensorFlow <= 2.15 and is not installed in this environment. '
      'Use the default stack (scripts/setup.sh) or the two-phase schedule '
      '(training_phases) instead.') from error


class GlobalContextMultiOptimizer(tfa.optimizers.MultiOptimizer):
  """Applies `global_context_optimizer` to a layer's variables, the other to the rest.

  Args:
    global_context_optimizer: a Keras (legacy) optimizer for the variables of
      `global_context_layer`, e.g. Adam.
    other_optimizer: a Keras (legacy) optimizer for every other variable,
      e.g. momentum SGD.
    global_context_layer: the GlobalContextAttention layer (or any layer)
      whose trainable variables go to `global_context_optimizer`.
  """

  def __init__(self, global_context_optimizer, other_optimizer,
               global_context_layer, name='GlobalContextMultiOptimizer'):
    super().__init__(optimizer_specs=[
        {'optimizer': global_context_optimizer, 'weights': []},
        {'optimizer': other_optimizer, 'weights': []}], name=name)
    self._track_trackable(global_context_optimizer, name='global_context_optimizer')
    self._track_trackable(other_optimizer, name='other_optimizer')
    # object.__setattr__: the layer must not become part of the optimizer's
    # checkpoint (it is the model's).
    object.__setattr__(self, '_global_context_layer', global_context_layer)
    object.__setattr__(self, '_split_made', False)

  def _split(self, variables):
    """Assigns each variable's name to one of the two optimizers.

    Raises:
      ValueError: the module has no trainable variables among `variables`, or
        two trained variables share a name (MultiOptimizer matches by name).
    """
    names = [variable.name for variable in variables]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
      raise ValueError('GlobalContextMultiOptimizer matches variables by name, '
                       f'but these names are not unique: {duplicates[:5]}')
    module = {variable.ref() for variable in
              self._global_context_layer.trainable_variables}
    module_names = [variable.name for variable in variables
                    if variable.ref() in module]
    if not module_names:
      raise ValueError(
          'GlobalContextMultiOptimizer: none of the trained variables belongs to '
          f'the layer {self._global_context_layer.name!r}; is it part of the '
          'model and trainable?')
    self.optimizer_specs[0]['weights'] = module_names
    self.optimizer_specs[1]['weights'] = [name for name in names
                                          if name not in module_names]
    object.__setattr__(self, '_split_made', True)

  def apply_gradients(self, grads_and_vars, **kwargs):
    grads_and_vars = list(grads_and_vars)
    if not self._split_made:
      self._split([variable for _, variable in grads_and_vars])
    return super().apply_gradients(grads_and_vars, **kwargs)

  def get_config(self):
    raise NotImplementedError(
        'GlobalContextMultiOptimizer is built by gc_detection.od_api.optimizer_hooks from '
        'pipeline.config; it is not Keras-serialisable.')
