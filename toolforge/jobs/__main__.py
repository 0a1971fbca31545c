"""``python -m toolforge.jobs [--concurrency N]``: the process ``toolforge worker start`` detaches."""

from __future__ import annotations

import argparse
import sys

from toolforge.errors import ToolforgeError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolforge.jobs", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=None)
    opts = parser.parse_args(argv)
    from toolforge.jobs.worker import run_worker

    try:
        run_worker(concurrency=opts.concurrency)
    except ToolforgeError as e:
        print(f"Error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
