"""The Jenkins emulator itself: it must answer what real Jenkins answers (/work/shared/jenkins-api.md).

Each test drives it with raw `requests` (to see status codes and headers exactly) and with
python-jenkins 1.8.3 (to see that the client we build on behaves against it as the spec says).
"""

from __future__ import annotations

import base64
import re
import socket
from collections.abc import Iterator

import jenkins
import pytest
import requests

from tests.support.jenkins_emulator import (
    FOLDER_CLASS,
    FREESTYLE_CLASS,
    NO_VALID_CRUMB,
    PIPELINE_CLASS,
    USERNAME_PASSWORD_CLASS,
    JenkinsEmulator,
    check_good_name,
    jetty_header_value,
)

ADMIN, PASSWORD, TOKEN = "admin", "admin-Pa55word", "11aa22bb33cc44dd55ee66ff77889900aa"
FREESTYLE = "<project><actions/><description>d</description><disabled>false</disabled></project>"
PIPELINE = ("<?xml version='1.1' encoding='UTF-8'?><flow-definition plugin=\"workflow-job\">"
            "<description>p</description><definition class=\"org.jenkinsci.plugins.workflow.cps."
            "CpsFlowDefinition\"><script>echo 'hi' &amp;&amp; x</script><sandbox>true</sandbox>"
            "</definition></flow-definition>")
XML = {"Content-Type": "application/xml; charset=utf-8"}


def credential_xml(cid: str, password: str = "pw-one", username: str = "ci-bot",  # noqa: S107
                   scope: str = "GLOBAL") -> str:
    return (f"<{USERNAME_PASSWORD_CLASS}><scope>{scope}</scope><id>{cid}</id><description>reg</description>"
            f"<username>{username}</username><password>{password}</password>"
            f"<usernameSecret>false</usernameSecret></{USERNAME_PASSWORD_CLASS}>")


@pytest.fixture
def emu() -> Iterator[JenkinsEmulator]:
    with JenkinsEmulator(users={ADMIN: (PASSWORD, {TOKEN})}) as emulator:
        emulator.add_user("reader", "reader-pw", {"reader-token"}, can_write=False)
        yield emulator


def session(emu: JenkinsEmulator, secret: str = PASSWORD, user: str = ADMIN) -> requests.Session:
    s = requests.Session()
    s.auth = (user, secret)
    return s


def crumbed(emu: JenkinsEmulator, secret: str = PASSWORD, user: str = ADMIN) -> requests.Session:
    """A session holding the JSESSIONID cookie and sending the crumb, as python-jenkins does."""
    s = session(emu, secret, user)
    doc = s.get(emu.url + "crumbIssuer/api/json", timeout=10).json()
    s.headers[doc["crumbRequestField"]] = doc["crumb"]
    return s


def post(s: requests.Session, url: str, body: str) -> requests.Response:
    return s.post(url, data=body, headers=XML, timeout=10)


def server(emu: JenkinsEmulator, secret: str = TOKEN, user: str = ADMIN) -> jenkins.Jenkins:
    return jenkins.Jenkins(emu.url, username=user, password=secret, timeout=10)


# -- authentication (spec §2.1) ------------------------------------------------------------------------


def test_root_answers_with_x_jenkins_header(emu: JenkinsEmulator) -> None:
    resp = session(emu).get(emu.url, timeout=10)
    assert resp.status_code == 200
    assert resp.headers["X-Jenkins"] and resp.headers["X-Jenkins-Session"]
    api = session(emu, TOKEN).get(emu.url + "api/json", timeout=10)
    assert api.status_code == 200 and api.headers["X-Jenkins"]
    assert api.json()["_class"] == "hudson.model.Hudson"
    pj = server(emu)
    assert pj.get_whoami()["id"] == ADMIN  # resolves auth, so get_version then sends it
    assert pj.get_version() == resp.headers["X-Jenkins"]


def test_anonymous_gets_403_not_401(emu: JenkinsEmulator) -> None:
    for path in ("", "api/json", "me/api/json", "crumbIssuer/api/json", "job/x/config.xml"):
        resp = requests.get(emu.url + path, timeout=10)
        assert resp.status_code == 403, path
        assert "WWW-Authenticate" not in resp.headers
    assert requests.get(emu.url, timeout=10).headers["X-Jenkins"]  # still advertised
    with pytest.raises(jenkins.BadHTTPException):
        jenkins.Jenkins(emu.url, timeout=10).get_version()  # spec §5.2: anonymous get_version


