"""The hardened YAML reader: hostile files and override values give one clear line, never a hang or a traceback."""

from __future__ import annotations

import ast
import math
import os
import random
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tlhub import safe_yaml
from tlhub.errors import RecipeError
from tlhub.safe_yaml import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, parse_yaml_value, read_yaml_file

SHIPPED = sorted((REPO / "recipes").glob("*.yaml"))

LOL = '"lol"'
BILLION_LAUGHS = f"a: &a [{', '.join([LOL] * 9)}]\n" + "".join(
    f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]\n"
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
)


def write(tmp_path: Path, content: str | bytes, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def refusal(path: Path) -> str:
    """The one problem line of reading ``path``, after checking that the error names the file."""
    with pytest.raises(RecipeError) as info:
        read_yaml_file(path)
    error = info.value
    assert error.source == str(path)
    assert len(error.problems) == 1, error.problems
    assert str(error) == f"{path}: {error.problems[0]}"
    assert "\n" not in error.problems[0]
    return error.problems[0]


def override_refusal(text: str, key: str = "train.epochs") -> str:
    with pytest.raises(RecipeError) as info:
        parse_yaml_value(text, key)
    assert info.value.source is None
    assert len(info.value.problems) == 1, info.value.problems
    return info.value.problems[0]


def nested_block_mapping(depth: int) -> str:
    return "".join(" " * level + f"k{level}:\n" for level in range(depth - 1)) + " " * (depth - 1) + "k: 1\n"


# --- the file itself -----------------------------------------------------------------------------------------


def test_missing_file_names_the_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    problem = refusal(Path("nope.yaml"))
    assert problem == f"recipe file not found (looked at {tmp_path / 'nope.yaml'})"


def test_dangling_symlink_says_so(tmp_path: Path) -> None:
    link = tmp_path / "link.yaml"
    link.symlink_to(tmp_path / "gone.yaml")
    assert refusal(link) == f"recipe file not found (looked at {link}, a symbolic link to a missing file)"


def test_directory(tmp_path: Path) -> None:
    assert refusal(tmp_path) == "is a directory, not a recipe file"


def test_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").symlink_to(tmp_path / "b.yaml")
    (tmp_path / "b.yaml").symlink_to(tmp_path / "a.yaml")
    assert refusal(tmp_path / "a.yaml") == "is a symbolic link loop"


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "recipe.yaml"
    os.mkfifo(fifo)
    problems: list[str] = []

    def read() -> None:
        try:
            read_yaml_file(fifo)
        except RecipeError as exc:
            problems.extend(exc.problems)

    reader = threading.Thread(target=read, daemon=True)  # a daemon, so a blocked open cannot hang the run
    reader.start()
    reader.join(timeout=2)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert problems == ["is a FIFO (named pipe), not a regular file; a recipe must be a regular file"]


@pytest.mark.skipif(not Path("/dev/null").is_char_device(), reason="needs /dev/null")
def test_character_device() -> None:
    problem = refusal(Path("/dev/null"))
    assert problem == "is a character device, not a regular file; a recipe must be a regular file"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read any file")
def test_permission_denied(tmp_path: Path) -> None:
    path = write(tmp_path, "a: 1\n")
    path.chmod(0)
    try:
        assert refusal(path) == "permission denied: cannot read this file (check its permissions)"
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_permission_denied_on_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same refusal, simulated, so that it is also checked where tests run as root."""
    path = write(tmp_path, "a: 1\n")
    real_open = os.open

    def deny(file: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if os.fspath(file) == str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    assert refusal(path) == "permission denied: cannot read this file (check its permissions)"


def test_too_big(tmp_path: Path) -> None:
    path = write(tmp_path, b"#" * (MAX_FILE_BYTES + 1))
    assert refusal(path) == "is 1,048,577 bytes; a recipe may be at most 1 MiB"


def test_at_the_size_limit_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, b"a: 1\n" + b"#" * (MAX_FILE_BYTES - 6) + b"\n")
    assert path.stat().st_size == MAX_FILE_BYTES
    assert read_yaml_file(path) == {"a": 1}


def test_accepts_str_and_pathlike(tmp_path: Path) -> None:
    path = write(tmp_path, "a: 1\n")
    assert read_yaml_file(path) == read_yaml_file(str(path)) == {"a": 1}


@pytest.mark.parametrize(("content", "expected"), [("", None), ("# only a comment\n", None), ("5\n", 5)])
def test_top_level_may_be_anything(tmp_path: Path, content: str, expected: Any) -> None:
    assert read_yaml_file(write(tmp_path, content)) == expected


# --- encoding ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "café: 1\n".encode("latin-1"),
            "is not UTF-8 text (byte offset 3: invalid continuation byte); save it as UTF-8",
        ),
        (
            "a: 1\n".encode("utf-16"),
            "is not UTF-8 text (byte offset 0: invalid start byte; it starts with a UTF-16 byte-order mark); "
            "save it as UTF-8",
        ),
        (
            "a: 1\nb: 2\n".encode("utf-16-le"),
            "is not UTF-8 text (byte offset 1: a NUL byte beside every character, as in UTF-16); save it as UTF-8",
        ),
    ],
    ids=["latin-1", "utf-16-with-bom", "utf-16-without-bom"],
)
def test_not_utf8(tmp_path: Path, content: bytes, expected: str) -> None:
    assert refusal(write(tmp_path, content)) == expected


def test_random_bytes(tmp_path: Path) -> None:
    content = random.Random(0).randbytes(256)
    with pytest.raises(UnicodeDecodeError) as info:
        content.decode("utf-8")
    problem = refusal(write(tmp_path, content))
    assert problem == f"is not UTF-8 text (byte offset {info.value.start}: {info.value.reason}); save it as UTF-8"


def test_nul_byte(tmp_path: Path) -> None:
    problem = refusal(write(tmp_path, b"a: 1\nb: \x00\n"))
    assert problem == "holds a NUL byte at byte offset 8 (line 2); a recipe is text"


def test_control_character(tmp_path: Path) -> None:
    problem = refusal(write(tmp_path, "a: 1\nb: x\x07\n"))
    assert problem == (
        "holds the character U+0007 at line 2, column 5, which YAML does not allow (a control character); "
        "a recipe is text"
    )


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    assert read_yaml_file(write(tmp_path, b"\xef\xbb\xbfname: caf\xc3\xa9\n")) == {"name": "café"}


# --- syntax and nesting --------------------------------------------------------------------------------------


def test_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    problem = refusal(write(tmp_path, "a: [1,\nb: 2\n"))
    assert problem.startswith("YAML syntax error at line 3, column 1: expected ',' or ']'")
    assert problem.endswith("(while parsing a flow sequence at line 1)")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("a: 1\n---\nb: 2\n", "line 2, column 1: expected a single document in the stream, but found another document"),
        ("a: *nowhere\n", "line 1, column 4: found undefined alias 'nowhere'"),
        ("a: &x 1\nb: &x 2\n", "line 2, column 4: anchor 'x' is defined twice (first at line 1)"),
    ],
    ids=["two-documents", "undefined-alias", "duplicate-anchor"],
)
def test_other_yaml_errors(tmp_path: Path, content: str, expected: str) -> None:
    assert f"YAML syntax error at {expected}" in refusal(write(tmp_path, content))


def test_nesting_at_the_limit_is_read(tmp_path: Path) -> None:
    value = read_yaml_file(write(tmp_path, "[" * MAX_DEPTH + "]" * MAX_DEPTH))
    for _ in range(MAX_DEPTH - 1):
        value = value[0]
    assert value == []


@pytest.mark.parametrize(
    ("content", "line"),
    [
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), 1),
        ("- " * 10_000 + "x\n", 1),
        ("[" * 10_000 + "]" * 10_000, 1),
        ("{a: " * 10_000 + "1" + "}" * 10_000, 1),
        (nested_block_mapping(100), MAX_DEPTH + 1),
    ],
    ids=["65-flow", "10000-block-sequence", "10000-flow-sequence", "10000-flow-mapping", "100-block-mapping"],
)
def test_deep_nesting_is_refused_while_composing(tmp_path: Path, content: str, line: int) -> None:
    assert refusal(write(tmp_path, content)) == f"nesting deeper than 64 levels at line {line}"


def test_too_many_values_without_aliases(tmp_path: Path) -> None:
    content = "[" + "1," * (MAX_NODES + 1) + "]\n"
    assert refusal(write(tmp_path, content)) == "holds more than 100,000 values (line 1); a recipe is far smaller"


# --- aliases -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [BILLION_LAUGHS, "train:\n  payload:\n" + "".join(f"    {line}\n" for line in BILLION_LAUGHS.splitlines())],
    ids=["top-level", "inside-a-mapping-value"],
)
def test_billion_laughs_is_refused_fast(tmp_path: Path, content: str) -> None:
    path = write(tmp_path, content)
    start = time.perf_counter()
    problem = refusal(path)
    assert time.perf_counter() - start < 2
    assert problem == "aliases expand to more than 100,000 values (a YAML alias bomb?)"


def test_one_long_string_aliased_many_times_is_refused(tmp_path: Path) -> None:
    content = "a: &s '" + "x" * 500_000 + "'\nb: [" + ", ".join(["*s"] * 40) + "]\n"
    assert refusal(write(tmp_path, content)) == "aliases expand to more than 16 MiB of text (a YAML alias bomb?)"


def test_aliases_within_budget_become_independent_copies(tmp_path: Path) -> None:
    data = read_yaml_file(write(tmp_path, "defaults: &d {lr: 0.1, layers: [1, 2]}\ntrain: *d\neval: *d\n"))
    assert data == {
        "defaults": {"lr": 0.1, "layers": [1, 2]},
        "train": {"lr": 0.1, "layers": [1, 2]},
        "eval": data["train"],
    }
    # An override of train.lr must not change eval.lr: aliases are expanded into copies, not shared objects.
    assert data["train"] is not data["eval"] and data["train"]["layers"] is not data["defaults"]["layers"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("a: &a [*a]\n", "the value anchored at line 1 contains an alias to itself (at 'a[0]')"),
        ("a: &a\n  b: *a\n", "the value anchored at line 1 contains an alias to itself (at 'a.b')"),
        ("a: &a\n  <<: *a\n", "the value anchored at line 1 contains an alias to itself (at 'a')"),
    ],
    ids=["list", "mapping", "merge"],
)
def test_recursive_alias_is_refused(tmp_path: Path, content: str, expected: str) -> None:
    assert refusal(write(tmp_path, content)) == f"{expected}; a recipe cannot contain itself"


def test_depth_is_checked_with_aliases_expanded(tmp_path: Path) -> None:
    # Each line nests the previous anchor 40 levels deeper: every line is shallow, the expansion is not.
    lines = ["a0: &a0 1"]
    for i in range(1, 4):
        lines.append(f"a{i}: &a{i} " + "[" * 40 + f"*a{i - 1}" + "]" * 40)
    assert refusal(write(tmp_path, "\n".join(lines) + "\n")) == (
        "nesting deeper than 64 levels at line 3 once aliases are expanded"
    )


# --- keys ----------------------------------------------------------------------------------------------------


def test_duplicate_top_level_key(tmp_path: Path) -> None:
    content = "train:\n  epochs: 1\nmodel: {}\ntrain:\n  epochs: 2\n"
    assert refusal(write(tmp_path, content)) == (
        "key 'train' appears twice (lines 1 and 4); the second would silently replace the first"
    )


def test_duplicate_nested_key_names_the_dotted_path(tmp_path: Path) -> None:
    content = "model:\n  plugin: image\ntrain:\n  epochs: 1\n  batch_size: 8\n  epochs: 3\n"
    assert refusal(write(tmp_path, content)) == (
        "key 'train.epochs' appears twice (lines 4 and 6); the second would silently replace the first"
    )


def test_duplicate_key_inside_a_list(tmp_path: Path) -> None:
    content = "data:\n  files:\n    - {path: a, path: b}\n"
    assert refusal(write(tmp_path, content)) == (
        "key 'data.files[0].path' appears twice (line 3, columns 8 and 17); the second would silently replace the first"
    )


def test_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    content = (
        "base: &base {lr: 0.1, epochs: 3}\n"
        "extra: &extra {lr: 0.5, seed: 7}\n"
        "train:\n  <<: *base\n  epochs: 5\n"
        "eval:\n  batch_size: 2\n  <<: [*base, *extra]\n"
    )
    data = read_yaml_file(write(tmp_path, content))
    assert data["train"] == {"lr": 0.1, "epochs": 5}
    # Explicit keys win; of the merged mappings, the first in the list wins, as the YAML merge spec says
    # (https://yaml.org/type/merge.html). PyYAML 6.0.x lets the last one win here: lr would be 0.5.
    assert data["eval"] == {"lr": 0.1, "epochs": 3, "seed": 7, "batch_size": 2}
    assert data["train"] == yaml.safe_load(content)["train"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("b: &b {x: 1}\na:\n  <<: *b\n  <<: *b\n", "key '<<' appears twice (lines 3 and 4); merge several mappings"),
        ("a:\n  <<: 5\n", "'<<' at line 2 must be given a mapping or a list of mappings (e.g. <<: *defaults)"),
    ],
    ids=["twice", "not-a-mapping"],
)
def test_bad_merge_keys(tmp_path: Path, content: str, expected: str) -> None:
    assert refusal(write(tmp_path, content)).startswith(expected)


def test_merge_key_text_as_a_value_is_a_string(tmp_path: Path) -> None:
    assert read_yaml_file(write(tmp_path, "a: <<\n")) == {"a": "<<"}


@pytest.mark.parametrize(
    ("content", "read_as"),
    [
        ("a: 1\ntrue: 2\n", "True"),
        ("a: 1\n1: 2\n", "1"),
        ("a: 1\n1.5: 2\n", "1.5"),
        ("a: 1\nnull: 2\n", "None"),
        ("a: 1\n~: 2\n", "None"),
    ],
)
def test_scalar_keys_must_be_strings(tmp_path: Path, content: str, read_as: str) -> None:
    assert refusal(write(tmp_path, content)) == f"key at line 2 is not a string (read as {read_as}); quote it"


@pytest.mark.parametrize(
    ("content", "read_as"),
    [("a: 1\n[x, y]: 2\n", "a list"), ("a: 1\n? {x: 1}\n: 2\n", "a mapping")],
    ids=["list", "mapping"],
)
def test_unhashable_keys_are_refused(tmp_path: Path, content: str, read_as: str) -> None:
    problem = refusal(write(tmp_path, content))
    assert problem == f"key at line 2 is not a string (read as {read_as}); a key must be a string"


def test_quoted_keys_are_strings(tmp_path: Path) -> None:
    assert read_yaml_file(write(tmp_path, "'true': 1\n\"1\": 2\n")) == {"true": 1, "1": 2}


# --- tags ----------------------------------------------------------------------------------------------------

ALLOWED = "(allowed: !!str, !!int, !!float, !!bool, !!null, !!seq, !!map)"


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        ("!!python/object/apply:os.system ['touch MARKER']", "!!python/object/apply:os.system"),
        ("!!python/name:os.system", "!!python/name:os.system"),
        ("!!python/object:collections.OrderedDict {}", "!!python/object:collections.OrderedDict"),
        ("!custom x", "!custom"),
        ("!!binary aGVsbG8=", "!!binary"),
        ("!!timestamp 2024-01-01", "!!timestamp"),
        ("!!set {a, b}", "!!set"),
    ],
)
def test_tags_outside_the_safe_set_are_refused(tmp_path: Path, value: str, tag: str) -> None:
    marker = tmp_path / "pwned"
    path = write(tmp_path, "a: 1\nb: " + value.replace("MARKER", str(marker)) + "\n")
    assert refusal(path) == f"tag '{tag}' at line 2 is not allowed in a recipe {ALLOWED}"
    assert not marker.exists()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("!!str [1]", "tag '!!str' at line 1 does not fit a list"),
        ("!!int abc", "'abc' at line 1 is not a valid !!int"),
        ("!!bool yes", "'yes' at line 1 is not a valid !!bool"),
        ("9" * 5000, "the number at line 1 has 5,000 digits; quote it if it is text"),
    ],
    ids=["str-on-a-list", "int", "bool", "huge-int"],
)
def test_scalars_that_do_not_fit_their_tag(tmp_path: Path, value: str, expected: str) -> None:
    assert refusal(write(tmp_path, f"a: {value}\n")) == expected


def test_explicit_safe_tags_work(tmp_path: Path) -> None:
    content = "a: !!str 12\nb: !!float 1\nc: !!int '7'\nd: !!null ''\ne: !!seq [1]\nf: !!map {x: y}\n"
    assert read_yaml_file(write(tmp_path, content)) == {
        "a": "12",
        "b": 1.0,
        "c": 7,
        "d": None,
        "e": [1],
        "f": {"x": "y"},
    }


# --- YAML 1.2 core schema ------------------------------------------------------------------------------------

RESOLUTION = [
    ("yes", "yes"),
    ("no", "no"),
    ("on", "on"),
    ("off", "off"),
    ("y", "y"),
    ("true", True),
    ("False", False),
    ("TRUE", True),
    ("~", None),
    ("null", None),
    ("NULL", None),
    ("", None),
    ("12", 12),
    ("-3", -3),
    ("0x1F", 31),
    ("0o17", 15),
    ("0777", 777),
    ("1_000", "1_000"),
    ("1:30", "1:30"),
    ("1e-3", 0.001),
    ("5e-4", 0.0005),
    ("-2.5E+3", -2500.0),
    (".5", 0.5),
    ("1.", 1.0),
    (".inf", math.inf),
    ("-.inf", -math.inf),
    ("2024-01-01", "2024-01-01"),
    (".", "."),
]


@pytest.mark.parametrize(("text", "expected"), RESOLUTION, ids=[repr(text) for text, _ in RESOLUTION])
def test_yaml_1_2_core_resolution(tmp_path: Path, text: str, expected: Any) -> None:
    from_file = read_yaml_file(write(tmp_path, f"v: {text}\n"))["v"]
    from_override = parse_yaml_value(text, "v")
    for value in (from_file, from_override):
        assert value == expected and type(value) is type(expected), (text, value)


def test_nan_stays_a_float() -> None:
    assert math.isnan(parse_yaml_value(".nan", "v"))


def test_pyyaml_safe_loader_keeps_its_own_resolvers() -> None:
    parse_yaml_value("yes", "v")
    assert yaml.safe_load("yes") is True
    assert yaml.safe_load("1e-3") == "1e-3"


# --- shipped recipes and imports -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_recipes_read_as_safe_load_reads_them(path: Path) -> None:
    assert read_yaml_file(path) == yaml.safe_load(path.read_text(encoding="utf-8"))


def test_imports_only_the_standard_library_yaml_and_errors() -> None:
    tree = ast.parse(Path(safe_yaml.__file__).read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    heavy = {name for name in imported if name.split(".")[0] in {"torch", "transformers", "pydantic", "datasets"}}
    allowed_third_party = {"yaml", "yaml.nodes", "tlhub.errors"}
    assert not heavy
    third_party = {name for name in imported if name.split(".")[0] not in sys.stdlib_module_names} - {"__future__"}
    assert third_party <= allowed_third_party, third_party


# --- override values -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("yes", "yes"), ("1e-3", 0.001), ("", None), ("  ", None), ("[1, 2]", [1, 2]), ("{a: 1}", {"a": 1})],
)
def test_override_values(text: str, expected: Any) -> None:
    assert parse_yaml_value(text, "train.epochs") == expected


def test_override_syntax_error() -> None:
    assert override_refusal("[1,") == (
        "override 'train.epochs=[1,': YAML syntax error at line 1, column 4: expected the node content, "
        "but found '<stream end>'"
    )


def test_override_python_tag_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "p"
    problem = override_refusal(f"!!python/object/apply:os.system ['touch {marker}']", key="x")
    assert problem.startswith("override 'x=!!python/object/apply:os.system ['touch /")
    assert "...': tag" in problem  # the value is shown truncated
    assert problem.endswith(f": tag '!!python/object/apply:os.system' at line 1 is not allowed in a recipe {ALLOWED}")
    assert not marker.exists()


def test_override_long_text_is_truncated() -> None:
    problem = override_refusal("[" + "1, " * 100, key="x")
    shown = problem.split("'")[1]
    assert shown == "x=" + ("[" + "1, " * 100)[:57] + "..."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\x00b", "override 'train.epochs=a\\x00b': holds a NUL character at position 1; a value is text"),
        ("caf\udce9", "override 'train.epochs=caf\\udce9': is not UTF-8 text (position 3); pass the value as UTF-8"),
    ],
    ids=["nul", "surrogate-escaped-bytes"],
)
def test_override_characters(text: str, expected: str) -> None:
    assert override_refusal(text) == expected


def test_override_duplicate_key_names_the_full_path() -> None:
    assert override_refusal("{a: 1, a: 2}", key="model") == (
        "override 'model={a: 1, a: 2}': key 'model.a' appears twice (line 1, columns 2 and 8); the second would "
        "silently replace the first"
    )


def test_override_limits() -> None:
    assert override_refusal(BILLION_LAUGHS).endswith(
        ": aliases expand to more than 100,000 values (a YAML alias bomb?)"
    )
    assert override_refusal("[" * 10_000).endswith(": nesting deeper than 64 levels at line 1")
    too_big = "x" * (MAX_FILE_BYTES + 1)
    assert override_refusal(too_big).endswith(": is 1,048,577 bytes; an override value may be at most 1 MiB")
