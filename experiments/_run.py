"""The shared entry point of the experiment scripts: run a sweep file, print its table."""

import argparse
from pathlib import Path

from jaxstyle import sweep

HERE = Path(__file__).parent


def main(doc: str, sweep_file: str, *, by: list[str], curves=("iteration",)) -> None:
  """Parses ``-o RUNDIR``, runs ``sweeps/<sweep_file>`` there, prints the summary table."""
  name = Path(sweep_file).stem
  parser = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog=doc)
  parser.add_argument("-o", "--output", default=f"runs/{name}", help=f"(default: runs/{name})")
  parser.add_argument("--quiet", action="store_true")
  args = parser.parse_args()
  _, records, written = sweep.run_file(HERE / "sweeps" / sweep_file, args.output,
                                       progress=not args.quiet, curves=curves)
  print(sweep.summary(records, by=by))
  print("wrote " + ", ".join(map(str, written)))