def test_anonymous_read_switch_allows_reads_only(emu: JenkinsEmulator) -> None:
    emu.state.anonymous_read = True
    assert requests.get(emu.url + "api/json", timeout=10).status_code == 200
    version = requests.get(emu.url, timeout=10).headers["X-Jenkins"]
    assert jenkins.Jenkins(emu.url, timeout=10).get_version() == version
    anonymous = requests.Session()
    doc = anonymous.get(emu.url + "crumbIssuer/api/json", timeout=10).json()
    resp = anonymous.post(emu.url + "createItem?name=a", data=FREESTYLE, timeout=10,
                          headers={**XML, "Jenkins-Crumb": doc["crumb"]})
    assert resp.status_code == 403 and "anonymous is missing the Job/Create permission" in resp.text
    assert requests.get(emu.url + "me/api/json", timeout=10).status_code == 403


@pytest.mark.parametrize(("user", "secret"), [(ADMIN, "wrong"), ("nobody", PASSWORD), (ADMIN, "")])
def test_bad_credentials_get_401_with_basic_challenge(emu: JenkinsEmulator, user: str, secret: str) -> None:
    for method, path in (("GET", ""), ("GET", "crumbIssuer/api/json"), ("POST", "createItem?name=x")):
        resp = requests.request(method, emu.url + path, auth=(user, secret), timeout=10)
        assert resp.status_code == 401, (method, path)
        assert resp.headers["WWW-Authenticate"] == 'Basic realm="Jenkins"'
    with pytest.raises(jenkins.JenkinsException, match=r"\[401\]"):
        server(emu, secret, user).get_whoami()  # fails on the crumb fetch, before its own request
    assert [r.path for r in emu.requests][-1] == "/crumbIssuer/api/json"


def test_password_and_token_both_authenticate(emu: JenkinsEmulator) -> None:
    assert server(emu, PASSWORD).get_whoami()["id"] == ADMIN
    assert server(emu, TOKEN).get_whoami()["id"] == ADMIN
    kinds = {(r.path, r.auth) for r in emu.requests}
    assert ("/me/api/json?depth=0", "password") in kinds and ("/me/api/json?depth=0", "token") in kinds
    assert all("Authorization" not in r.headers for r in emu.requests)


# -- crumbs (spec §2.2) --------------------------------------------------------------------------------


def test_crumb_issuer_document_and_session_cookie(emu: JenkinsEmulator) -> None:
    resp = session(emu).get(emu.url + "crumbIssuer/api/json", timeout=10)
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["_class"] == "hudson.security.csrf.DefaultCrumbIssuer"
    assert doc["crumbRequestField"] == "Jenkins-Crumb" and re.fullmatch(r"[0-9a-f]{64}", doc["crumb"])
    assert re.fullmatch(r"JSESSIONID\.[0-9a-f]{8}=[^;]+; Path=/; HttpOnly", resp.headers["Set-Cookie"])


def test_password_post_needs_crumb_bound_to_user_and_session(emu: JenkinsEmulator) -> None:
    plain = session(emu)
    resp = plain.post(emu.url + "createItem?name=a", data=FREESTYLE, headers=XML, timeout=10)
    assert resp.status_code == 403 and NO_VALID_CRUMB in resp.text

    good = crumbed(emu)
    assert post(good, emu.url + "createItem?name=a", FREESTYLE).status_code == 200

    # The same crumb without the session cookie is refused (SECURITY-626).
    no_cookie = session(emu)
    no_cookie.headers["Jenkins-Crumb"] = good.headers["Jenkins-Crumb"]
    assert no_cookie.post(emu.url + "createItem?name=b", data=FREESTYLE, headers=XML,
                          timeout=10).status_code == 403
    # Another user's crumb and cookie are refused for this user.
    other = crumbed(emu, "reader-pw", "reader")
    mixed = session(emu)
    mixed.cookies.update(other.cookies)
    mixed.headers["Jenkins-Crumb"] = other.headers["Jenkins-Crumb"]
    assert post(mixed, emu.url + "createItem?name=b", FREESTYLE).status_code == 403
    # A crumb given as a request parameter works too.
    param = session(emu)
    param.cookies.update(good.cookies)
    assert param.post(emu.url + "createItem?name=c&Jenkins-Crumb=" + str(good.headers["Jenkins-Crumb"]),
                      data=FREESTYLE, headers=XML, timeout=10).status_code == 200


