"""Many agents, one registry (the small form of benchmarks/bench_load.py): four `jr-push` processes
at once, two through the engine (`--via export`) and two from `docker save` archives, images
sharing a base layer, through a proxy that fails 5 % of the blob requests; into one repository,
and into two. Every push succeeds or fails with a documented exit code, no tag names an
incomplete image, and every tag pulls back through the engine with its image ID
(tests/support/load.py does the checking).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.support import services
from tests.support.load import (
    MANIFEST_TYPES,
    LoadImage,
    LoadSpec,
    PushJob,
    PushOutcome,
    TagState,
    check_outcomes,
    registry_call,
    registry_state,
    run_load,
)


@pytest.mark.parametrize("repositories", [1, 2], ids=["one-repository", "two-repositories"])
def test_concurrent_pushes_through_failing_blob_requests_leave_only_complete_tags(
        docker_engine: services.DockerEngine, tmp_path: Path, repositories: int) -> None:
    spec = LoadSpec(pushes=4, repositories=repositories, share=0.05, base_bytes=1 << 20,
                    own_bytes=256 << 10, push_timeout=120.0, seed=repositories)
    with services.registry() as registry:
        report = run_load([docker_engine.host], registry, spec, tmp_path, os.environ)
    assert report.problems == [], report.summary()
    assert report.base_shared
    assert {o.job.route for o in report.outcomes} == {"export", "archive"}
    assert report.succeeded >= 1, report.summary()
    # one blob request in each run of twenty fails (the last, partial run perhaps too)
    assert report.injected_total - report.blob_requests // 20 in (0, 1), report.summary()
    assert report.injected_total >= 1, report.summary()
    # each successful push's own tag, and `latest` where one succeeded; each checked and pulled back
    pushed_to = {o.job.repository for o in report.outcomes if o.exit_code == 0}
    assert report.tags_checked == report.succeeded + len(pushed_to)
    assert report.pulled == report.tags_checked


def _outcome(tmp_path: Path, number: int, code: int | None, stderr: str = "") -> PushOutcome:
    image = LoadImage(name=f"img-{number}:1", image_id=f"sha256:{number:064x}", diff_ids=("sha256:base",),
                      engine="unix:///e.sock", archive=None)
    job = PushJob(number=number, route="export", image=image, repository="load/app",
                  tags=(f"b{number}", "latest"))
    temp_dir = tmp_path / f"tmp-{number}"
    temp_dir.mkdir()
    result = {"image_id": image.image_id, "digest": f"sha256:{number + 100:064x}"} if code == 0 else {}
    return PushOutcome(job=job, exit_code=code, seconds=1.0, result=result, stdout="", stderr=stderr,
                       temp_dir=temp_dir)


def _tag(tag: str, number: int) -> TagState:
    return TagState("load/app", tag, f"sha256:{number + 100:064x}", f"sha256:{number:064x}", True)


def test_the_checks_accept_documented_failures_and_flag_everything_else(tmp_path: Path) -> None:
    ok, rejected, crashed, hung = (_outcome(tmp_path, 0, 0), _outcome(tmp_path, 1, 10),
                                   _outcome(tmp_path, 2, 1, "NameError"), _outcome(tmp_path, 3, None))
    complete = [_tag("b0", 0), _tag("latest", 0)]
    assert check_outcomes([ok, rejected], complete, "pw-123") == []
    problems = check_outcomes([ok, rejected, crashed, hung], complete, "pw-123")
    assert [p.split(":")[0] for p in problems] == ["push 2 (export, load/app)", "push 3 (export, load/app)"]
    assert "exit code 1 is not a documented failure" in problems[0]
    assert "time bound" in problems[1]
    # a failed push's tag, a successful push's missing tag, `latest` on an image nobody pushed there
    problems = check_outcomes([ok, rejected], [_tag("b1", 1), _tag("latest", 1)], "pw-123")
    assert len(problems) == 3 and "b0 is not in the registry" in problems[0]
    # the password in an output; an export left in TMPDIR
    (ok.temp_dir / "jr-export-x").mkdir()
    leaky = dataclasses.replace(rejected, stderr="token pw-123")
    problems = check_outcomes([ok, leaky], complete, "pw-123")
    assert ["TMPDIR" in p or "password" in p for p in problems] == [True, True]


def test_a_tag_on_an_image_with_a_missing_blob_is_found() -> None:
    """The registry keeps a manifest whose layer was deleted afterwards: the check reports it."""
    layer, config = b"layer bytes", json.dumps({"rootfs": {"type": "layers", "diff_ids": []}}).encode()
    digests = {data: "sha256:" + hashlib.sha256(data).hexdigest() for data in (layer, config)}
    with services.registry() as registry:
        for data, digest in digests.items():
            status, headers, _ = registry_call(registry, "POST", "/v2/load/bad/blobs/uploads/", body=b"")
            assert status == 202
            location = headers["location"].removeprefix(registry.url)
            separator = "&" if "?" in location else "?"
            status, _, _ = registry_call(registry, "PUT", f"{location}{separator}digest={digest}", body=data)
            assert status == 201
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": MANIFEST_TYPES[0],
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "digest": digests[config], "size": len(config)},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "digest": digests[layer], "size": len(layer)}],
        }).encode()
        status, _, _ = registry_call(registry, "PUT", "/v2/load/bad/manifests/1", body=manifest,
                                     content_type=MANIFEST_TYPES[0])
        assert status == 201
        states, problems, checked = registry_state(registry, "load")
        assert [s.complete for s in states] == [True] and problems == [] and checked == 2
        assert registry_call(registry, "DELETE", f"/v2/load/bad/blobs/{digests[layer]}")[0] == 202
        states, problems, _ = registry_state(registry, "load")
    assert [s.complete for s in states] == [False]
    blob = digests[layer][:19]
    assert problems == [f"load/bad:1: tag on an incomplete image, blob {blob} answers HTTP 404"]
