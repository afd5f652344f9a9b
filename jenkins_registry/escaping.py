"""Escaping for each target a rendered value lands in, and the checks that refuse unsafe values.

Four targets, one explicit filter each, so a template says where a value goes:
  * XML text (job and credential config.xml): `xml_text`;
  * a Groovy single-quoted string, `'…'` or `'''…'''` (Jenkinsfile): `groovy_string`,
    `groovy_block`; single quotes, because Groovy never interpolates them, so `$VAR` is left
    for the shell and a secret never passes through Groovy string interpolation;
  * a POSIX shell word (`sh` steps, freestyle shell): `shell_word`, and `shell_tag_word` for a tag
    that may reference a shell variable such as `${BUILD_NUMBER}`;
  * a YAML double-quoted scalar (JCasC): `yaml_string`, and `casc_string` for a literal value
    JCasC must not resolve as a `${VAR}` reference.
When a value nests (a shell word in a Groovy string in XML), escape inside out: shell, Groovy, XML.

Each filter is exact: parsing its output in the target gives back the value, character for
character. A value no target can carry (a control character in a name, a NUL in a shell word, a
character XML 1.0 forbids) raises `UnsafeValueError` instead. The validators refuse values Jenkins
itself would reject (`Jenkins.checkGoodName`, the credentials plugin's id check).
"""

from __future__ import annotations

import re
import unicodedata

from jenkins_registry.errors import UnsafeValueError

# ---------------------------------------------------------------------------------------------
# Shared checks


