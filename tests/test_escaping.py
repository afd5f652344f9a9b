"""The escaping filters are exact, and the validators refuse what Jenkins or a target cannot carry.

Round trips use real parsers where they exist here: xml.etree for XML and `sh` for shell words.
Groovy literals are checked with the exact single-quoted-string unescaper below (both the Groovy 2
reading Jenkins uses, which decodes \\u escapes before lexing, and the plain one); the real Groovy
parser sees a batch of hostile examples in test_groovy_lint.py.
"""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from jenkins_registry import escaping
from jenkins_registry.errors import ExitCode, UnsafeValueError

# ---------------------------------------------------------------------------------------------
# Helpers shared with the other rendering tests

HOSTILE = [
    "", "plain", "it's", "'", "''", "'''", "a'''b", "\\", "\\'", "'\\", "$HOME", "${HOME}", "$(id)",
    "`id`", '"double"', "a\nb", "\n", "\r\n", "tab\there", "<&>", "]]>", "&amp;", "\\u0027",
    "\\\\u0027", "\\n", "ünïcødé 中文 🐳", "\u2028", "\u0085", "\x7f", "-n", "--tag", "*", "~root",
    "a b", "${BUILD_NUMBER", "#comment", "x;rm -rf /", "\x01", "\x00", "\ufeff",
]
"""Values that have broken naive escaping somewhere."""

_GROOVY_SIMPLE = {"\\": "\\", "'": "'", '"': '"', "$": "$", "n": "\n", "r": "\r", "t": "\t",
                  "b": "\b", "f": "\f"}


def _java_unicode_prepass(source: str) -> str:
    """Decode \\uXXXX the way Java and Groovy 2 do before lexing: only a backslash preceded by an
    even number of backslashes starts one, and it may have several u's."""
    out: list[str] = []
    i, run = 0, 0
    while i < len(source):
        ch = source[i]
        if ch == "\\" and run % 2 == 0:
            match = re.match(r"\\u+([0-9A-Fa-f]{4})", source[i:])
            if match:
                out.append(chr(int(match.group(1), 16)))
                i += match.end()
                run = 0
                continue
        run = run + 1 if ch == "\\" else 0
        out.append(ch)
        i += 1
    return "".join(out)


def groovy_unescape(literal: str, *, unicode_prepass: bool = False) -> str:
    """The value of one Groovy single-quoted literal ('…' or '''…'''); strict: ValueError on
    anything that would not lex as exactly this one literal."""
    if unicode_prepass:
        literal = _java_unicode_prepass(literal)
    multiline = literal.startswith("'''")
    quote = "'''" if multiline else "'"
    if len(literal) < 2 * len(quote) or not (literal.startswith(quote) and literal.endswith(quote)):
        raise ValueError(f"not a literal: {literal!r}")
    body = literal[len(quote) : -len(quote)]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            if i + 1 >= len(body):
                raise ValueError("a trailing backslash escapes the closing quote")
            nxt = body[i + 1]
            if nxt in _GROOVY_SIMPLE:
                out.append(_GROOVY_SIMPLE[nxt])
                i += 2
            elif nxt == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", body[i + 2 : i + 6]):
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
            else:
                raise ValueError(f"unknown escape \\{nxt}")
            continue
        if ch == "'":
            if not multiline:
                raise ValueError("an unescaped quote ends the literal early")
            if i + 1 >= len(body) or body[i + 1] == "'":
                raise ValueError("unescaped quotes could close the ''' literal early")
        if ch in "\r\n" and not multiline:
            raise ValueError("a line break inside a single-line literal")
        out.append(ch)
        i += 1
    return "".join(out)


def groovy_value(literal: str) -> str:
    """The literal's value, asserting that Groovy 2 (Jenkins) and Groovy 3+ read it the same."""
    plain = groovy_unescape(literal)
    assert groovy_unescape(literal, unicode_prepass=True) == plain
    return plain


def parse_xml(text: str) -> ET.Element:
    """Parse XML we rendered ourselves (trusted input, so the stdlib parser is fine)."""
    return ET.fromstring(text.encode("utf-8"))  # noqa: S314


def sh_expand(words: Sequence[str], env: Mapping[str, str] | None = None) -> list[str]:
    """What a real `sh` makes of each word: printed one per argument, NUL-separated."""
    script = "printf '%s\\0' " + " ".join(words) if words else "true"
    result = subprocess.run(["sh", "-c", script], capture_output=True, env=dict(env or {}),
                            timeout=30, check=True)
    return [part.decode("utf-8", "surrogateescape") for part in result.stdout.split(b"\0")[:-1]]


# Text of every kind, including controls, unicode, and the characters that matter to each target.
hostile_text = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40),
    st.text(alphabet=st.sampled_from("'\"\\$`{}()<>&;|*?~#!\n\r\t =-u0aA中"), max_size=30),
)
PROPERTY = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------
# XML text


