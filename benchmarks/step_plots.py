"""Metric-against-step plots of paired benchmark runs (stock vs GC, several seeds)."""
import statistics

COLOURS = {'stock': 'tab:blue', 'gc': 'tab:red'}


def plot_runs(results, path, title, labels, curve_key, metric, ylabel):
  """One thin line per run, the mean over seeds bold, per model; a PNG at path.

  Args:
    results: [{'model': 'stock' | 'gc', curve_key: [{'step': int, metric: float}]}].
    labels: {model: legend label}, in the order to draw.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  from gc_detection import atomic_files  # pylint: disable=g-import-not-at-top

  figure, axes = pyplot.subplots(figsize=(7, 4.5), dpi=110)
  for model, label in labels.items():
    runs = [run for run in results if run['model'] == model]
    for run in runs:
      axes.plot([m['step'] for m in run[curve_key]], [m[metric] for m in run[curve_key]],
                color=COLOURS[model], alpha=0.35, linewidth=1)
    steps = [m['step'] for m in runs[0][curve_key]]
    mean = [statistics.mean(run[curve_key][i][metric] for run in runs)
            for i in range(len(steps))]
    axes.plot(steps, mean, color=COLOURS[model], linewidth=2.5,
              label=f'{label} (mean of {len(runs)} seed(s))')
  axes.set_xlabel('training step')
  axes.set_ylabel(ylabel)
  axes.set_title(title, fontsize=10)
  axes.grid(alpha=0.3)
  axes.legend()
  figure.tight_layout()
  atomic_files.write_atomically(path, lambda temporary: figure.savefig(temporary,
                                                                        format='png'))
  pyplot.close(figure)