def describe(value: str, limit: int = 60) -> str:
    """A printable, bounded rendering of a (non-secret) value for an error message."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


def is_control(ch: str) -> bool:
    """Control characters (C0, DEL, C1), line/paragraph separators and lone surrogates."""
    return unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp")


def refuse_control_characters(value: str, what: str) -> str:
    """Return *value*, or raise when it holds a control character (newline and tab included)."""
    for index, ch in enumerate(value):
        if is_control(ch):
            raise UnsafeValueError(
                f"The {what} {describe(value)} contains the control character U+{ord(ch):04X} "
                f"at position {index + 1}."
            )
    return value


def _refuse_surrogates(value: str, what: str) -> None:
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise UnsafeValueError(f"The {what} contains a lone surrogate, which has no UTF-8 encoding.")


# ---------------------------------------------------------------------------------------------
# XML text

_XML_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}


def _xml_char(ch: str) -> str | None:
    """The XML spelling of *ch*, or None when XML 1.0 cannot carry it at all."""
    code = ord(ch)
    if ch in _XML_ENTITIES:
        return _XML_ENTITIES[ch]
    if ch in "\t\n":
        return ch
    if ch == "\r" or 0x7F <= code <= 0x9F or code == 0x2028:
        # A literal CR is normalised to LF by every parser; C1 controls and U+2028 are line ends
        # or "restricted" in XML 1.1 (Jenkins' own version). Character references survive both.
        return f"&#x{code:X};"
    if code < 0x20 or 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF):
        return None
    return ch


def xml_text(value: str, what: str = "value") -> str:
    """Escape *value* for XML character data (also safe inside a quoted attribute)."""
    out = []
    for index, ch in enumerate(value):
        spelled = _xml_char(ch)
        if spelled is None:
            raise UnsafeValueError(
                f"The {what} contains U+{ord(ch):04X} at position {index + 1}, which XML cannot carry."
            )
        out.append(spelled)
    return "".join(out)


def xml_secret(value: str, what: str = "password") -> str:
    """Like `xml_text`, for a secret: the error says neither which character nor where."""
    if any(_xml_char(ch) is None for ch in value):
        raise UnsafeValueError(
            f"The {what} contains a control character that XML (and so Jenkins) cannot store.",
            hint=f"Change the {what} to one without control characters.",
        )
    return xml_text(value, what)


# ---------------------------------------------------------------------------------------------
# Groovy single-quoted strings

_GROOVY_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _groovy_char(ch: str) -> str:
    if ch in _GROOVY_ESCAPES:
        return _GROOVY_ESCAPES[ch]
    if is_control(ch) or ch == "\ufeff":
        # Never \u000a or \u000d: Groovy 2 (Jenkins) decodes \u escapes before lexing, so those
        # would become raw line breaks. The named escapes above cover them.
        return f"\\u{ord(ch):04x}"
    return ch


def groovy_string(value: str, what: str = "value") -> str:
    """*value* as a Groovy single-quoted string literal, quotes included: `'it\\'s'`."""
    _refuse_surrogates(value, what)
    return "'" + "".join("\\'" if ch == "'" else _groovy_char(ch) for ch in value) + "'"


def groovy_block(value: str, what: str = "value") -> str:
    """*value* as a Groovy triple-single-quoted literal (`'''…'''`), line breaks kept as written.

    A quote is escaped only where it could close the literal: before another quote or at the end.
    """
    _refuse_surrogates(value, what)
    out = []
    for index, ch in enumerate(value):
        if ch == "'":
            last = index == len(value) - 1
            out.append("\\'" if last or value[index + 1] == "'" else "'")
        elif ch == "\n":
            out.append("\n")
        else:
            out.append(_groovy_char(ch))
    return "'''" + "".join(out) + "'''"


# ---------------------------------------------------------------------------------------------
# POSIX shell words

_SHELL_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
SHELL_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def shell_word(value: str, what: str = "value") -> str:
    """*value* as one POSIX shell word that expands to exactly *value* (no expansion inside)."""
    if "\0" in value:
        raise UnsafeValueError(f"The {what} contains a NUL character, which no shell word can hold.")
    _refuse_surrogates(value, what)
    if _SHELL_SAFE.fullmatch(value):
        return value
    return "'" + value.replace("'", "'\"'\"'") + "'"


def shell_variable(name: str) -> str:
    """A double-quoted expansion of environment variable *name*: `"$NAME"`."""
    return f'"${validate_variable_name(name)}"'


def shell_references(value: str) -> list[str]:
    """The variable names a tag template references with `${NAME}`, in order."""
    return SHELL_REFERENCE.findall(value)


def shell_tag_word(value: str, what: str = "tag") -> str:
    """A tag template as one shell word: `${NAME}` expands at run time, everything else is literal.

    `build-${BUILD_NUMBER}` renders as `build-"${BUILD_NUMBER}"`. Only the braced form with a
    valid name is a reference; any other `$` stays a literal character.
    """
    out, position = [], 0
    for match in SHELL_REFERENCE.finditer(value):
        if match.start() > position:
            out.append(shell_word(value[position : match.start()], what))
        out.append(f'"${{{match.group(1)}}}"')
        position = match.end()
    if position < len(value) or not out:
        out.append(shell_word(value[position:], what))
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# YAML double-quoted scalars (JCasC)

_YAML_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b",
                 "\f": "\\f"}


def _yaml_char(ch: str) -> str:
    code = ord(ch)
    if ch in _YAML_ESCAPES:
        return _YAML_ESCAPES[ch]
    # Outside YAML's printable set, or a line break to YAML 1.1 (NEL, U+2028/9), or a BOM.
    if is_control(ch) or code in (0xFEFF, 0xFFFE, 0xFFFF):
        return f"\\u{code:04x}"
    return ch


def yaml_string(value: str, what: str = "value") -> str:
    """*value* as a YAML double-quoted scalar on one line, quotes included.

    Only the escapes JSON also has (`\\\\ \\" \\n \\r \\t \\b \\f \\uXXXX`) are used, so the
    scalar is a JSON string too and reads the same under YAML 1.1 and 1.2.
    """
    _refuse_surrogates(value, what)
    return '"' + "".join(_yaml_char(ch) for ch in value) + '"'


def casc_string(value: str, what: str = "value") -> str:
    """A literal value for JCasC: `${` becomes `^${`, so JCasC never resolves it as a variable."""
    return yaml_string(value.replace("${", "^${"), what)


# ---------------------------------------------------------------------------------------------
# Names and ids Jenkins accepts

# Jenkins.checkGoodName (core, jenkins/model/Jenkins.java): these make createItem answer 400.
_JENKINS_UNSAFE = "?*/\\%!@#$^&|<>[]:;"
_CREDENTIAL_ID = re.compile(r"[A-Za-z0-9_.-]+")


def _java_iso_control(ch: str) -> bool:
    code = ord(ch)
    return code <= 0x1F or 0x7F <= code <= 0x9F


def validate_jenkins_name(name: str) -> str:
    """Return *name* when Jenkins accepts it as one item name (a job or a folder, not a path).

    Mirrors `Jenkins.checkGoodName`; a name with surrounding white space is refused too, because
    Jenkins trims it and the item would then not be found under the name we were given.
    """
    if not name:
        raise UnsafeValueError("The Jenkins item name is empty.", hint="Give a name such as app-push.")
    for ch in name:
        if _java_iso_control(ch) or is_control(ch):
            raise UnsafeValueError(
                f"The Jenkins item name {describe(name)} contains the control character "
                f"U+{ord(ch):04X}; Jenkins answers “No control code is allowed”."
            )
    if name in (".", ".."):
        raise UnsafeValueError(f"“{name}” is not an allowed Jenkins item name.",
                               hint="Choose a name with at least one other character.")
    for ch in name:
        if ch in _JENKINS_UNSAFE:
            raise UnsafeValueError(
                f"The Jenkins item name {describe(name)} contains ‘{ch}’, which Jenkins rejects "
                "as an unsafe character.",
                hint="Jenkins refuses ? * / \\ % ! @ # $ ^ & | < > [ ] : ; in names; "
                "use letters, digits, '-', '_' or '.'. Use --folder for a path.",
            )
    if name.endswith("."):
        raise UnsafeValueError(f"The Jenkins item name {describe(name)} ends with ‘.’, which "
                               "Jenkins rejects.", hint="Remove the trailing '.'.")
    if name != name.strip():
        raise UnsafeValueError(
            f"The Jenkins item name {describe(name)} starts or ends with white space, which Jenkins "
            "would trim.", hint="Remove the surrounding white space.")
    return name


def validate_credential_id(cid: str) -> str:
    """Return *cid* when it is a credential id Jenkins accepts and every template can carry.

    The credentials plugin's id check (`BaseStandardCredentialsDescriptor.doCheckId`) allows
    only [a-zA-Z0-9_.-]; the id also becomes a URL segment and a Groovy string.
    """
    if not cid:
        raise UnsafeValueError("The credentials id is empty.", hint="Give an id such as registry-login.")
    refuse_control_characters(cid, "credentials id")
    if not _CREDENTIAL_ID.fullmatch(cid):
        raise UnsafeValueError(
            f"The credentials id {describe(cid)} contains characters Jenkins does not accept.",
            hint="Use only letters, digits, '_', '.' and '-' (Jenkins answers “Unacceptable "
            "characters” otherwise), e.g. docker-registry-login.",
        )
    return cid


def validate_variable_name(name: str, what: str = "variable name") -> str:
    """Return *name* when it is a portable environment variable name ([A-Za-z_][A-Za-z0-9_]*)."""
    if not VARIABLE_NAME.fullmatch(name):
        raise UnsafeValueError(
            f"The {what} {describe(name)} is not a valid environment variable name.",
            hint="Use letters, digits and '_', not starting with a digit, e.g. DOCKER_LOGIN_PASSWORD.",
        )
    return name
