"""Provisioning (jenkins_provision + jenkins_client) against the Jenkins emulator: outcomes, request
counts, dry runs, every error path, and that no secret leaks from any of them."""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Iterator

import jenkins
import pytest
import requests

from jenkins_registry import render
from jenkins_registry.errors import (
    AuthenticationError,
    ConflictError,
    ExitCode,
    JrError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
    UnreachableError,
    UsageError,
)
from jenkins_registry.jenkins_client import JenkinsClient, JenkinsSettings, Reply, connect, jenkins_reason
from jenkins_registry.jenkins_provision import (
    DryRunWriter,
    LiveWriter,
    Provisioner,
    canonical_xml,
    item_path,
    split_folder,
)
from jenkins_registry.job_spec import MANAGED_MARKER, CredentialSpec, JobSpec, PushSpec, ScmSpec
from jenkins_registry.secret_types import Secret
from tests.support.jenkins_emulator import USERNAME_PASSWORD_CLASS, Fault, JenkinsEmulator, iter_job_bodies
from tests.support.services import REGISTRY_PASSWORD, REGISTRY_USER

ADMIN, PASSWORD, TOKEN = "admin", "jenkins-Pa55word-9d2e", "1199aabbccddeeff00112233445566778899"
BAD_TOKEN = "wrong-" + TOKEN
SECRETS = (REGISTRY_PASSWORD, PASSWORD, TOKEN)
CRUMB = "/crumbIssuer/api/json"


