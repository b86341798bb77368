"""Record the outcome of every conformance scenario against a running broker.

    python -m tests.conformance.record --port 5692 --out tests/conformance/rabbitmq.json

``--only NAME`` (repeatable) runs a subset and prints it instead of writing the whole file
unless ``--out`` is given as well.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from .scenarios import SCENARIOS, run_scenario


def record(port: int, names: list[str] | None = None, verbose: bool = False) -> dict[str, dict]:
    """Run the named scenarios (all by default) in name order; results by scenario name."""
    results = {}
    for name in sorted(names or SCENARIOS):
        started = time.monotonic()
        results[name] = run_scenario(name, port)
        if verbose:
            took = time.monotonic() - started
            print(f"{took:6.2f}s {name}", file=sys.stderr)
    return results


def dumps(results: dict[str, dict]) -> str:
    """The canonical JSON text of a results file (sorted keys, indented, newline at end)."""
    return json.dumps(results, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5672)
    parser.add_argument("--out", help="write the results here (default: print them)")
    parser.add_argument("--only", action="append", help="run only this scenario (repeatable)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print timings")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.only or ()) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)}")
    text = dumps(record(args.port, args.only, args.verbose))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
