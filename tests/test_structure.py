"""The library's boundaries: it never imports problems/ (problems and benchmarks build on it, not
the other way round), and its comments state rules where they are used, never point elsewhere."""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _library_files():
  for directory, _, names in os.walk(os.path.join(ROOT, "l2l")):
    for name in names:
      if name.endswith(".py"):
        yield os.path.join(directory, name)


def test_the_library_never_imports_problems():
  offenders = []
  for path in _library_files():
    with open(path) as f:
      tree = ast.parse(f.read())
    for node in ast.walk(tree):
      modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                 [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
      if any(m == "problems" or m.startswith("problems.") for m in modules):
        offenders.append(os.path.relpath(path, ROOT))
  assert not offenders


def test_no_comment_points_to_a_document_outside_the_repository():
  for path in _library_files():
    with open(path) as f:
      text = f.read()
    for marker in ("../shared", "DESIGN.md", "SPEC.md", "ivy_semantics"):
      assert marker not in text, (path, marker)