def test_token_post_needs_no_crumb_and_get_delete_are_never_checked(emu: JenkinsEmulator) -> None:
    token = session(emu, TOKEN)
    assert post(token, emu.url + "createItem?name=a", FREESTYLE).status_code == 200
    assert token.post(emu.url + "credentials/store/system/domain/_/createCredentials",
                      data=credential_xml("c"), headers=XML, timeout=10).status_code == 200
    plain = session(emu)  # password, no crumb
    assert plain.get(emu.url + "job/a/config.xml", timeout=10).status_code == 200
    assert plain.delete(emu.url + "credentials/store/system/domain/_/credential/c/config.xml",
                        timeout=10).status_code == 200


def test_python_jenkins_password_login_keeps_cookie_and_crumb(emu: JenkinsEmulator) -> None:
    pj = server(emu, PASSWORD)
    pj.create_job("a", FREESTYLE)
    pj.reconfig_job("a", FREESTYLE.replace(">d<", ">e<"))
    posts = [r for r in emu.requests if r.method == "POST"]
    assert posts and all(r.status == 200 and "Jenkins-Crumb" in r.headers and "Cookie" in r.headers
                         for r in posts)
    assert ">e<" in pj.get_job_config("a")


def test_csrf_disabled_means_no_crumb_issuer(emu: JenkinsEmulator) -> None:
    emu.state.csrf_enabled = False
    assert session(emu).get(emu.url + "crumbIssuer/api/json", timeout=10).status_code == 404
    pj = server(emu, PASSWORD)
    pj.create_job("a", FREESTYLE)
    assert pj.crumb is False
    # (python-jenkins writes the crumb into its module-level DEFAULT_HEADERS dict, so a crumb from an
    # earlier Jenkins object may still ride along here; Jenkins ignores it when protection is off.)
    assert [r.status for r in emu.requests if r.method == "POST"] == [200]


# -- createItem (spec §2.3) ----------------------------------------------------------------------------


@pytest.mark.parametrize("content_type",
                         ["application/xml", "text/xml; charset=utf-8", "application/xml;x=y"])
def test_create_item_xml_path_answers_200_empty(emu: JenkinsEmulator, content_type: str) -> None:
    resp = session(emu, TOKEN).post(emu.url + "createItem?name=a", data=FREESTYLE,
                                    headers={"Content-Type": content_type}, timeout=10)
    assert (resp.status_code, resp.content, resp.headers.get("Location")) == (200, b"", None)
    assert emu.item("a") is not None and emu.item("a").class_name == FREESTYLE_CLASS  # type: ignore[union-attr]


def test_create_item_duplicate_is_400_with_x_error(emu: JenkinsEmulator) -> None:
    token = session(emu, TOKEN)
    token.post(emu.url + "createItem?name=app", data=FREESTYLE, headers=XML, timeout=10)
    resp = token.post(emu.url + "createItem?name=app", data=PIPELINE, headers=XML, timeout=10)
    assert resp.status_code == 400
    message = "A job already exists with the name ‘app’"
    assert resp.headers["X-Error"] == jetty_header_value(message)
    assert resp.headers["X-Error"] == "A job already exists with the name ?app?"
    assert f"<p>{message}</p>" in resp.text  # the exact text, in the error page
    with pytest.raises(requests.HTTPError) as caught:  # python-jenkins leaks the raw HTTPError for 400
        server(emu).jenkins_open(requests.Request(
            "POST", emu.url + "createItem?name=app", data=FREESTYLE.encode(), headers=XML))
    assert caught.value.response.status_code == 400


