"""Read YAML recipe files and ``KEY=VALUE`` override values as hostile input.

A recipe comes from a user, a colleague's branch or a download, so this module assumes the worst: every failure
is one :class:`~tlhub.errors.RecipeError` line that says what is wrong, never a traceback, a hang or unbounded
memory. In the order the checks run:

* **The file.** ``os.stat`` first, so a FIFO or a device is refused before ``open`` could block on it; then at
  most ``MAX_FILE_BYTES + 1`` bytes are read (a recipe is a few KB) and decoded explicitly as UTF-8. A UTF-8
  byte-order mark is dropped; UTF-16, Latin-1 and NUL bytes are refused with the byte offset.
* **Nesting.** The composer counts open mappings and sequences and stops at ``MAX_DEPTH``, long before
  Python's recursion limit, whether the document nests in block style or in flow style (``[[[[...``).
* **Aliases.** The composed node graph is walked once, memoising each node's expanded size, so a "billion
  laughs" document (10**9 values from a few lines) is refused in linear time when its expansion passes
  ``MAX_NODES`` values (or 16 MiB of text, which a few aliases of one long string reach with few values). An
  alias inside its own anchor (``&a [*a]``) is refused rather than built into a structure that contains itself.
* **Keys.** Every mapping key must be a string, and an explicit key may appear once per mapping: PyYAML would
  silently keep the last one. Keys merged in with ``<<: *defaults`` may be overridden, as merge keys intend.
* **Tags.** Only ``!!str``, ``!!int``, ``!!float``, ``!!bool``, ``!!null``, ``!!seq`` and ``!!map``. Python
  tags (``!!python/object/apply:...``), ``!!binary``, ``!!timestamp``, ``!!set`` and local tags are refused,
  so nothing but plain data can come out of a recipe.

Scalars are resolved with the YAML 1.2 core schema, not PyYAML's YAML 1.1 defaults, because YAML 1.1 turns
ordinary words and numbers into surprising types:

==========================================  ==========================================  ====================
Plain scalar                                YAML 1.2 core (this module)                 PyYAML default
==========================================  ==========================================  ====================
``true``, ``True``, ``TRUE`` (and false)    ``bool``                                    ``bool``
``yes``, ``no``, ``on``, ``off``, ``y``     ``str``                                     ``bool`` (except y)
``~``, ``null``, ``Null``, ``NULL``, empty  ``None``                                    ``None``
``12``, ``-3``, ``0x1F``                    ``int`` (12, -3, 31)                        ``int``
``0o17``                                    ``int`` 15                                  ``str``
``0777``                                    ``int`` 777 (decimal)                       ``int`` 511 (octal)
``1_000``, ``1:30``                         ``str``                                     ``int`` (1000, 90)
``1e-3``, ``5e-4``, ``-2.5E+3``             ``float``                                   ``str`` without a dot
``.5``, ``1.``, ``.inf``, ``-.inf``         ``float`` (a later schema refuses inf)      ``float``
``2024-01-01``                              ``str``                                     ``datetime.date``
``.nan``                                    ``float`` nan (refused there too)           ``float``
==========================================  ==========================================  ====================

The loader (:class:`_RecipeLoader`, a ``yaml.SafeLoader`` subclass with its own implicit resolvers, so
``yaml.safe_load`` elsewhere is unchanged) only composes the node graph. Values are then built by
:func:`_build`, which expands every alias into its own copy: the result is a tree of plain dicts, lists and
scalars, so setting an override on one alias site can never change another. The pure-Python loader is used,
not libyaml's ``CSafeLoader``, because the depth limit lives in ``compose_node``, which the C composer never
calls; for a recipe of a few KB the difference is a millisecond.
"""

from __future__ import annotations

import errno
import math
import os
import re
import stat
from collections.abc import Callable
from typing import Any, ClassVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tlhub.errors import RecipeError

__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "MAX_NODES", "parse_yaml_value", "read_yaml_file"]

MAX_FILE_BYTES = 1 << 20  # 1 MiB: a recipe is a few KB
MAX_DEPTH = 64  # nesting of mappings/sequences
MAX_NODES = 100_000  # nodes after alias expansion (a "billion laughs" document expands to ~10**9)

# Few values can still expand to gigabytes when each alias names one long string; what reads the recipe later
# (the saved recipe.yaml, a model config's label names) would write every copy out.
_MAX_EXPANDED_CHARS = 16 * MAX_FILE_BYTES

