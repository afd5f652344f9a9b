"""`jr doctor`: a checklist from DNS to push permission, each line with its fix."""

from __future__ import annotations

import argparse
from typing import Any

from jenkins_registry.cli.common import add_common_options, print_checklist, registry_from
from jenkins_registry.cli.help_text import HelpFormatter, epilog
from jenkins_registry.errors import CheckFailedError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "doctor", help="diagnose why a push to a registry fails",
        description="Check, in order: name resolution, TCP reachability, /v2/ over HTTPS and "
        "HTTP, the engine's insecure-registries (for HTTP), the auth scheme, the credentials "
        "(DOCKER_LOGIN_USERNAME/DOCKER_LOGIN_PASSWORD or the OS keyring), push permission (a "
        "blob upload is opened and cancelled), and optionally a local image. Exits 13 when "
        "something blocks a push.",
        epilog=epilog("jr doctor"), formatter_class=HelpFormatter,
    )
    add_common_options(parser)
    parser.add_argument("--registry", metavar="HOST[:PORT]",
                        help="the registry as it starts image names, e.g. 10.211.55.6:8082 "
                        "(default: $JR_REGISTRY)")
    parser.add_argument("--insecure", action="store_true",
                        help="allow the credentials checks over plain HTTP (in clear text) and "
                        "unverified HTTPS to a registry that is not this machine; without it, "
                        "plain HTTP is only probed, never sent credentials")
    parser.add_argument("--image", metavar="NAME",
                        help="a local image to look for; its repository path is the one whose "
                        "push permission is checked (unless --repository)")
    parser.add_argument("--repository", metavar="REPO/PATH",
                        help="the path in the registry whose push permission is checked, e.g. "
                        "team/app (default: --image's path, else a probe name)")
    parser.set_defaults(handler=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    from jenkins_registry.docker_engine import DockerEngine
    from jenkins_registry.doctor import diagnose
    from jenkins_registry.http_transport import ca_bundle_from
    from jenkins_registry.keyring_store import KeyringStore

    clients: list[DockerEngine] = []

    def engine() -> DockerEngine:
        client = DockerEngine.connect(args.environ, timeout=30)
        clients.append(client)
        return client

    try:
        report = diagnose(registry_from(args), ca_bundle=ca_bundle_from(args.environ),
                          environ=args.environ, keyring_store=KeyringStore(), engine=engine,
                          image=args.image, repository=args.repository, insecure=args.insecure)
    finally:
        for client in clients:
            client.close()
    print(f"jr doctor: {report.registry}")
    print_checklist(report.results)
    if not report.ok:
        names = ", ".join(r.name for r in report.failures)
        raise CheckFailedError(f"{len(report.failures)} check(s) block a push: {names}.")
    print("nothing blocks a push")
    return 0