@pytest.mark.parametrize(("name", "message"), [
    ("a?b", "‘?’ is an unsafe character"),
    ("a/b", "‘/’ is an unsafe character"),
    ("x[1]", "‘[’ is an unsafe character"),
    ("semi;colon", "‘;’ is an unsafe character"),
    ("tab\there", "No control code is allowed: tab\\u9;here"),
    (".", "“.” is not an allowed name"),
    (" .. ", "“..” is not an allowed name"),
    ("ends.", "A name cannot end with ‘.’"),
    ("", "No name is specified"),
])
def test_create_item_bad_names(emu: JenkinsEmulator, name: str, message: str) -> None:
    assert check_good_name(name) == message
    resp = session(emu, TOKEN).post(emu.url + "createItem", params={"name": name}, data=FREESTYLE,
                                    headers=XML, timeout=10)
    assert resp.status_code == 400
    assert resp.headers["X-Error"] == jetty_header_value(message)
    assert f"<p>{message}</p>" in resp.text


def test_create_item_trims_the_name(emu: JenkinsEmulator) -> None:
    resp = session(emu, TOKEN).post(emu.url + "createItem", params={"name": "  app "}, data=FREESTYLE,
                                    headers=XML, timeout=10)
    assert resp.status_code == 200 and emu.item("app") is not None


def test_create_item_failures_and_missing_parent(emu: JenkinsEmulator) -> None:
    token = session(emu, TOKEN)
    no_type = token.post(emu.url + "createItem?name=a", data=FREESTYLE, timeout=10)
    assert no_type.status_code == 400 and no_type.headers["X-Error"] == "No Content-Type header set"
    no_name = token.post(emu.url + "createItem", data=FREESTYLE, headers=XML, timeout=10)
    assert no_name.status_code == 400 and no_name.headers["X-Error"] == "Query parameter 'name' is required"
    malformed = token.post(emu.url + "createItem?name=a", data="<project><oops></project>", headers=XML,
                           timeout=10)
    assert malformed.status_code == 500
    unknown = token.post(emu.url + "createItem?name=a", data="<maven2-moduleset/>", headers=XML, timeout=10)
    assert unknown.status_code == 500
    assert emu.item("a") is None  # nothing half-created
    missing = token.post(emu.url + "job/nope/createItem?name=a", data=FREESTYLE, headers=XML, timeout=10)
    assert missing.status_code == 404
    assert token.get(emu.url + "createItem?name=a", timeout=10).status_code == 405  # @RequirePOST
    pj = server(emu)
    with pytest.raises(jenkins.JenkinsException, match="folder for the job does not exist"):
        pj.create_job("nope/a", FREESTYLE)
    with pytest.raises(jenkins.JenkinsException, match=r"\[500\]"):
        pj.create_job("a", "<project>")


def test_create_item_form_path_redirects_to_configure(emu: JenkinsEmulator) -> None:
    token = session(emu, TOKEN)
    form = {"name": "F", "mode": FOLDER_CLASS}
    resp = token.post(emu.url + "createItem?name=F", data=form, allow_redirects=False, timeout=10)
    assert resp.status_code == 302 and resp.headers["Location"] == emu.url + "job/F/configure"
    assert token.get(resp.headers["Location"], timeout=10).status_code == 200
    nested = token.post(emu.url + "job/F/createItem?name=G", data={"mode": FOLDER_CLASS},
                        allow_redirects=False, timeout=10)
    assert nested.headers["Location"] == emu.url + "job/F/job/G/configure"
    no_mode = token.post(emu.url + "createItem?name=H", data={"name": "H"}, timeout=10)
    assert no_mode.status_code == 400 and no_mode.headers["X-Error"] == "No mode given"
    bad_mode = token.post(emu.url + "createItem?name=H", data={"mode": "x.Y"}, timeout=10)
    assert bad_mode.status_code == 400 and "No item type" in bad_mode.text and "x.Y" in bad_mode.text
    # python-jenkins' create_folder follows the redirect; A/B/C nests.
    pj = server(emu, PASSWORD)
    pj.create_folder("A")
    pj.create_folder("A/B")
    pj.create_job("A/B/c", PIPELINE)
    assert pj.get_job_info("A/B")["_class"] == FOLDER_CLASS
    assert pj.get_job_name("A/B/c") == "c"
    redirected = [(r.method, r.path, r.status) for r in emu.requests if "A/job/B/configure" in r.path]
    assert redirected == [("GET", "/job/A/job/B/configure", 200)]
    with pytest.raises(jenkins.JenkinsException, match="Probably it already exists"):
        pj.create_folder("A")


# -- config.xml and api/json (spec §2.4, §2.5) ------------------------------------------------------------