_YAML_TAG = "tag:yaml.org,2002:"
_STR = _YAML_TAG + "str"
_INT = _YAML_TAG + "int"
_FLOAT = _YAML_TAG + "float"
_BOOL = _YAML_TAG + "bool"
_NULL = _YAML_TAG + "null"
_SEQ = _YAML_TAG + "seq"
_MAP = _YAML_TAG + "map"
_MERGE = _YAML_TAG + "merge"
_ALLOWED_TAGS = "!!str, !!int, !!float, !!bool, !!null, !!seq, !!map"

# The YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution). ``\Z`` rather than ``$``, which
# would also accept a trailing newline.
_BOOL_RE = re.compile(r"(?:true|True|TRUE|false|False|FALSE)\Z")
_NULL_RE = re.compile(r"(?:~|null|Null|NULL|)\Z")
_INT_RE = re.compile(r"(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)\Z")
_FLOAT_RE = re.compile(
    r"(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))\Z"
)
_MERGE_RE = re.compile(r"<<\Z")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _read_int(text: str) -> int:
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)  # the core schema reads 0777 as decimal 777, never as octal


def _read_float(text: str) -> float:
    lowered = text.lower()
    if lowered.endswith(".inf"):
        return -math.inf if text.startswith("-") else math.inf
    if lowered == ".nan":
        return math.nan
    return float(text)


# What an explicitly tagged scalar must look like, and how each scalar tag becomes a Python value. ``!!float 1``
# is a valid float, as in YAML 1.2.
_SCALAR_FORMS: dict[str, Callable[[str], bool]] = {
    _STR: lambda text: True,
    _INT: lambda text: _INT_RE.match(text) is not None,
    _FLOAT: lambda text: _FLOAT_RE.match(text) is not None or _INT_RE.match(text) is not None,
    _BOOL: lambda text: _BOOL_RE.match(text) is not None,
    _NULL: lambda text: _NULL_RE.match(text) is not None,
}
_SCALAR_READERS: dict[str, Callable[[str], Any]] = {
    _STR: str,
    _INT: _read_int,
    _FLOAT: _read_float,
    _BOOL: lambda text: text.lower() == "true",
    _NULL: lambda text: None,
}


class _Refused(Exception):
    """One problem line; the public functions add the file name or the override to it."""


class _RecipeLoader(yaml.SafeLoader):
    """SafeLoader's reader, scanner and parser with the core-schema resolvers and a depth-limited composer."""

    # A fresh dict on the class, so add_implicit_resolver below fills this one and SafeLoader keeps YAML 1.1.
    yaml_implicit_resolvers: ClassVar[dict[str | None, list[tuple[str, re.Pattern[str]]]]] = {}

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._open_collections = 0
        self._composed = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        """Count open mappings/sequences, so deep nesting is refused before Python's recursion limit is reached.

        Also count the values written out, so a long flat document is refused while composing, and the
        graph check's limit on expanded values is only ever passed because of aliases.
        """
        if not self.check_event(yaml.AliasEvent):
            self._composed += 1
            if self._composed > MAX_NODES:
                line = self.peek_event().start_mark.line + 1
                raise _Refused(f"holds more than {MAX_NODES:,} values (line {line}); a recipe is far smaller")
        if not self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            return super().compose_node(parent, index)
        if self._open_collections >= MAX_DEPTH:
            line = self.peek_event().start_mark.line + 1
            raise _Refused(f"nesting deeper than {MAX_DEPTH} levels at line {line}")
        self._open_collections += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._open_collections -= 1


_RecipeLoader.add_implicit_resolver(_BOOL, _BOOL_RE, list("tTfF"))
_RecipeLoader.add_implicit_resolver(_NULL, _NULL_RE, ["~", "n", "N", ""])
_RecipeLoader.add_implicit_resolver(_INT, _INT_RE, list("-+0123456789"))
_RecipeLoader.add_implicit_resolver(_FLOAT, _FLOAT_RE, list("-+0123456789."))
_RecipeLoader.add_implicit_resolver(_MERGE, _MERGE_RE, ["<"])


def _shown_tag(tag: str) -> str:
    return "!!" + tag[len(_YAML_TAG) :] if tag.startswith(_YAML_TAG) else tag


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _kind(node: Node) -> str:
    return "a list" if isinstance(node, SequenceNode) else "a mapping" if isinstance(node, MappingNode) else "text"