@pytest.mark.parametrize(("value", "expected"), [
    ("a<b>&c", "a&lt;b&gt;&amp;c"),
    ("it's \"q\"", "it&apos;s &quot;q&quot;"),
    ("line\nnext\ttab", "line\nnext\ttab"),
    ("cr\r", "cr&#xD;"),
    ("nel\u0085 ls\u2028 del\x7f", "nel&#x85; ls&#x2028; del&#x7F;"),
    ("中文 🐳", "中文 🐳"),
])
def test_xml_text_known_values(value: str, expected: str) -> None:
    assert escaping.xml_text(value) == expected


@pytest.mark.parametrize("value", ["\x00", "a\x01b", "\x1f", "\ufffe", "\uffff", "\ud800"])
def test_xml_text_refuses_what_xml_cannot_carry(value: str) -> None:
    with pytest.raises(UnsafeValueError) as info:
        escaping.xml_text(value, "description")
    assert "description" in str(info.value)
    assert info.value.exit_code == ExitCode.USAGE


@settings(PROPERTY)
@given(hostile_text)
@example("\r\n\r")
@example("\u0085\u2028")
def test_xml_text_round_trips_through_a_real_parser(value: str) -> None:
    try:
        escaped = escaping.xml_text(value)
    except UnsafeValueError:
        assert any((ord(ch) < 0x20 and ch not in "\t\n\r") or ch in "\ufffe\uffff" for ch in value)
        return
    root = parse_xml(f"<a b=\"{escaped}\">{escaped}</a>")
    assert (root.text or "") == value
    # Attribute values are normalised (white space becomes spaces), text is not; the filter is
    # only used for text, but a quote in it must never end an attribute.
    assert set(root.attrib) == {"b"}


def test_xml_secret_never_describes_the_secret() -> None:
    secret = "hunter2-\x01-tail"
    with pytest.raises(UnsafeValueError) as info:
        escaping.xml_secret(secret)
    text = f"{info.value} {info.value.hint}"
    assert "hunter2" not in text and "U+0001" not in text and "position" not in text
    assert escaping.xml_secret("p<w>&'\"") == "p&lt;w&gt;&amp;&apos;&quot;"


# ---------------------------------------------------------------------------------------------
# Groovy single-quoted strings


@pytest.mark.parametrize(("value", "expected"), [
    ("plain", "'plain'"),
    ("it's", "'it\\'s'"),
    ("back\\slash", "'back\\\\slash'"),
    ("$HOME ${x}", "'$HOME ${x}'"),
    ("a\nb\r", "'a\\nb\\r'"),
    ("\x01\u2028", "'\\u0001\\u2028'"),
    ("\\u0027", "'\\\\u0027'"),
])
def test_groovy_string_known_values(value: str, expected: str) -> None:
    assert escaping.groovy_string(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("echo 'hi'\nnext", "'''echo 'hi'\nnext'''"),
    ("ends with '", "'''ends with \\''''"),
    ("two '' quotes", "'''two \\'' quotes'''"),
    ("'''", "'''\\'\\'\\''''"),
])
def test_groovy_block_escapes_only_quotes_that_could_close_it(value: str, expected: str) -> None:
    assert escaping.groovy_block(value) == expected


@settings(PROPERTY)
@given(hostile_text)
def test_groovy_literals_round_trip(value: str) -> None:
    single = escaping.groovy_string(value)
    block = escaping.groovy_block(value)
    assert "\n" not in single and "\r" not in single
    assert groovy_value(single) == value
    assert groovy_value(block) == value


def test_groovy_refuses_lone_surrogates() -> None:
    with pytest.raises(UnsafeValueError):
        escaping.groovy_string("\udc80")


def test_the_unescaper_is_strict() -> None:
    """It must reject what Groovy would not read as one literal, or the round trips prove little."""
    for bad in ["'it's'", "'a\nb'", "'''a''''", "'''a'' '''", "'\\q'", "'\\'"]:
        with pytest.raises(ValueError):
            groovy_unescape(bad)
    assert groovy_unescape("'\\u0041'", unicode_prepass=True) == "A"
    # The Java pre-pass is why the filter never writes \u000a: it would become a raw line break.
    with pytest.raises(ValueError):
        groovy_unescape("'\\u000a'", unicode_prepass=True)


# ---------------------------------------------------------------------------------------------
# POSIX shell words


@pytest.mark.parametrize(("value", "expected"), [
    ("jenkins-test", "jenkins-test"),
    ("10.211.55.6:8082/jenkins-test:latest", "10.211.55.6:8082/jenkins-test:latest"),
    ("", "''"),
    ("a b", "'a b'"),
    ("it's", "'it'\"'\"'s'"),
    ("$HOME", "'$HOME'"),
])
def test_shell_word_known_values(value: str, expected: str) -> None:
    assert escaping.shell_word(value) == expected


@settings(PROPERTY)
@given(st.lists(hostile_text, min_size=1, max_size=8))
def test_shell_words_round_trip_through_a_real_sh(values: list[str]) -> None:
    words: list[str] = []
    for value in values:
        try:
            words.append(escaping.shell_word(value))
        except UnsafeValueError:
            assert "\0" in value
            return
    assert sh_expand(words) == values