def test_config_xml_round_trip(emu: JenkinsEmulator) -> None:
    pj = server(emu)
    pj.create_job("p", PIPELINE)
    text = pj.get_job_config("p")
    assert text.startswith('<?xml version="1.1" encoding="UTF-8"?>\n<flow-definition plugin="workflow-job@')
    assert "echo &apos;hi&apos; &amp;&amp; x" in text  # XStream's escaping
    token = session(emu, TOKEN)
    resp = token.get(emu.url + "job/p/config.xml", timeout=10)
    assert resp.headers["Content-Type"].startswith("application/xml")
    assert token.post(emu.url + "job/p/config.xml", data=PIPELINE.replace(">p<", ">q<"), headers=XML,
                      timeout=10).status_code == 200
    assert "<description>q</description>" in pj.get_job_config("p")
    assert token.post(emu.url + "job/p/config.xml", data="<flow-definition>", headers=XML,
                      timeout=10).status_code == 500
    assert post(token, emu.url + "job/p/config.xml", FREESTYLE).status_code == 500
    assert "<description>q</description>" in pj.get_job_config("p")  # unchanged by the failures
    assert token.put(emu.url + "job/p/config.xml", data=PIPELINE, timeout=10).status_code == 400
    assert token.get(emu.url + "job/none/config.xml", timeout=10).status_code == 404
    with pytest.raises(jenkins.NotFoundException):
        pj.get_job_config("none")
    with pytest.raises(jenkins.NotFoundException):
        pj.reconfig_job("none", PIPELINE)


def test_api_json_classes_tree_and_missing(emu: JenkinsEmulator) -> None:
    pj = server(emu)
    pj.create_job("fs", FREESTYLE)
    pj.create_job("wf", PIPELINE)
    pj.create_folder("F")
    token = session(emu, TOKEN)
    for name, cls in (("fs", FREESTYLE_CLASS), ("wf", PIPELINE_CLASS), ("F", FOLDER_CLASS)):
        resp = token.get(emu.url + f"job/{name}/api/json?tree=name", timeout=10)
        assert resp.json() == {"_class": cls, "name": name}
        assert resp.headers["X-Jenkins"]
    assert token.get(emu.url + "job/none/api/json", timeout=10).status_code == 404
    assert pj.job_exists("wf") is True
    assert pj.job_exists("none") is None  # spec §1.4: None, not False
    root = token.get(emu.url + "api/json?tree=jobs[name]", timeout=10).json()
    assert root == {"_class": "hudson.model.Hudson", "jobs": [
        {"_class": FREESTYLE_CLASS, "name": "fs"}, {"_class": PIPELINE_CLASS, "name": "wf"},
        {"_class": FOLDER_CLASS, "name": "F"}]}


def test_read_only_user_gets_403_on_writes(emu: JenkinsEmulator) -> None:
    server(emu).create_job("a", FREESTYLE)
    reader = session(emu, "reader-token", "reader")
    assert reader.get(emu.url + "job/a/config.xml", timeout=10).status_code == 200
    for path, body in (("createItem?name=b", FREESTYLE), ("job/a/config.xml", FREESTYLE),
                       ("credentials/store/system/domain/_/createCredentials", credential_xml("c"))):
        resp = reader.post(emu.url + path, data=body, headers=XML, timeout=10)
        assert resp.status_code == 403 and "is missing the" in resp.text, path
    with pytest.raises(jenkins.JenkinsException, match=r"\[403\]"):
        server(emu, "reader-pw", "reader").create_job("b", FREESTYLE)


# -- credentials (spec §1.5, §2.6) ------------------------------------------------------------------------