class _GraphCheck:
    """Checks a composed node graph before anything is built from it.

    One walk in document order does everything that needs the graph: tags, keys, duplicate keys, recursive
    aliases and the size and depth the document has once aliases are expanded. Each node's (values, characters,
    height) is memoised by identity, so a node reached through many aliases is walked once and the walk stays
    linear in the size of the file, however large the expansion.
    """

    def __init__(self, base_path: str) -> None:
        self._base_path = base_path
        self._sizes: dict[int, tuple[int, int, int]] = {}
        self._open: set[int] = set()

    def check(self, root: Node) -> None:
        self._visit(root, self._base_path, 0, _line(root))

    def _visit(self, node: Node, path: str, depth: int, line: int) -> tuple[int, int, int]:
        """Return (values, characters, nesting height) of ``node`` expanded; ``depth`` collections enclose it."""
        known = self._sizes.get(id(node))
        if known is not None:
            if depth + known[2] > MAX_DEPTH:
                raise _Refused(f"nesting deeper than {MAX_DEPTH} levels at line {line} once aliases are expanded")
            return known
        if id(node) in self._open:
            at = f" (at '{path}')" if path else ""
            raise _Refused(
                f"the value anchored at line {_line(node)} contains an alias to itself{at}; a recipe cannot "
                "contain itself"
            )
        if isinstance(node, ScalarNode):
            self._check_scalar(node, key=False)
            size = (1, len(node.value), 0)
        else:
            if depth >= MAX_DEPTH:
                raise _Refused(f"nesting deeper than {MAX_DEPTH} levels at line {_line(node)}")
            self._check_collection_tag(node)
            self._open.add(id(node))
            size = self._visit_children(node, path, depth)
            self._open.discard(id(node))
        self._sizes[id(node)] = size
        return size

    def _visit_children(self, node: Node, path: str, depth: int) -> tuple[int, int, int]:
        values, chars, height = 1, 0, 1
        for child_path, child, line in self._children(node, path):
            child_values, child_chars, child_height = self._visit(child, child_path, depth + 1, line)
            values += child_values
            chars += child_chars
            height = max(height, child_height + 1)
            if values > MAX_NODES:
                raise _Refused(f"aliases expand to more than {MAX_NODES:,} values (a YAML alias bomb?)")
            if chars > _MAX_EXPANDED_CHARS:
                raise _Refused(
                    f"aliases expand to more than {_size_text(_MAX_EXPANDED_CHARS)} of text (a YAML alias bomb?)"
                )
        return values, chars, height

    def _children(self, node: Node, path: str) -> list[tuple[str, Node, int]]:
        """The (path, node, line) of each child; a mapping's keys are checked here and count as text values."""
        if isinstance(node, SequenceNode):
            return [(f"{path}[{i}]", child, _line(node)) for i, child in enumerate(node.value)]
        children: list[tuple[str, Node, int]] = []
        seen: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == _MERGE:
                if "<<" in seen:
                    raise _Refused(
                        f"key '<<' appears twice ({_positions(seen['<<'], key_node)}); merge several mappings "
                        "with one '<<: [*first, *second]'"
                    )
                seen["<<"] = key_node
                self._check_merge_value(value_node, _line(key_node))
                children.append((path, value_node, _line(key_node)))  # merged keys land in this mapping
                continue
            if not (isinstance(key_node, ScalarNode) and key_node.tag == _STR):
                raise _Refused(self._not_a_string(key_node))
            name = key_node.value
            key_path = f"{path}.{name}" if path else name
            if name in seen:
                raise _Refused(
                    f"key '{key_path}' appears twice ({_positions(seen[name], key_node)}); the second would "
                    "silently replace the first"
                )
            seen[name] = key_node
            children.append((key_path, key_node, _line(key_node)))
            children.append((key_path, value_node, _line(key_node)))
        return children

    def _not_a_string(self, key_node: Node) -> str:
        if isinstance(key_node, ScalarNode):
            self._check_scalar(key_node, key=True)
            read_as = repr(_SCALAR_READERS[key_node.tag](key_node.value))
            return f"key at line {_line(key_node)} is not a string (read as {read_as}); quote it"
        self._check_collection_tag(key_node)
        return f"key at line {_line(key_node)} is not a string (read as {_kind(key_node)}); a key must be a string"

    def _check_scalar(self, node: ScalarNode, key: bool) -> None:
        if node.tag == _MERGE and not key:
            node.tag = _STR  # '<<' is a merge only as a key; as a value it is the text '<<'
            return
        form = _SCALAR_FORMS.get(node.tag)
        if form is None:
            raise _Refused(self._tag_refused(node))
        if not form(node.value):
            raise _Refused(f"{node.value[:40]!r} at line {_line(node)} is not a valid {_shown_tag(node.tag)}")
        try:
            _SCALAR_READERS[node.tag](node.value)
        except ValueError:  # Python refuses int() of more than 4,300 digits
            raise _Refused(
                f"the number at line {_line(node)} has {len(node.value):,} digits; quote it if it is text"
            ) from None

    def _check_collection_tag(self, node: Node) -> None:
        expected = _SEQ if isinstance(node, SequenceNode) else _MAP
        if node.tag == expected:
            return
        if node.tag in _SCALAR_FORMS or node.tag in (_SEQ, _MAP):
            raise _Refused(f"tag '{_shown_tag(node.tag)}' at line {_line(node)} does not fit {_kind(node)}")
        raise _Refused(self._tag_refused(node))

    @staticmethod
    def _tag_refused(node: Node) -> str:
        return (
            f"tag '{_shown_tag(node.tag)}' at line {_line(node)} is not allowed in a recipe (allowed: {_ALLOWED_TAGS})"
        )

    @staticmethod
    def _check_merge_value(value_node: Node, line: int) -> None:
        sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
        if not isinstance(value_node, (MappingNode, SequenceNode)) or not all(
            isinstance(source, MappingNode) for source in sources
        ):
            raise _Refused(f"'<<' at line {line} must be given a mapping or a list of mappings (e.g. <<: *defaults)")