def test_shell_word_refuses_nul() -> None:
    with pytest.raises(UnsafeValueError, match="NUL"):
        escaping.shell_word("a\0b")


@pytest.mark.parametrize(("tag", "expected"), [
    ("latest", "latest"),
    ("${BUILD_NUMBER}", '"${BUILD_NUMBER}"'),
    ("build-${BUILD_NUMBER}", 'build-"${BUILD_NUMBER}"'),
    ("${A}${B}.x", '"${A}""${B}".x'),
    ("$A", "'$A'"),
])
def test_shell_tag_word_known_values(tag: str, expected: str) -> None:
    assert escaping.shell_tag_word(tag) == expected


@settings(PROPERTY)
@given(st.lists(st.one_of(hostile_text.filter(lambda v: "\0" not in v),
                          st.sampled_from(["${BUILD_NUMBER}", "${GIT_COMMIT}", "${UNSET_X}"])),
                max_size=5).map("".join))
def test_shell_tag_word_expands_only_braced_references(tag: str) -> None:
    env = {"BUILD_NUMBER": "42", "GIT_COMMIT": "it's $(id) \\", "UNSET_X": ""}
    expected = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), tag)
    assert sh_expand([escaping.shell_tag_word(tag)], env) == [expected]


def test_shell_variable() -> None:
    assert escaping.shell_variable("DOCKER_LOGIN_PASSWORD") == '"$DOCKER_LOGIN_PASSWORD"'
    with pytest.raises(UnsafeValueError):
        escaping.shell_variable("A;B")


# ---------------------------------------------------------------------------------------------
# The nesting order: a shell word in a Groovy string in XML


@settings(PROPERTY)
@given(hostile_text)
def test_shell_then_groovy_then_xml_round_trips(value: str) -> None:
    assume("\0" not in value)
    script = "printf %s " + escaping.shell_word(value)
    try:
        xml = escaping.xml_text("sh " + escaping.groovy_string(script))
    except UnsafeValueError:
        return  # a character XML cannot carry at all: refused, nothing rendered
    groovy_source = parse_xml(f"<script>{xml}</script>").text or ""
    assert groovy_source.startswith("sh ")
    recovered = groovy_value(groovy_source[3:])
    assert recovered == script
    printed = subprocess.run(["sh", "-c", recovered], capture_output=True, timeout=30, check=True)
    assert printed.stdout.decode("utf-8", "surrogateescape") == value


# ---------------------------------------------------------------------------------------------
# Validators


@pytest.mark.parametrize("name", ["app", "team app", "app-1.2_x", "中文", "a.b"])
def test_jenkins_names_jenkins_accepts(name: str) -> None:
    assert escaping.validate_jenkins_name(name) == name


@pytest.mark.parametrize(("name", "reason"), [
    ("", "empty"),
    (".", "not an allowed"),
    ("..", "not an allowed"),
    ("a\nb", "control"),
    ("a\x7f", "control"),
    ("a\x85", "control"),
    ("app.", "ends with"),
    (" app", "white space"),
    ("app\t", "control"),
] + [(f"a{ch}b", "unsafe character") for ch in "?*/\\%!@#$^&|<>[]:;"])
def test_jenkins_names_jenkins_rejects(name: str, reason: str) -> None:
    """Jenkins.checkGoodName (jenkins-api.md 2.3), plus the white space Jenkins would trim."""
    with pytest.raises(UnsafeValueError, match=reason) as info:
        escaping.validate_jenkins_name(name)
    assert info.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize("cid", ["docker-registry-login", "a", "A.b_c-9"])
def test_credential_ids_accepted(cid: str) -> None:
    assert escaping.validate_credential_id(cid) == cid


@pytest.mark.parametrize("cid", ["", "a b", "a/b", "a'b", "a$b", "a\nb", "中文", "a:b"])
def test_credential_ids_refused(cid: str) -> None:
    with pytest.raises(UnsafeValueError):
        escaping.validate_credential_id(cid)


@settings(PROPERTY)
@given(hostile_text)
def test_accepted_ids_need_no_escaping_anywhere(cid: str) -> None:
    """Whatever the id check lets through is inert in XML, Groovy and the shell."""
    try:
        escaping.validate_credential_id(cid)
    except UnsafeValueError:
        return
    assert escaping.xml_text(cid) == cid
    assert escaping.groovy_string(cid) == f"'{cid}'"
    assert escaping.shell_word(cid) == cid


@pytest.mark.parametrize("value", ["a\nb", "tab\t", "\x00", "\u2028", "\x9b"])
def test_refuse_control_characters_names_the_character(value: str) -> None:
    with pytest.raises(UnsafeValueError, match=r"U\+[0-9A-F]{4}") as info:
        escaping.refuse_control_characters(value, "tag")
    assert "tag" in str(info.value)
    assert "\n" not in str(info.value)  # shown escaped, so the message stays on one line