@pytest.fixture(autouse=True)
def logs_without_secrets(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test runs with DEBUG logging captured, and no secret may appear in it.

    (CLI tests configure the package logger not to propagate; here caplog must see every record.)
    """
    logger = logging.getLogger("jenkins_registry")
    monkeypatch.setattr(logger, "propagate", True)
    monkeypatch.setattr(logger, "handlers", [])
    caplog.set_level(logging.DEBUG)
    yield
    assert_no_secret(caplog.text)


@pytest.fixture
def emu() -> Iterator[JenkinsEmulator]:
    with JenkinsEmulator(users={ADMIN: (PASSWORD, {TOKEN})}) as emulator:
        emulator.add_user("reader", "reader-pw", {"reader-token"}, can_write=False)
        yield emulator


def client(emu: JenkinsEmulator, secret: str = TOKEN, user: str = ADMIN,
           url: str | None = None) -> JenkinsClient:
    return connect(JenkinsSettings(url=url or emu.url, user=user, token=Secret(secret), timeout=10))


def live(c: JenkinsClient) -> Provisioner:
    return Provisioner(c, LiveWriter(c))


def job_xml(tags: tuple[str, ...] = ("latest",), job_type: str = "pipeline") -> str:
    push = PushSpec(registry="127.0.0.1:8082", image="team/app", tags=tags)
    return render.render_job_xml(JobSpec(job_type=job_type, push=push, credentials_id="reg",  # type: ignore[arg-type]
                                         scm=ScmSpec(url="https://git.example.com/team/app.git")))


def cred(password: str = REGISTRY_PASSWORD, username: str = REGISTRY_USER, scope: str = "GLOBAL",
         description: str = "registry") -> tuple[CredentialSpec, str]:
    spec = CredentialSpec(credential_id="reg", username=username, password=Secret(password),
                          description=description, scope=scope)  # type: ignore[arg-type]
    return spec, render.render_credential_xml(spec)


def sent(emu: JenkinsEmulator) -> list[tuple[str, str, int]]:
    """The requests after the crumb, as (method, path without query, status)."""
    return [(r.method, r.path.split("?")[0], r.status) for r in emu.requests if r.path != CRUMB]


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def error_texts(err: JrError) -> tuple[str, ...]:
    return str(err), err.hint, "".join(traceback.format_exception(err))


# -- jobs -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", [TOKEN, PASSWORD], ids=["api-token", "password"])
def test_job_created_unchanged_updated_with_minimal_requests(emu: JenkinsEmulator, secret: str) -> None:
    p = live(client(emu, secret))
    [change] = p.apply_job(("app",), job_xml())
    assert (change.kind, change.name, change.action) == ("job", "app", "created")
    assert sent(emu) == [("GET", "/job/app/config.xml", 404), ("POST", "/createItem", 200)]

    emu.clear_log()
    [change] = p.apply_job(("app",), job_xml())
    assert change.action == "unchanged" and change.diff == ""
    assert [(r.method, r.path) for r in emu.requests] == [("GET", "/job/app/config.xml")]  # 1 request

    emu.clear_log()
    [change] = p.apply_job(("app",), job_xml(("latest", "v2")))
    assert change.action == "updated"
    assert "+" in change.diff and "--tag v2" in change.diff
    assert sent(emu) == [("GET", "/job/app/config.xml", 200), ("POST", "/job/app/config.xml", 200)]
    assert "--tag v2" in emu.job_xml("app")
    assert [r.auth for r in emu.requests] == [("token" if secret == TOKEN else "password")] * 2


def test_a_new_connection_sees_an_unchanged_job_in_one_request_after_the_crumb(emu: JenkinsEmulator) -> None:
    live(client(emu)).apply_job(("F", "app"), job_xml(("latest",), "freestyle"))
    emu.clear_log()
    [change] = live(client(emu, PASSWORD)).apply_job(("F", "app"), job_xml(("latest",), "freestyle"))
    assert change.action == "unchanged"
    assert [r.path for r in emu.requests] == [CRUMB, "/job/F/job/app/config.xml"]


def test_nested_folders_are_created_top_down_and_checked_once_per_run(emu: JenkinsEmulator) -> None:
    p = live(client(emu))
    changes = p.apply_job(("A", "B", "one"), job_xml())
    assert [(c.kind, c.name, c.action) for c in changes] == [
        ("folder", "A", "created"), ("folder", "A/B", "created"), ("job", "A/B/one", "created")]
    assert emu.item("A/B").class_name == "com.cloudbees.hudson.plugins.folder.Folder"  # type: ignore[union-attr]
    assert MANAGED_MARKER in emu.item("A").description()  # type: ignore[union-attr]
    emu.clear_log()
    p.apply_job(("A", "B", "two"), job_xml())
    assert sent(emu) == [("GET", "/job/A/job/B/job/two/config.xml", 404),
                         ("POST", "/job/A/job/B/createItem", 200)]
    emu.clear_log()
    live(client(emu)).apply_job(("A", "B", "three"), job_xml())  # a new run checks the folder once
    assert sent(emu) == [("GET", "/job/A/job/B/job/three/config.xml", 404),
                         ("GET", "/job/A/job/B/api/json", 200), ("POST", "/job/A/job/B/createItem", 200)]


def test_only_the_missing_folders_are_created(emu: JenkinsEmulator) -> None:
    jenkins.Jenkins(emu.url, ADMIN, TOKEN, timeout=10).create_folder("A")
    changes = live(client(emu)).apply_job(("A", "B", "C", "job"), job_xml())
    assert [c.name for c in changes if c.kind == "folder"] == ["A/B", "A/B/C"]


def test_names_are_quoted_in_urls(emu: JenkinsEmulator) -> None:
    p = live(client(emu))
    assert p.apply_job(("Team Ü", "my app"), job_xml())[-1].action == "created"
    assert emu.item("Team Ü/my app") is not None
    assert item_path(("Team Ü", "my app")) == "job/Team%20%C3%9C/job/my%20app/"
    assert p.apply_job(("Team Ü", "my app"), job_xml())[-1].action == "unchanged"


def test_a_parent_that_is_not_a_folder_is_refused(emu: JenkinsEmulator) -> None:
    live(client(emu)).apply_job(("plain",), job_xml())
    with pytest.raises(UsageError, match="not a folder") as caught:
        live(client(emu)).apply_job(("plain", "child"), job_xml())
    assert_no_secret(*error_texts(caught.value))
    assert not [r for r in emu.requests if r.method == "POST" and "plain/createItem" in r.path]


def test_unowned_job_needs_force(emu: JenkinsEmulator, caplog: pytest.LogCaptureFixture) -> None:
    foreign = job_xml().replace(MANAGED_MARKER, "Hand-made by Alice")
    jenkins.Jenkins(emu.url, ADMIN, TOKEN, timeout=10).create_job("app", foreign)
    emu.clear_log()
    with pytest.raises(ConflictError) as caught:
        live(client(emu)).apply_job(("app",), job_xml())
    assert caught.value.exit_code == ExitCode.CONFLICT and "--force" in caught.value.hint
    assert_no_secret(*error_texts(caught.value))
    assert [r.method for r in emu.requests if r.path != CRUMB] == ["GET"]  # nothing written
    with caplog.at_level(logging.WARNING, logger="jenkins_registry"):
        [change] = live(client(emu)).apply_job(("app",), job_xml(), force=True)
    assert change.action == "updated" and "taking over" in caplog.text
    assert live(client(emu)).apply_job(("app",), job_xml())[0].action == "unchanged"  # ours now


def test_an_identical_unowned_job_is_simply_unchanged(emu: JenkinsEmulator) -> None:
    jenkins.Jenkins(emu.url, ADMIN, TOKEN, timeout=10).create_job("app", job_xml())
    assert live(client(emu)).apply_job(("app",), job_xml())[0].action == "unchanged"


def test_a_job_of_another_type_is_refused_even_with_force(emu: JenkinsEmulator) -> None:
    live(client(emu)).apply_job(("app",), job_xml(job_type="freestyle"))
    with pytest.raises(ConflictError, match="freestyle job, not a pipeline job") as caught:
        live(client(emu)).apply_job(("app",), job_xml(), force=True)
    assert_no_secret(*error_texts(caught.value))
    live(client(emu)).apply_job(("F",), job_xml())  # a job named like the folder we then want
    with pytest.raises(UsageError, match="not a folder"):
        live(client(emu)).apply_job(("F", "x"), job_xml())


# -- comparing job XML ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b"), [
    ("<?xml version='1.0' encoding='UTF-8'?><p><a>x</a></p>",
     '<?xml version="1.1" encoding="UTF-8"?>\n<p>\n  <a>x</a>\n</p>'),
    ("<p><a></a><b/></p>", "<p><a/><b></b></p>"),
    ("<p plugin='workflow-job'><d class='C' plugin='x@1'>t</d></p>",
     "<p plugin='workflow-job@2.0'><d class='C'>t</d></p>"),
    ("<p><s>it's &lt;x&gt; \"q\"</s></p>", "<p><s>it&apos;s &lt;x&gt; &quot;q&quot;</s></p>"),
    ("<p a='1' b='2'/>", "<p b=\"2\" a=\"1\"/>"),
    ("<p><actions/><d/></p>", "<p><actions><x.DeclarativeJobAction plugin='y'/></actions><d/></p>"),
    ("\ufeff<p/>", "<p/>"),
])
def test_canonical_xml_ignores_how_jenkins_writes_it(a: str, b: str) -> None:
    assert canonical_xml(a) == canonical_xml(b)


@pytest.mark.parametrize(("a", "b"), [
    ("<p><s>echo  hi</s></p>", "<p><s>echo hi</s></p>"),
    ("<p><s> x</s></p>", "<p><s>x</s></p>"),
    ("<p><a/><b/></p>", "<p><b/><a/></p>"),
    ("<p><d class='A'/></p>", "<p><d class='B'/></p>"),
    ("<p><x><actions/></x></p>", "<p><x><actions><y/></actions></x></p>"),  # only top-level actions
    ("<p><triggers/></p>", "<p><triggers><t/></triggers></p>"),
])
def test_canonical_xml_keeps_real_differences(a: str, b: str) -> None:
    assert canonical_xml(a) != canonical_xml(b)


def test_canonical_xml_rejects_malformed_text() -> None:
    with pytest.raises(ServerError, match="not well-formed"):
        canonical_xml("<p><unclosed></p>")


def test_jenkins_reserialisation_is_not_a_change(emu: JenkinsEmulator) -> None:
    live(client(emu)).apply_job(("app",), job_xml())
    stored = emu.job_xml("app")
    assert stored.startswith('<?xml version="1.1"') and 'plugin="workflow-job@' in stored
    assert stored != job_xml()  # different text, same configuration
    assert canonical_xml(stored) == canonical_xml(job_xml())


# -- dry run ---------------------------------------------------------------------------------------------


def test_dry_run_only_reads_and_reports_the_same_decisions(emu: JenkinsEmulator) -> None:
    c = client(emu)
    writer = DryRunWriter()
    dry = Provisioner(c, writer)
    changes = dry.apply_job(("A", "B", "app"), job_xml())
    assert [(ch.name, ch.action) for ch in changes] == [
        ("A", "created"), ("A/B", "created"), ("A/B/app", "created")]
    assert "+<flow-definition>" in changes[-1].diff
    assert dry.apply_job(("A", "B", "other"), job_xml())[-1].action == "created"  # planned folders known
    spec, xml = cred()
    change = dry.apply_credential(spec, xml)
    assert (change.action, change.where) == ("created", "the system store")
    assert writer.planned == ["create folder A", "create folder A/B", "create job A/B/app",
                              "create job A/B/other", "create credential reg in the system store"]
    assert {r.method for r in emu.requests} == {"GET"}
    assert emu.item("A") is None and emu.credential("reg") is None

    live(c).apply_job(("A", "B", "app"), job_xml())
    live(c).apply_credential(spec, xml)
    emu.clear_log()
    update = Provisioner(c, DryRunWriter()).apply_job(("A", "B", "app"), job_xml(("v3",)))
    assert update[-1].action == "updated" and "-" in update[-1].diff and "--tag v3" in update[-1].diff
    again = Provisioner(c, DryRunWriter()).apply_credential(*cred(username="someone-else"))
    assert again.action == "updated" and "changed: username" in again.detail
    assert {r.method for r in emu.requests} == {"GET"}
    assert "--tag v3" not in emu.job_xml("A/B/app")
    assert_no_secret(again.detail, update[-1].diff)


# -- credentials ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", [(), ("F",), ("F", "G")], ids=["system", "folder", "nested-folder"])
def test_credential_created_then_updated_in_place(emu: JenkinsEmulator, folder: tuple[str, ...]) -> None:
    p = live(client(emu, PASSWORD))
    if folder:
        p.ensure_folders(folder)
    spec, xml = cred()
    emu.clear_log()
    change = p.apply_credential(spec, xml, folder=folder)
    assert change.action == "created"
    assert len(sent(emu)) == 3 and sent(emu)[-1][0] == "POST"
    stored = emu.credential("reg", "/".join(folder) or None)
    assert stored is not None and stored.field("password") == REGISTRY_PASSWORD
    assert stored.field("usernameSecret") == "false"

    emu.clear_log()
    again = p.apply_credential(spec, xml, folder=folder)
    assert again.action == "updated" and "other fields unchanged" in again.detail
    assert [m for m, _, _ in sent(emu)] == ["GET", "POST"]  # 2 requests: at most 3 for an unchanged one

    rotated, rotated_xml = cred(password="n3w-" + REGISTRY_PASSWORD[::-1], description="rotated")
    changed = p.apply_credential(rotated, rotated_xml, folder=folder)
    assert changed.detail.startswith("changed: description")
    store = emu.store("/".join(folder) or None)
    assert list(store.domains["_"]) == ["reg"]  # never duplicated
    assert store.domains["_"]["reg"].field("password") == "n3w-" + REGISTRY_PASSWORD[::-1]
    if folder:
        assert emu.credential("reg") is None  # the system store is untouched


def test_credential_created_meanwhile_409_is_updated_in_place(emu: JenkinsEmulator) -> None:
    c = client(emu)

    class RacingWriter(LiveWriter):
        def post_xml(self, path: str, xml: str, *, what: str, allow: object = ()) -> int:
            if path.endswith("createCredentials"):  # another seeder wins the race
                requests.post(emu.url + path, data=cred(password="theirs")[1], auth=(ADMIN, TOKEN),
                              headers={"Content-Type": "application/xml"}, timeout=10)
            return super().post_xml(path, xml, what=what, allow=allow)  # type: ignore[arg-type]

    change = Provisioner(c, RacingWriter(c)).apply_credential(*cred())
    assert change.action == "updated"
    assert [(m, s) for m, p, s in sent(emu) if m == "POST"] == [("POST", 200), ("POST", 409), ("POST", 200)]
    assert emu.credential("reg").field("password") == REGISTRY_PASSWORD  # type: ignore[union-attr]


def test_folder_store_refuses_system_scope_before_sending(emu: JenkinsEmulator) -> None:
    with pytest.raises(UsageError, match="GLOBAL") as caught:
        live(client(emu)).apply_credential(*cred(scope="SYSTEM"), folder=("F",))
    assert_no_secret(*error_texts(caught.value))
    assert emu.requests == []
    assert live(client(emu)).apply_credential(*cred(scope="SYSTEM")).action == "created"  # system store: fine


@pytest.mark.parametrize("folder", [(), ("F",)], ids=["system", "folder"])
def test_credentials_plugin_missing_is_not_found_with_a_hint(emu: JenkinsEmulator,
                                                             folder: tuple[str, ...]) -> None:
    jenkins.Jenkins(emu.url, ADMIN, TOKEN, timeout=10).create_folder("F")
    emu.state.credentials_plugin = False
    emu.clear_log()
    with pytest.raises(NotFoundError) as caught:
        live(client(emu)).apply_credential(*cred(), folder=folder)
    assert caught.value.exit_code == ExitCode.NOT_FOUND
    assert "Credentials plugin" in str(caught.value) and "Install the Credentials plugin" in caught.value.hint
    assert {r.method for r in emu.requests} == {"GET"}
    assert_no_secret(*error_texts(caught.value))


def test_missing_folder_for_a_credential_is_not_found(emu: JenkinsEmulator) -> None:
    with pytest.raises(NotFoundError, match="Folder A/B does not exist") as caught:
        live(client(emu)).apply_credential(*cred(), folder=("A", "B"))
    assert emu.item("A") is None  # credentials never create folders
    assert_no_secret(*error_texts(caught.value))


def test_a_credential_folder_that_is_a_job_is_refused(emu: JenkinsEmulator) -> None:
    live(client(emu)).apply_job(("app",), job_xml())
    with pytest.raises(UsageError, match="not a folder") as caught:
        live(client(emu)).apply_credential(*cred(), folder=("app",))
    assert_no_secret(*error_texts(caught.value))


# -- errors ----------------------------------------------------------------------------------------------


def test_bad_token_is_an_authentication_error(emu: JenkinsEmulator, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(AuthenticationError) as caught:
        live(client(emu, BAD_TOKEN)).apply_credential(*cred())
    err = caught.value
    assert err.exit_code == ExitCode.AUTH and emu.url in str(err) and "'admin'" in str(err)
    assert [r.path for r in emu.requests] == [CRUMB]  # the crumb fetch is where a bad login shows
    assert_no_secret(*error_texts(err), caplog.text)
    assert BAD_TOKEN not in "".join(error_texts(err)) + caplog.text


def test_read_only_user_is_permission_denied(emu: JenkinsEmulator) -> None:
    with pytest.raises(PermissionDeniedError) as caught:
        live(client(emu, "reader-token", "reader")).apply_job(("app",), job_xml())
    assert caught.value.exit_code == ExitCode.PERMISSION and "create job app" in str(caught.value)
    assert_no_secret(*error_texts(caught.value))
    with pytest.raises(PermissionDeniedError) as caught:
        live(client(emu, "reader-pw", "reader")).apply_credential(*cred())
    assert "create credential reg in the system store" in str(caught.value)
    assert_no_secret(*error_texts(caught.value))


def test_anonymous_read_refused_is_permission_denied_on_the_crumb(emu: JenkinsEmulator) -> None:
    anonymous = JenkinsClient(jenkins.Jenkins(emu.url, timeout=10), user="anonymous")
    with pytest.raises(PermissionDeniedError, match="fetch a crumb"):
        anonymous.get("api/json", what="read Jenkins")


def test_refused_crumb_is_permission_denied_with_a_hint(emu: JenkinsEmulator) -> None:
    c = client(emu, PASSWORD)
    p = live(c)
    p.apply_job(("app",), job_xml())
    emu.state.sessions.clear()  # the session expired (or a proxy dropped JSESSIONID)
    with pytest.raises(PermissionDeniedError) as caught:
        p.apply_job(("app",), job_xml(("v2",)))
    assert "no valid crumb" in str(caught.value) and "API token" in caught.value.hint
    assert_no_secret(*error_texts(caught.value))


def test_unreachable_jenkins_names_the_url(emu: JenkinsEmulator) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        url = f"http://127.0.0.1:{port}/jenkins/"
        with pytest.raises(UnreachableError) as caught:
            live(client(emu, url=url)).apply_job(("app",), job_xml())
    assert caught.value.exit_code == ExitCode.UNREACHABLE and url in str(caught.value)
    assert "refused" in str(caught.value)
    assert_no_secret(*error_texts(caught.value))


def test_name_jenkins_rejects_shows_its_own_reason(emu: JenkinsEmulator) -> None:
    with pytest.raises(UsageError) as caught:
        live(client(emu)).apply_job(("bad?name",), job_xml())
    assert str(caught.value) == "Jenkins refused to create job bad?name: ‘?’ is an unsafe character"
    assert_no_secret(*error_texts(caught.value))
    emu.state.faults[("POST", "/createItem")] = Fault(
        400, x_error="‘app’ does not match the job name convention pattern [a-z]+-job")
    with pytest.raises(UsageError, match="‘app’ does not match the job name convention"):
        live(client(emu)).apply_job(("app",), job_xml())


def test_x_error_repair() -> None:
    body = "<html><h1>Error</h1><p>A job already exists with the name ‘a&amp;b’</p></html>"
    assert jenkins_reason(Reply(400, body, {"X-Error": "A job already exists with the name ?a&b?"})) \
        == "A job already exists with the name ‘a&b’"
    assert jenkins_reason(Reply(400, body, {"X-Error": "Something else"})) == "Something else"
    utf8_as_latin1 = "‘x’ is an unsafe character".encode().decode("latin-1")
    assert jenkins_reason(Reply(400, "", {"X-Error": utf8_as_latin1})) == "‘x’ is an unsafe character"
    assert jenkins_reason(Reply(400, body, {})) is None


def test_server_errors_do_not_leak_what_was_sent(emu: JenkinsEmulator,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    live(client(emu)).apply_credential(*cred())
    emu.state.faults[("POST", "/credentials/")] = Fault(500, echo_body=True)  # an Oops page quoting the XML
    with pytest.raises(ServerError) as caught:
        live(client(emu, PASSWORD)).apply_credential(*cred())
    assert caught.value.exit_code == ExitCode.SERVER and "HTTP 500" in str(caught.value)
    assert REGISTRY_PASSWORD.encode() in emu.requests[-1].body  # the server did get (and echo) it
    assert_no_secret(*error_texts(caught.value), caplog.text)


def test_job_server_error_is_a_server_error(emu: JenkinsEmulator) -> None:
    live(client(emu)).apply_job(("app",), job_xml())
    emu.state.faults[("POST", "/job/app/config.xml")] = Fault(500)
    with pytest.raises(ServerError, match=r"failed to update job app \(HTTP 500\)") as caught:
        live(client(emu)).apply_job(("app",), job_xml(("v2",)))
    assert_no_secret(*error_texts(caught.value))


def test_no_secret_in_any_job_xml_sent(emu: JenkinsEmulator) -> None:
    p = live(client(emu, PASSWORD))
    p.apply_credential(*cred(), folder=())
    for job_type in ("pipeline", "freestyle"):
        p.apply_job(("F", job_type), job_xml(job_type=job_type))
        p.apply_job(("F", job_type), job_xml(("v2",), job_type=job_type))
    bodies = list(iter_job_bodies(emu.requests))
    assert len(bodies) == 5  # folder + 2 creates + 2 updates
    for body in bodies:
        assert REGISTRY_PASSWORD.encode() not in body and b"<password>" not in body
    for job_type in ("pipeline", "freestyle"):
        assert REGISTRY_PASSWORD not in emu.job_xml(f"F/{job_type}")
    # the credential XML is the one place the password goes, and only to the credential store
    carriers = [r for r in emu.requests if REGISTRY_PASSWORD.encode() in r.body]
    assert [r.path for r in carriers] == ["/credentials/store/system/domain/_/createCredentials"]
    assert USERNAME_PASSWORD_CLASS.encode() in carriers[0].body


def test_settings_and_clients_do_not_show_the_token() -> None:
    settings = JenkinsSettings(url="http://j:8080/", user="u", token=Secret(TOKEN))
    assert TOKEN not in repr(settings) and TOKEN not in str(settings)


def test_split_folder() -> None:
    assert split_folder(None) == () and split_folder("") == ()
    assert split_folder("A/B c") == ("A", "B c")
    for bad in ("/A", "A/", "A//B", " /A"):
        with pytest.raises(UsageError):
            split_folder(bad)