def _positions(first: Node, second: Node) -> str:
    if _line(first) != _line(second):
        return f"lines {_line(first)} and {_line(second)}"
    return f"line {_line(first)}, columns {first.start_mark.column + 1} and {second.start_mark.column + 1}"


def _build(node: Node) -> Any:
    """Build plain Python values from a checked graph, one copy per alias site.

    Recursion is bounded by ``MAX_DEPTH`` (checked with aliases expanded) and the total work by ``MAX_NODES``.
    Merge keys follow the YAML merge spec: explicit keys win over merged ones, and earlier mappings in
    ``<<: [*a, *b]`` win over later ones.
    """
    if isinstance(node, ScalarNode):
        return _SCALAR_READERS[node.tag](node.value)
    if isinstance(node, SequenceNode):
        return [_build(child) for child in node.value]
    merged: dict[str, Any] = {}
    explicit: list[tuple[str, Any]] = []
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE:
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in sources:
                for key, value in _build(source).items():
                    merged.setdefault(key, value)
        else:
            explicit.append((key_node.value, _build(value_node)))
    result = merged  # merged keys first, as PyYAML orders them; an explicit key keeps a merged key's place
    result.update(explicit)
    return result


def _load(text: str, base_path: str) -> Any:
    """Parse ``text`` as one YAML document within the limits; every problem is raised as one ``_Refused`` line."""
    loader: _RecipeLoader | None = None
    try:
        loader = _RecipeLoader(text)  # the reader checks for non-printable characters here
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise _Refused(_syntax_problem(exc)) from None
    except yaml.reader.ReaderError as exc:
        raise _Refused(_character_problem(text, exc)) from None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        return None
    _GraphCheck(base_path).check(root)
    return _build(root)