def test_system_store_create_duplicate_read_update_delete(emu: JenkinsEmulator) -> None:
    token = session(emu, TOKEN)
    base = emu.url + "credentials/store/system/domain/_/"
    created = token.post(base + "createCredentials", data=credential_xml("reg"), headers=XML, timeout=10)
    assert (created.status_code, created.content) == (200, b"")
    dup = token.post(base + "createCredentials", data=credential_xml("reg", "pw-two", "other"), headers=XML,
                     timeout=10)
    assert (dup.status_code, dup.content) == (409, b"")
    kept = emu.credential("reg")
    assert kept is not None and kept.field("password") == "pw-one" and kept.field("username") == "ci-bot"

    config = token.get(base + "credential/reg/config.xml", timeout=10)
    assert config.status_code == 200 and config.headers["Content-Type"].startswith("application/xml")
    assert config.text.startswith(f"<{USERNAME_PASSWORD_CLASS}>")  # no XML declaration
    assert re.search(r"<password>\s*<secret-redacted/>\s*</password>", config.text)
    assert "pw-one" not in config.text

    info = token.get(base + "credential/reg/api/json", timeout=10).json()
    assert info == {"_class": "com.cloudbees.plugins.credentials.CredentialsStoreAction$CredentialsWrapper",
                    "description": "reg", "displayName": "ci-bot/****** (reg)", "fingerprint": None,
                    "fullName": "system/_/reg", "id": "reg", "typeName": "Username with password"}
    listing = token.get(base + "api/json?tree=credentials[id]", timeout=10).json()
    assert listing["credentials"] == [{"_class": info["_class"], "id": "reg"}]

    update = token.post(base + "credential/reg/config.xml", data=credential_xml("reg", "pw-two"), headers=XML,
                        timeout=10)
    assert (update.status_code, update.content) == (200, b"")
    assert emu.credential("reg").field("password") == "pw-two"  # type: ignore[union-attr]
    mismatch = token.post(base + "credential/reg/config.xml", data=credential_xml("other"), headers=XML,
                          timeout=10)
    assert mismatch.status_code >= 500 and emu.credential("other") is None
    assert post(token, base + "credential/reg/config.xml", "<x").status_code >= 500
    assert token.put(base + "credential/reg/config.xml", data="x", timeout=10).status_code == 400
    assert token.delete(base + "credential/reg/config.xml", timeout=10).status_code == 200
    assert token.get(base + "credential/reg/config.xml", timeout=10).status_code == 404
    assert token.delete(base + "credential/reg/config.xml", timeout=10).status_code == 404


def test_system_store_through_python_jenkins_raw_requests(emu: JenkinsEmulator) -> None:
    """The documented workaround (spec §1.5): jenkins_open on the system store keeps auth and crumb."""
    pj = server(emu, PASSWORD)
    base = pj.server + "manage/credentials/store/system/domain/_/"  # the /manage/ alias resolves too
    pj.jenkins_open(requests.Request("POST", base + "createCredentials",
                                     data=credential_xml("reg").encode(), headers=XML))
    with pytest.raises(requests.HTTPError) as caught:  # 409 is a raw HTTPError
        pj.jenkins_open(requests.Request("POST", base + "createCredentials",
                                         data=credential_xml("reg").encode(), headers=XML))
    assert caught.value.response.status_code == 409
    assert "secret-redacted" in pj.jenkins_open(requests.Request("GET", base + "credential/reg/config.xml"))
    with pytest.raises(jenkins.NotFoundException):
        pj.jenkins_open(requests.Request("GET", base + "credential/none/api/json"))
    assert all(r.auth == "password" for r in emu.requests)


def test_unknown_store_domain_or_folder_is_404(emu: JenkinsEmulator) -> None:
    server(emu).create_job("job", FREESTYLE)
    token = session(emu, TOKEN)
    for path in ("credentials/store/nope/domain/_/api/json", "credentials/store/system/domain/other/api/json",
                 "credentials/store/folder/domain/_/api/json", "job/none/credentials/store/folder/domain/_/",
                 "job/job/credentials/store/folder/domain/_/api/json"):
        assert token.get(emu.url + path, timeout=10).status_code == 404, path
    assert token.post(emu.url + "job/none/credentials/store/folder/domain/_/createCredentials",
                      data=credential_xml("c"), headers=XML, timeout=10).status_code == 404


def test_credentials_plugin_missing_switch(emu: JenkinsEmulator) -> None:
    server(emu).create_folder("F")
    emu.state.credentials_plugin = False
    token = session(emu, TOKEN)
    for path in ("credentials/store/system/domain/_/api/json", "manage/credentials/store/system/",
                 "job/F/credentials/store/folder/domain/_/api/json"):
        assert token.get(emu.url + path, timeout=10).status_code == 404, path
    assert post(token, emu.url + "credentials/store/system/domain/_/createCredentials",
                credential_xml("c")).status_code == 404


