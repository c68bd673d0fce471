"""Markdown tables: the one writer of every table gc_detection and its benchmarks print."""


def markdown_table(headers, rows, right_aligned=()):
  """A Markdown table, one line per row, without a trailing newline.

  Args:
    headers: the column titles.
    rows: sequences of cells, converted with str().
    right_aligned: indices of the columns to right-align (numbers).

  Raises:
    ValueError: a row has another number of cells than headers.
  """
  for row in rows:
    if len(row) != len(headers):
      raise ValueError(f'a table row has {len(row)} cells for {len(headers)} columns: '
                       f'{list(row)}')
  separator = ['---:' if index in right_aligned else '---' for index in range(len(headers))]
  lines = [_line(headers), _line(separator)]
  lines += [_line(row) for row in rows]
  return '\n'.join(lines)


def _line(cells):
  return '| ' + ' | '.join(str(cell).replace('\n', ' ') for cell in cells) + ' |'
