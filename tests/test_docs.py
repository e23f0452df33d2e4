"""The docs pages: every pointer into docs/paper_details.md names a heading it has; no file names private notes.

Pointers have two forms: `docs/paper_details.md#anchor` (GitHub's heading anchor) and
`(docs/paper_details.md, Heading text)` on one line. A bare mention of the page is fine. "Files" are the tracked
and untracked files that git does not ignore (caches, virtual environments and build outputs are not read).
"""

from __future__ import annotations

import os
import re
import subprocess

from training_helpers import REPO

PAGE = "docs/paper_details.md"
# Generated or third-party trees that no one writes by hand (used only when git cannot list the files).
SKIPPED_DIRS = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".ruff_cache", "build", "dist", "workdirs"}
# Names of private working notes that must never be referred to from the product (split so this file does not
# contain them).
FORBIDDEN = ("REFERENCE" + ".md", "shared" + "/seeds")
POINTER = re.compile(re.escape(PAGE) + r"(?P<rest>#[^\s)\]'\"`>]*|,[^\n]*)?")
SECTION = re.compile(r", (?P<section>[^()\n]+?)\)")


def repo_files() -> list[str]:
  """Repository-relative paths of the tracked and untracked, not ignored, files (all files if git is missing)."""
  try:
    listed = subprocess.run(
      ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
      cwd=REPO,
      stdout=subprocess.PIPE,
      stderr=subprocess.DEVNULL,
      check=True,
      timeout=30,
    ).stdout
    paths = [p for p in listed.decode("utf-8", "surrogateescape").split("\0") if p]
  except (OSError, subprocess.SubprocessError):
    paths = []
    for root, dirs, names in os.walk(REPO):
      dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info"))
      paths += [os.path.relpath(os.path.join(root, name), REPO) for name in names]
  return sorted(p for p in paths if os.path.isfile(os.path.join(REPO, p)))


def read_bytes(path: str) -> bytes:
  with open(os.path.join(REPO, path), "rb") as f:
    return f.read()


def headings(markdown: str) -> list[str]:
  """The text of every ATX heading outside fenced code blocks, in order."""
  found, in_fence = [], False
  for line in markdown.splitlines():
    if line.lstrip().startswith(("```", "~~~")):
      in_fence = not in_fence
    elif not in_fence:
      match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
      if match:
        found.append(match.group(1))
  return found


def github_anchors(titles: list[str]) -> set[str]:
  """GitHub's anchors for the headings: lower case, punctuation dropped, spaces to '-', '-1', '-2' on repeats."""
  anchors, seen = set(), {}
  for title in titles:
    slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
    count = seen.get(slug, 0)
    seen[slug] = count + 1
    anchors.add(slug if count == 0 else f"{slug}-{count}")
  return anchors


def pointer_errors(path: str, text: str, titles: list[str]) -> list[str]:
  """One message per pointer in `text` that names no heading of the page."""
  anchors, errors = github_anchors(titles), []
  for match in POINTER.finditer(text):
    rest = match.group("rest") or ""
    line = text.count("\n", 0, match.start()) + 1
    if rest.startswith("#"):
      rest = rest.rstrip(".,;:")  # sentence punctuation after the link
      if rest[1:] not in anchors:
        errors.append(f"{path}:{line}: {PAGE}{rest} is not an anchor of the page")
    elif rest.startswith(","):
      section = SECTION.match(rest)
      if not section:
        errors.append(f"{path}:{line}: write the pointer as ({PAGE}, Heading) on one line, got {PAGE}{rest!r}")
      elif section.group("section") not in titles:
        errors.append(f"{path}:{line}: {PAGE} has no heading {section.group('section')!r}")
  return errors


def test_the_page_has_a_section_per_paper_and_for_datasets_and_evaluation():
  titles = headings(read_bytes(PAGE).decode("utf-8"))
  for title in ("SSGRL", "RGNet", "LinkNet", "Datasets", "Evaluation"):
    assert title in titles, f"{PAGE} lacks the heading {title!r}"


def test_heading_parser_and_anchors():
  titles = headings("# A\n```\n# not a heading\n```\n## Scene-graph recall\n### VOC 2007 and 2012\n## A\n")
  assert titles == ["A", "Scene-graph recall", "VOC 2007 and 2012", "A"]
  assert github_anchors(titles) == {"a", "a-1", "scene-graph-recall", "voc-2007-and-2012"}


def test_pointer_check_reports_unknown_sections_and_anchors():
  titles = ["SSGRL", "Scene-graph recall"]
  good = f"x ({PAGE}, SSGRL) y {PAGE}#scene-graph-recall and a bare {PAGE}."
  assert pointer_errors("f.py", good, titles) == []
  bad = f"({PAGE}, Nothing)\n{PAGE}#nothing\n({PAGE},\n  SSGRL)"
  errors = pointer_errors("f.py", bad, titles)
  assert len(errors) == 3 and [e.split(":")[1] for e in errors] == ["1", "2", "3"]


def test_every_pointer_into_the_page_names_one_of_its_headings():
  titles = headings(read_bytes(PAGE).decode("utf-8"))
  this_file = os.path.relpath(os.path.abspath(__file__), REPO)
  errors = []
  for path in repo_files():
    if path in (PAGE, this_file):
      continue
    data = read_bytes(path)
    if PAGE.encode() not in data:
      continue
    errors += pointer_errors(path, data.decode("utf-8", "replace"), titles)
  assert not errors, "\n".join(errors)


def test_no_file_names_the_private_notes():
  hits = []
  for path in repo_files():
    data = read_bytes(path)
    hits += [f"{path}: {name}" for name in FORBIDDEN if name.encode() in data]
  assert not hits, "files that mention private notes:\n" + "\n".join(hits)
