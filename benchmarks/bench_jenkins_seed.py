"""Seed N jobs (default 200) into the Jenkins emulator twice: a first run creates them, a second finds
them unchanged. Prints requests per job and the median wall time over several repetitions, next to
a reference measured in the same run: python-jenkins' own `upsert_job` (jenkins-job-builder style:
job_exists, then create_job or reconfig_job; it never compares, so it rewrites every job).

Run from the repository root:  .venv/bin/python benchmarks/bench_jenkins_seed.py [--jobs 200] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jenkins

from jenkins_registry import render
from jenkins_registry.jenkins_client import JenkinsSettings, connect
from jenkins_registry.jenkins_provision import LiveWriter, Provisioner
from jenkins_registry.job_spec import CredentialSpec, JobSpec, JobType, PushSpec, ScmSpec
from jenkins_registry.secret_types import Secret
from tests.support.jenkins_emulator import JenkinsEmulator

USER, TOKEN = "bench", "bench-token-0123456789abcdef"
CRUMB = "/crumbIssuer/api/json"
FOLDER = "seed"


def job_configs(count: int) -> list[tuple[str, str]]:
    jobs = []
    for i in range(count):
        job_type: JobType = "pipeline" if i % 2 == 0 else "freestyle"
        push = PushSpec(registry="10.211.55.6:8082", image=f"team/app-{i:03d}",
                        tags=("latest", "${BUILD_NUMBER}"))
        spec = JobSpec(job_type=job_type, push=push, credentials_id="docker-registry-login",
                       scm=ScmSpec(url=f"https://git.example.com/team/app-{i:03d}.git"))
        jobs.append((f"app-{i:03d}", render.render_job_xml(spec)))
    return jobs


def ours(emu: JenkinsEmulator, jobs: list[tuple[str, str]]) -> list[str]:
    client = connect(JenkinsSettings(url=emu.url, user=USER, token=Secret(TOKEN), timeout=30))
    provisioner = Provisioner(client, LiveWriter(client))
    return [provisioner.apply_job((FOLDER, name), xml)[-1].action for name, xml in jobs]


def reference(emu: JenkinsEmulator, jobs: list[tuple[str, str]]) -> list[str]:
    server = jenkins.Jenkins(emu.url, username=USER, password=TOKEN, timeout=30)
    if emu.item(FOLDER) is None:
        server.create_folder(FOLDER)
    for name, xml in jobs:
        server.upsert_job(f"{FOLDER}/{name}", xml)  # job_exists, then create_job or reconfig_job
    return ["written"] * len(jobs)


def measure(seed: Callable[[JenkinsEmulator, list[tuple[str, str]]], list[str]], jobs: list[tuple[str, str]],
            repeat: int) -> dict[str, tuple[float, float, str]]:
    """For each run (first, second): (requests per job after the crumb, median seconds, actions)."""
    times: dict[str, list[float]] = {"first": [], "second": []}
    per_job: dict[str, float] = {}
    actions: dict[str, str] = {}
    for _ in range(repeat):
        with JenkinsEmulator(users={USER: ("bench-password", {TOKEN})}) as emu:
            for run in ("first", "second"):
                emu.clear_log()
                start = time.perf_counter()
                done = seed(emu, jobs)
                times[run].append(time.perf_counter() - start)
                sent = [r for r in emu.requests if r.path != CRUMB]
                per_job[run] = len(sent) / len(jobs)
                actions[run] = ", ".join(f"{n} {a}" for a, n in sorted(
                    {a: done.count(a) for a in set(done)}.items()))
    return {run: (per_job[run], statistics.median(times[run]), actions[run]) for run in times}


def credential_requests() -> tuple[int, int]:
    spec = CredentialSpec(credential_id="docker-registry-login", username="ci-bot",
                          password=Secret("bench-registry-password"))
    xml = render.render_credential_xml(spec)
    counts = []
    with JenkinsEmulator(users={USER: ("bench-password", {TOKEN})}) as emu:
        for _ in range(2):
            emu.clear_log()
            client = connect(JenkinsSettings(url=emu.url, user=USER, token=Secret(TOKEN), timeout=30))
            Provisioner(client, LiveWriter(client)).apply_credential(spec, xml)
            counts.append(len([r for r in emu.requests if r.path != CRUMB]))
    return counts[0], counts[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    jobs = job_configs(args.jobs)
    mine = measure(ours, jobs, args.repeat)
    ref = measure(reference, jobs, args.repeat)
    print(f"{args.jobs} jobs in folder {FOLDER!r} (half pipeline, half freestyle); median of "
          f"{args.repeat} runs; requests counted by the emulator, after the crumb\n")
    print(f"{'':38} {'requests/job':>12} {'wall s':>8} {'jobs/s':>8}   outcome")
    for run in ("first", "second"):
        for label, result in (("jenkins-registry", mine), ("python-jenkins upsert_job", ref)):
            per_job, seconds, outcome = result[run]
            print(f"{run + ' run, ' + label:38} {per_job:12.2f} {seconds:8.3f} "
                  f"{args.jobs / seconds:8.0f}   {outcome}")
    for run in ("first", "second"):
        print(f"ratio {run} run (jenkins-registry / upsert_job): requests {mine[run][0] / ref[run][0]:.2f}, "
              f"time {mine[run][1] / ref[run][1]:.2f}")
    created, again = credential_requests()
    print(f"credential: {created} requests to create, {again} to re-apply (always updated: the password "
          "cannot be compared)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
