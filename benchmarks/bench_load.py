"""Many agents, one registry: sixteen `jr-push` processes at once through a proxy failing 5 % of the
blob requests, and the same pushes with the proxy failing nothing, measured in the same run.

A Jenkins farm: `--engines` agents with a Docker engine (private dockerds on unix sockets, vfs)
push half the images with `jr-push --image … --via export` (two pushes of one repository on one
engine take turns, docs/push.md), and agents without an engine push the other half with
`jr-push --from-archive` (`docker save` archives). Every image is a shared base layer plus one own
layer. Four scenarios per round, each against a fresh registry on 127.0.0.1 (so nothing is
skipped because an earlier run pushed it), faulty and reference interleaved:
  * one repository, every push tagging `bN` and `latest`; 5 % of blob requests failing / none;
  * `--repositories` repositories, round robin; 5 % failing / none.
After each run the driver (tests/support/load.py) checks exit codes, that every tag names a
complete image, that each successful push's tags hold its image ID, and pulls every tag back
through an engine. Prints per scenario the medians over the rounds of pushes per minute (pushes
that exited 0 / wall time from the first start to the last end), of the run's wall time and of
each route's push time; failures injected (counted by the proxy) and survived (injected in runs
where every push exited 0); exit codes; problems found; and the ratio faulty / reference.
Asserts nothing.

    python benchmarks/bench_load.py [--rounds 3] [--pushes 16] [--repositories 4] [--engines 4]

Uses JR_TEST_DOCKER_HOST when set (an existing engine, for every agent), else starts private ones.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import services  # noqa: E402
from tests.support.load import LoadReport, LoadSpec, isolated_environ, run_load  # noqa: E402


@dataclass
class Scenario:
    name: str
    spec: LoadSpec
    reports: list[LoadReport] = field(default_factory=list)

    def median(self, values: list[float]) -> float:
        return statistics.median(values) if values else 0.0

    def per_minute(self) -> float:
        return self.median([r.pushes_per_minute for r in self.reports])

    def line(self) -> str:
        reports = self.reports
        injected = sum(r.injected_total for r in reports)
        survived = sum(r.injected_total for r in reports if r.succeeded == len(r.outcomes))
        codes: collections.Counter[str] = collections.Counter()
        for report in reports:
            codes.update(report.exit_codes())
        ok = sum(r.succeeded for r in reports)
        total = sum(len(r.outcomes) for r in reports)
        return (f"{self.name:30} {self.per_minute():8.1f} "
                f"{self.median([r.wall_seconds for r in reports]):6.1f} "
                f"{self.median([r.median_seconds('export') for r in reports]):8.2f} "
                f"{self.median([r.median_seconds('archive') for r in reports]):9.2f} "
                f"{f'{injected}/{sum(r.blob_requests for r in reports)}':>15} {survived:8d} "
                f"{f'{ok}/{total}':>7}  {dict(sorted(codes.items()))!s:18} "
                f"{sum(len(r.problems) for r in reports):8d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pushes", type=int, default=16)
    parser.add_argument("--repositories", type=int, default=4, help="of the 'several' scenarios")
    parser.add_argument("--engines", type=int, default=4, help="agents with a Docker engine")
    parser.add_argument("--share", type=float, default=0.05, help="of blob requests the proxy fails")
    parser.add_argument("--base-mb", type=float, default=4.0)
    parser.add_argument("--own-mb", type=float, default=1.0)
    args = parser.parse_args()
    rounds = max(1, min(args.rounds, 20))
    base = LoadSpec(pushes=max(2, min(args.pushes, 64)), base_bytes=int(args.base_mb * (1 << 20)),
                    own_bytes=int(args.own_mb * (1 << 20)), push_timeout=600.0)
    several = max(2, args.repositories)
    scenarios = {}
    for repositories in (1, several):
        where = "one repository" if repositories == 1 else f"{repositories} repositories"
        for faulty in (True, False):
            scenarios[(repositories, faulty)] = Scenario(
                f"{where}, {f'{args.share:.0%} failing' if faulty else 'reference'}",
                dataclasses.replace(base, repositories=repositories, share=args.share if faulty else 0.0))
    with tempfile.TemporaryDirectory(prefix="jr-bench-load-") as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        environ = isolated_environ(root, os.environ)
        engines = [stack.enter_context(services.docker_engine()).host for _ in range(max(1, args.engines))]
        print(f"{base.pushes} pushes per run (half --via export over {len(engines)} engines, half "
              f"--from-archive), base {args.base_mb} MB + own {args.own_mb} MB per image; {rounds} rounds",
              flush=True)
        run = 0
        for number in range(rounds):
            keys = list(scenarios)
            if number % 2:  # reference first in odd rounds
                keys = [(r, not faulty) for r, faulty in keys]
            for key in keys:
                scenario = scenarios[key]
                run += 1
                workdir = root / f"run-{run}"
                workdir.mkdir()
                spec = dataclasses.replace(scenario.spec, seed=run)
                with services.registry() as registry:
                    report = run_load(engines, registry, spec, workdir, environ)
                scenario.reports.append(report)
                print(f"round {number + 1}, {scenario.name}: {report.summary()}", flush=True)
                for line in report.failures():
                    print(f"    failed: {line}", flush=True)
                for problem in report.problems[:10]:
                    print(f"    problem: {problem}", flush=True)
    print()
    print(f"medians of {rounds} rounds; faults and pushes summed over the rounds")
    print(f"{'scenario':30} {'push/min':>8} {'wall s':>6} {'export s':>8} {'archive s':>9} "
          f"{'faults/blob req':>15} {'survived':>8} {'ok':>7}  {'exit codes':18} {'problems':>8}")
    for scenario in scenarios.values():
        print(scenario.line())
    for repositories in (1, several):
        failing, reference = (scenarios[(repositories, with_faults)].per_minute()
                              for with_faults in (True, False))
        if reference:
            print(f"pushes per minute, {repositories} repositor{'y' if repositories == 1 else 'ies'}: "
                  f"failing / reference = {failing / reference:.2f}")


if __name__ == "__main__":
    main()
