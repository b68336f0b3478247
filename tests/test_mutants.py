"""tests/mutants.py stays runnable: every mutant's edit still has exactly one site, and the
tests it names exist. A refactor that moves a mutant's line fails here, in the suite, so the
mutant is re-anchored in the same change instead of stopping tests/mutants.py half-way."""

import re
from pathlib import Path

import pytest

from tests import mutants

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("mutant", mutants.MUTANTS, ids=lambda x: x.name)
def test_each_mutant_applies_exactly_once_and_names_existing_tests(mutant):
  source = (ROOT / "jaxstyle" / mutant.file).read_text()
  assert mutants.mutated(mutant, source) != source
  for node in mutant.tests:
    path, _, name = node.partition("::")
    function = re.sub(r"\[.*\]$", "", name)
    assert re.search(rf"^def {re.escape(function)}\(", (ROOT / "tests" / path).read_text(),
                     re.MULTILINE), f"{mutant.name}: no test {node}"


def test_a_mutant_whose_site_is_gone_is_refused():
  gone = mutants.Mutant("gone", "cli.py", (("no such line", "x"),), ())
  with pytest.raises(ValueError, match="expected one 'no such line' in jaxstyle/cli.py, found 0"):
    mutants.mutated(gone, "nothing here")