def _syntax_problem(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "an unknown position"
    context = exc.context or ""
    if context.startswith("found duplicate anchor") and exc.context_mark is not None:
        anchor = context.removeprefix("found duplicate anchor ").split(";")[0]
        return (
            f"YAML syntax error at {where}: anchor {anchor} is defined twice (first at line "
            f"{exc.context_mark.line + 1}); give each anchor its own name"
        )
    problem = exc.problem or context or "the document cannot be parsed"
    if exc.problem and context and exc.problem.startswith("but "):  # "expected X" + "but found Y"
        return f"YAML syntax error at {where}: {context}, {exc.problem}".replace("\n", " ")
    context_mark = exc.context_mark
    if exc.problem and context and context_mark is not None and context_mark.line != mark.line:
        problem += f" ({context} at line {context_mark.line + 1})"
    return f"YAML syntax error at {where}: {problem}".replace("\n", " ")


def _character_problem(text: str, exc: yaml.reader.ReaderError) -> str:
    position = int(exc.position)
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return (
        f"holds the character U+{int(exc.character):04X} at line {line}, column {column}, which YAML does not "
        "allow (a control character); a recipe is text"
    )


def _size_text(size: int) -> str:
    return f"{size >> 20} MiB" if size % (1 << 20) == 0 else f"{size:,} bytes"


_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(mode: int) -> str:
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
    return f"is {kind}, not a regular file; a recipe must be a regular file"


def _stat(path: str) -> os.stat_result:
    try:
        return os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise _Refused(
                f"recipe file not found (looked at {os.path.abspath(path)}, a symbolic link to a missing file)"
            ) from None
        raise _Refused(f"recipe file not found (looked at {os.path.abspath(path)})") from None
    except PermissionError:
        raise _Refused("permission denied: a folder on the path cannot be searched") from None
    except ValueError:  # os.stat refuses a path with a NUL character
        raise _Refused("the path holds a NUL character") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _Refused("is a symbolic link loop") from None
        if exc.errno == errno.ENOTDIR:
            raise _Refused(
                f"recipe file not found (looked at {os.path.abspath(path)}; part of the path is a file, not a folder)"
            ) from None
        raise _Refused(f"cannot be read: {exc.strerror or exc}") from None


def _read_bytes(path: str) -> bytes:
    """Read at most ``MAX_FILE_BYTES + 1`` bytes of a regular file; never opens a FIFO or a device."""
    info = _stat(path)
    if stat.S_ISDIR(info.st_mode):
        raise _Refused("is a directory, not a recipe file")
    if not stat.S_ISREG(info.st_mode):
        raise _Refused(_not_regular(info.st_mode))
    too_big = f"a recipe may be at most {_size_text(MAX_FILE_BYTES)}"
    if info.st_size > MAX_FILE_BYTES:
        raise _Refused(f"is {info.st_size:,} bytes; {too_big}")
    try:
        # O_NONBLOCK: should the file be swapped for a FIFO after the stat, open still returns at once.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except PermissionError:
        raise _Refused("permission denied: cannot read this file (check its permissions)") from None
    except OSError as exc:
        raise _Refused(f"cannot be read: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _Refused(_not_regular(mode))
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise _Refused(f"cannot be read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if size > MAX_FILE_BYTES:  # it grew after the stat
        raise _Refused(f"is more than {MAX_FILE_BYTES:,} bytes; {too_big}")
    return b"".join(chunks)


def _looks_like_utf16(data: bytes) -> bool:
    """ASCII text in UTF-16 is valid UTF-8 with a NUL after (or before) every character."""
    sample = data[:256]
    half = len(sample) // 2
    return half >= 2 and 2 * max(sample[0::2].count(0), sample[1::2].count(0)) >= half


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        hint = "; it starts with a UTF-16 byte-order mark" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise _Refused(f"is not UTF-8 text (byte offset {exc.start}: {exc.reason}{hint}); save it as UTF-8") from None
    nul = data.find(b"\0")
    if nul >= 0:
        if _looks_like_utf16(data):
            raise _Refused(
                f"is not UTF-8 text (byte offset {nul}: a NUL byte beside every character, as in UTF-16); "
                "save it as UTF-8"
            )
        line = data.count(b"\n", 0, nul) + 1
        raise _Refused(f"holds a NUL byte at byte offset {nul} (line {line}); a recipe is text")
    return text.removeprefix("\ufeff")


def read_yaml_file(path: str | os.PathLike[str]) -> Any:
    """Read and parse one YAML file; every failure is a RecipeError(source=str(path)) with one line.

    The top-level value may be anything (``None`` for an empty file): the caller checks that it is a mapping.
    """
    try:
        return _load(_decode(_read_bytes(os.fspath(path))), "")
    except _Refused as exc:
        raise RecipeError([str(exc)], source=str(path)) from None


def _printable(text: str, limit: int | None = None) -> str:
    shown = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
    return shown if limit is None or len(shown) <= limit else shown[: limit - 3] + "..."


def parse_yaml_value(text: str, key: str) -> Any:
    """Parse the VALUE of an override KEY=VALUE with the same loader and limits; errors name the override.

    Duplicate-key messages give the full dotted path (``KEY.sub``), as the value lands at ``KEY``. Empty text
    is ``None``.
    """
    try:
        nul = text.find("\0")
        if nul >= 0:
            raise _Refused(f"holds a NUL character at position {nul}; a value is text")
        surrogate = _SURROGATE_RE.search(text)
        if surrogate is not None:  # how Python passes on command-line bytes that are not UTF-8
            raise _Refused(f"is not UTF-8 text (position {surrogate.start()}); pass the value as UTF-8")
        size = len(text.encode("utf-8"))
        if size > MAX_FILE_BYTES:
            raise _Refused(f"is {size:,} bytes; an override value may be at most {_size_text(MAX_FILE_BYTES)}")
        return _load(text, key)
    except _Refused as exc:
        raise RecipeError([f"override '{_printable(key)}={_printable(text, 60)}': {exc}"]) from None
