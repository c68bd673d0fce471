"""The package's layout holds: a pure-Keras core and one adapter per framework.

Walks every module of gc_detection statically (ast: imports anywhere in a
module, lazy ones inside functions included, since the command modules
define absl flags and cannot all be imported into one process) and checks:

- gc_detection.layers, with everything it imports from gc_detection,
  imports neither the OD API (`object_detection`) nor Model Garden
  (`official`);
- outside the OD API adapter (gc_detection.od_api), only the command-line
  programs (gc_detection.cli) and the compiled protos (which extend the OD
  API's pipeline.proto) import `object_detection` or the adapter;
- the OD API adapter does not import Model Garden, nor Model Garden's adapter
  the OD API.

And, in a fresh process, that importing the layer loads neither framework.
"""
import ast
import os

import conftest

PACKAGE = 'gc_detection'
PACKAGE_DIR = os.path.join(conftest.REPO_ROOT, PACKAGE)
FRAMEWORKS = ('object_detection', 'official')


def _module_name(path):
  relative = os.path.relpath(path, conftest.REPO_ROOT)[:-len('.py')]
  parts = relative.split(os.sep)
  if parts[-1] == '__init__':
    parts = parts[:-1]
  return '.'.join(parts)


def _package_modules():
  """{module name: file path} of every .py file of the package."""
  modules = {}
  for directory, _, files in os.walk(PACKAGE_DIR):
    for name in files:
      if name.endswith('.py'):
        path = os.path.join(directory, name)
        modules[_module_name(path)] = path
  return modules


def _imports(module, path):
  """Absolute names of every module `module` imports, anywhere in its source."""
  tree = ast.parse(open(path).read(), path)
  is_package = path.endswith('__init__.py')
  names = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        base = module.split('.')
        base = base[:len(base) - node.level + (1 if is_package else 0)]
        prefix = '.'.join(base + ([node.module] if node.module else []))
      else:
        prefix = node.module
      names.add(prefix)
      names.update(f'{prefix}.{alias.name}' for alias in node.names)
  return names


def _within(name, root):
  return name == root or name.startswith(root + '.')


def _internal_closure(start, imports_of, modules):
  """start and every gc_detection module it reaches through imports."""
  seen, stack = set(), [start]
  while stack:
    module = stack.pop()
    if module in seen:
      continue
    seen.add(module)
    stack.extend(name for name in imports_of[module]
                 if name in modules and name not in seen)
  return seen


def _framework_imports(module_names, imports_of):
  return {(module, name) for module in module_names for name in imports_of[module]
          if any(_within(name, framework) for framework in FRAMEWORKS)}


def test_the_layers_import_no_framework():
  modules = _package_modules()
  imports_of = {module: _imports(module, path) for module, path in modules.items()}
  layers = [module for module in modules if _within(module, f'{PACKAGE}.layers')]
  assert len(layers) >= 3, layers
  reached = set()
  for module in layers:
    reached |= _internal_closure(module, imports_of, modules)
  # The package root only starts the extension watcher (no framework import
  # at module level; checked in a fresh process below).
  reached -= {PACKAGE, f'{PACKAGE}.od_api.startup_hook', f'{PACKAGE}.od_api'}
  assert not any(_within(module, f'{PACKAGE}.od_api') for module in reached), reached
  assert _framework_imports(reached, imports_of) == set()


def test_only_the_adapter_commands_and_protos_import_the_od_api():
  modules = _package_modules()
  imports_of = {module: _imports(module, path) for module, path in modules.items()}
  allowed_roots = tuple(f'{PACKAGE}.{part}' for part in ('od_api', 'cli', 'protos'))
  offenders = set()
  for module, names in imports_of.items():
    if module == PACKAGE or any(_within(module, root) for root in allowed_roots):
      continue
    offenders |= {(module, name) for name in names
                  if _within(name, 'object_detection') or _within(name, f'{PACKAGE}.od_api')}
  assert offenders == set()
  # The rule is not vacuous: the adapter itself does import the OD API.
  assert any(_within(name, 'object_detection')
             for module, names in imports_of.items()
             if _within(module, f'{PACKAGE}.od_api') for name in names)


def test_each_adapter_imports_only_its_framework():
  modules = _package_modules()
  imports_of = {module: _imports(module, path) for module, path in modules.items()}
  crossings = set()
  for module, names in imports_of.items():
    if _within(module, f'{PACKAGE}.od_api'):
      crossings |= {(module, n) for n in names
                    if _within(n, 'official') or _within(n, f'{PACKAGE}.model_garden')}
    if _within(module, f'{PACKAGE}.model_garden'):
      crossings |= {(module, n) for n in names
                    if _within(n, 'object_detection') or _within(n, f'{PACKAGE}.od_api')}
  assert crossings == set()


def test_importing_the_layer_loads_no_framework():
  for autoregister in ('0', '1'):
    result = conftest.run_python(
        'import sys\n'
        'import gc_detection.layers.global_context_attention\n'
        'import gc_detection.layers.global_context_settings\n'
        'import gc_detection.layers.batch_norm_folding\n'
        'loaded = sorted(m for m in sys.modules\n'
        '                if m.split(".")[0] in ("object_detection", "official"))\n'
        'print("LOADED", loaded)\n',
        env={'GC_DETECTION_AUTOREGISTER': autoregister})
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'LOADED []' in result.stdout, (autoregister, result.stdout)