def test_folder_store_with_python_jenkins_credential_methods(emu: JenkinsEmulator) -> None:
    pj = server(emu, PASSWORD)
    pj.create_folder("F")
    pj.create_credential("F", credential_xml("reg"))
    assert pj.credential_exists("reg", "F")
    assert pj.list_credentials("F") == [{"_class": "com.cloudbees.plugins.credentials.CredentialsStoreAction"
                                         "$CredentialsWrapper", "id": "reg"}]
    assert pj.get_credential_info("reg", "F")["fullName"] == "F/folder/_/reg"
    assert "<secret-redacted/>" in pj.get_credential_config("reg", "F")
    with pytest.raises(jenkins.JenkinsException, match="already exists"):
        pj.create_credential("F", credential_xml("reg"))
    pj.reconfig_credential("F", credential_xml("reg", "pw-two"))
    assert emu.credential("reg", "F").field("password") == "pw-two"  # type: ignore[union-attr]
    pj.delete_credential("reg", "F")
    assert not pj.credential_exists("reg", "F")
    assert emu.credential("reg") is None  # the system store was never touched


def test_folder_store_offers_global_scope_only(emu: JenkinsEmulator) -> None:
    pj = server(emu)
    pj.create_folder("F")
    pj.create_credential("F", credential_xml("sys", scope="SYSTEM"))
    pj.create_credential("F", credential_xml("glob"))
    store = emu.store("F")
    assert store.scopes == ("GLOBAL",)
    assert not store.visible_to_builds("sys") and store.visible_to_builds("glob")
    assert emu.store().scopes == ("GLOBAL", "SYSTEM")


# -- the emulator's own machinery ------------------------------------------------------------------------


def test_request_log_has_status_and_body_but_no_authorization(emu: JenkinsEmulator) -> None:
    token = session(emu, TOKEN)
    token.post(emu.url + "createItem?name=a", data=FREESTYLE, headers=XML, timeout=10)
    entry = emu.requests[-1]
    assert (entry.method, entry.path, entry.status, entry.user, entry.auth) == \
        ("POST", "/createItem?name=a", 200, ADMIN, "token")
    assert entry.body == FREESTYLE.encode()
    encoded = base64.b64encode(f"{ADMIN}:{TOKEN}".encode()).decode()
    assert all(encoded not in str(r.headers) for r in emu.requests)


def test_stop_closes_the_port_and_open_connections(emu: JenkinsEmulator) -> None:
    token = session(emu, TOKEN)
    assert token.get(emu.url, timeout=10).status_code == 200  # a kept-alive connection stays open
    port = emu.port
    emu.stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    with pytest.raises(requests.ConnectionError):
        token.get(f"http://127.0.0.1:{port}/", timeout=5)


def test_plugin_manager_lists_plugins_at_depth_1(emu: JenkinsEmulator) -> None:
    s = session(emu, TOKEN)
    shallow = s.get(emu.url + "pluginManager/api/json").json()
    assert shallow["plugins"] and all(entry == {} for entry in shallow["plugins"])
    emu.state.plugins["git"].active = False
    del emu.state.plugins["cloudbees-folder"]
    deep = s.get(emu.url + "pluginManager/api/json?depth=1").json()
    by_name = {p["shortName"]: p for p in deep["plugins"]}
    assert "cloudbees-folder" not in by_name
    assert by_name["git"]["active"] is False and by_name["git"]["enabled"] is True
    assert by_name["credentials-binding"]["active"] is True
    small = s.get(emu.url + "pluginManager/api/json?tree=plugins[shortName,active]").json()
    assert {"shortName": "git", "active": False} in small["plugins"]
    # The read-only user may list plugins (Overall/Read); anonymous may not.
    assert session(emu, "reader-token", "reader").get(emu.url + "pluginManager/api/json").status_code == 200
    assert requests.get(emu.url + "pluginManager/api/json?depth=1", timeout=10).status_code == 403


def test_credentials_plugin_switch_follows_the_plugin_list(emu: JenkinsEmulator) -> None:
    s = session(emu, TOKEN)
    store = emu.url + "credentials/store/system/domain/_/api/json"
    assert s.get(store).status_code == 200
    emu.state.plugins["credentials"].active = False
    assert s.get(store).status_code == 404
    emu.state.credentials_plugin = True
    assert s.get(store).status_code == 200
