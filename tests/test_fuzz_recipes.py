"""Fuzzing the front door: hundreds of malformed recipes and overrides, each refused by ``tlhub validate``.

Every case is generated (deterministically, from ``SEED``) on top of the digits recipe with the tiny random
ViT, and checked the same way:

1. ``tlhub validate`` exits 2 within ``REFUSE_WITHIN_S`` seconds, with no traceback (printed or raised);
2. its stderr holds ONE message (one line starting ``error: ``; progress bars around it are tolerated) that
   names the recipe key path or the recipe file;
3. nothing is written: ``output_dir`` does not exist and the case's folder holds what it held before;
4. were validate to pass, ``tlhub run`` is run too and judged the same way, so a report says what a user
   would have met.

Legal-but-notable inputs (a batch larger than the training split, more samples per class than the data
has) must instead validate, run (exit 0) and be stated in the model card.

The CLI runs in-process (imports are paid once). Each call runs under a ``SIGALRM`` guard of ``GUARD_S``
seconds, so a regression that hangs fails its case instead of blocking CI. Alias bombs could also eat the
machine's memory inside C or Rust code that no signal interrupts, so those cases run in one child process
with a capped address space and a watchdog (restarted after a case that hangs).
"""

from __future__ import annotations

import json
import os
import queue
import random
import re
import shutil
import signal
import string
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, digits_recipe
from tests.test_plan import SCRATCH_VIT
from tlhub.recipe import apply_overrides

SEED = 20_240_611
REFUSE_WITHIN_S = 10.0  # the acceptance bound for a refusal
GUARD_S = 20  # a call still running then is stopped and reported as a hang
ISOLATED_MEMORY = 4 << 30  # address space of the child that runs the alias bombs (torch imports within 4 GiB)
MARKER = "PWNED"  # a file a YAML python/ payload would create; it must never appear

# --------------------------------------------------------------------------------------------------------------
# What a case expects to be named in the message


@dataclass(frozen=True)
class Key:
    """The message names this recipe key path (not merely as part of a longer name or of a file path)."""

    path: str

    def found(self, stderr: str, scrubbed: str) -> bool:
        return re.search(rf"(?<![\w.]){re.escape(self.path)}(?!\w)", scrubbed) is not None

    def __str__(self) -> str:
        return f"the key {self.path!r}"


@dataclass(frozen=True)
class Text:
    """The message holds this text verbatim (a file path, a plugin's words)."""

    text: str

    def found(self, stderr: str, scrubbed: str) -> bool:
        return self.text in stderr

    def __str__(self) -> str:
        return f"the text {_short(self.text)!r}"


@dataclass(frozen=True)
class AnyOf:
    """Any one of several fragments will do (e.g. whichever of two fractions a split runs out on)."""

    items: tuple[Key | Text, ...]

    def found(self, stderr: str, scrubbed: str) -> bool:
        return any(item.found(stderr, scrubbed) for item in self.items)

    def __str__(self) -> str:
        return " or ".join(map(str, self.items))


Expect = Key | Text | AnyOf

# --------------------------------------------------------------------------------------------------------------
# Cases


@dataclass
class Ctx:
    """The folder a case builds its inputs in, and the tiny checkpoint."""

    folder: Path
    tiny_vit: Path

    @property
    def out(self) -> Path:
        return self.folder / "out"

    @property
    def recipe_path(self) -> Path:
        return self.folder / "recipe.yaml"

    def digits(self, **sections: Any) -> dict[str, Any]:
        return digits_recipe(self.tiny_vit, self.out, **sections)

    def scratch(self, **config: Any) -> dict[str, Any]:
        """The digits recipe training a 1-layer ViT from scratch (``model.config``) instead of a checkpoint."""
        values: dict[str, Any] = dict(SCRATCH_CONFIG)
        values.update(config)
        recipe = self.digits()
        recipe["model"] = {"plugin": "image", "config": values}  # replaced whole: no checkpoint
        return recipe

    def write(self, content: dict[str, Any] | list[Any] | str | bytes, name: str = "recipe.yaml") -> Path:
        path = self.folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content if isinstance(content, str) else to_yaml(content), encoding="utf-8")
        return path


@dataclass
class Attempt:
    """One command line to try, and what its refusal (or, for legal cases, its model card) must say."""

    recipe: str
    overrides: list[str] = field(default_factory=list)
    expect: list[Expect] = field(default_factory=list)
    output_dir: str = ""
    must_not_exist: list[Path] = field(default_factory=list)
    card: list[str] = field(default_factory=list)  # legal cases: what the model card states


@dataclass(frozen=True)
class Case:
    kind: str
    name: str
    make: Callable[[Ctx], Attempt]
    legal: bool = False  # must validate and run (exit 0), and the card must state ``card``
    isolated: bool = False  # run in the memory-capped child process
    cpu_only: bool = False  # the input is a mistake only on a machine without an accelerator

    @property
    def id(self) -> str:
        return re.sub(r"[^\w.=+-]+", "_", f"{self.kind}-{self.name}")[:90]


SCRATCH_CONFIG: dict[str, Any] = SCRATCH_VIT["config"]


class Raw(str):
    """YAML text written into a recipe file as it is (a tag, an anchor, broken syntax)."""


class Pairs(list):  # type: ignore[type-arg]
    """A mapping written key by key, so that a key can appear twice."""


def flow(value: Any) -> str:
    """``value`` as one line of YAML: raw text as is, anything else as JSON (a subset of YAML flow style)."""
    return str(value) if isinstance(value, Raw) else json.dumps(value, ensure_ascii=False)


def to_yaml(node: dict[str, Any] | list[Any], indent: int = 0) -> str:
    """Block-style YAML whose leaves may be :class:`Raw` text and whose mappings may be :class:`Pairs`."""
    lines = []
    for key, value in node if isinstance(node, Pairs) else node.items():  # type: ignore[union-attr]
        pad = " " * indent
        if isinstance(value, (dict, Pairs)) and value:
            lines.append(f"{pad}{key}:\n{to_yaml(value, indent + 2)}")
        else:
            lines.append(f"{pad}{key}: {flow(value)}")
    return "\n".join(lines) + ("\n" if indent == 0 else "")


def put(recipe: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    return apply_overrides(recipe, {path: value})


def drop(recipe: dict[str, Any], path: str) -> dict[str, Any]:
    *parents, last = path.split(".")
    node = recipe
    for part in parents:
        node = node[part]
    del node[last]
    return recipe


def key_paths(recipe: dict[str, Any], prefix: str = "") -> list[str]:
    """Every key path of a recipe, sections before their keys."""
    paths = []
    for key, value in recipe.items():
        path = f"{prefix}{key}"
        paths.append(path)
        if isinstance(value, dict):
            paths += key_paths(value, path + ".")
    return paths


def at(
    where: str, path: str, value: Any, make_recipe: Callable[[Ctx], dict[str, Any]] | None = None
) -> Callable[[Ctx], Attempt]:
    """A case that sets ``path`` to ``value`` in the recipe file (``where='file'``) or as ``KEY=VALUE``
    (``where='override'``), and expects the message to name ``path``."""

    def make(ctx: Ctx) -> Attempt:
        recipe = make_recipe(ctx) if make_recipe else ctx.digits()
        if where == "file":
            ctx.write(put(recipe, path, value))
            return Attempt(str(ctx.recipe_path), [], [Key(path)], str(ctx.out))
        ctx.write(recipe)
        return Attempt(str(ctx.recipe_path), [f"{path}={flow(value)}"], [Key(path)], str(ctx.out))

    return make


def positions(rng: random.Random) -> Callable[[int], str]:
    """``where(i)``: the two positions (file, override) alternating from a random start, so a family has both."""
    start = rng.randint(0, 1)
    return lambda index: ("file", "override")[(index + start) % 2]


# -- hangs and memory ------------------------------------------------------------------------------------------


def laughs(rng: random.Random) -> tuple[str, str, str]:
    """A flow collection that defines a "billion laughs" chain of anchors; returns (text, last anchor, label)."""
    depth, width, form = rng.randint(7, 10), rng.randint(8, 10), rng.choice(["seq", "map", "string", "list-holder"])
    if form == "string":  # few values, but each alias copies a 64 KiB string: 16**3 copies are 256 MiB
        chunk = "".join(rng.choices(string.ascii_lowercase, k=64 * 1024))
        levels = [f"s0: &s0 {chunk}"] + [f"s{i}: &s{i} [{', '.join([f'*s{i - 1}'] * 16)}]" for i in range(1, 4)]
        return "{" + ", ".join(levels) + "}", "s3", "string64k-d4w16"
    if form == "map":
        keys = [f"k{j}" for j in range(width)]
        levels = ["m0: &m0 {" + ", ".join(f"{k}: lol" for k in keys) + "}"]
        levels += [f"m{i}: &m{i} {{" + ", ".join(f"{k}: *m{i - 1}" for k in keys) + "}" for i in range(1, depth)]
        return "{" + ", ".join(levels) + "}", f"m{depth - 1}", f"map-d{depth}w{width}"
    first = f"&l0 [{', '.join(['lol'] * width)}]"
    rest = [f"&l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, depth)]
    if form == "list-holder":
        return "[" + ", ".join([first, *rest]) + "]", f"l{depth - 1}", f"list-d{depth}w{width}"
    levels = [f"l{i}: {text}" for i, text in enumerate([first, *rest])]
    return "{" + ", ".join(levels) + "}", f"l{depth - 1}", f"seq-d{depth}w{width}"


BOMB_KEYS = [
    "data.load_options",
    "data.load_options.nested.deeper",
    "model.options",
    "train.epochs",
    "data.labels",
    "eval.metrics",
    "tuning.full.freeze",
    "output_dir",
    "data.input_column",
    "model.checkpoint",
]


def alias_bomb_cases() -> list[Case]:
    rng = random.Random(f"{SEED}:alias_bomb")
    cases = []
    for path in BOMB_KEYS:
        for where in ("file", "override", "anchors-elsewhere"):
            if where == "anchors-elsewhere" and rng.random() < 0.5:
                continue  # a sample of keys also gets the anchors defined under another top-level key
            text, last, label = laughs(rng)

            def make(ctx: Ctx, text: str = text, last: str = last, path: str = path, where: str = where) -> Attempt:
                if where == "override":
                    ctx.write(ctx.digits())
                    return Attempt(str(ctx.recipe_path), [f"{path}={text}"], [Key(path)], str(ctx.out))
                if where == "file":
                    ctx.write(put(ctx.digits(), path, Raw(text)))
                else:  # the anchors live under a key of their own, the alias lands at `path`
                    ctx.write(to_yaml({"x-anchors": Raw(text), **put(ctx.digits(), path, Raw(f"*{last}"))}))
                return Attempt(str(ctx.recipe_path), [], [Text(str(ctx.recipe_path))], str(ctx.out))

            cases.append(Case("alias_bomb", f"{where}-{path}-{label}", make, isolated=True))
    return cases


# -- tracebacks ------------------------------------------------------------------------------------------------


def refuse_file(build: Callable[[Ctx], Path | str]) -> Callable[[Ctx], Attempt]:
    """A case whose recipe file itself is broken: the message must name the file."""

    def make(ctx: Ctx) -> Attempt:
        path = str(build(ctx))
        return Attempt(path, [], [Text(path.rstrip("/"))], str(ctx.out))

    return make


def encoding_cases() -> list[Case]:
    rng = random.Random(f"{SEED}:encoding")
    cases = []

    def encoded(encoding: str, where: str) -> Callable[[Ctx], Path]:
        def build(ctx: Ctx) -> Path:
            recipe = ctx.digits()
            if where == "comment":
                text = "# Recette d'entraînement: chiffres manuscrits, modèle ViT\n" + to_yaml(recipe)
            elif where == "value":
                text = to_yaml(put(recipe, "data.input_column", "imagé"))
            elif where == "output_dir":
                text = to_yaml(put(recipe, "output_dir", str(ctx.folder / "résultats")))
            elif where == "smart-quotes":
                text = to_yaml(put(recipe, "tuning.strategy", Raw("\u201cfull\u201d")))
            else:
                text = to_yaml(recipe)
            return ctx.write(text.encode(encoding))

        return build

    for encoding, where in [
        ("latin-1", "comment"),
        ("latin-1", "value"),
        ("latin-1", "output_dir"),
        ("cp1252", "smart-quotes"),
        ("utf-16", "plain"),  # with a byte-order mark
        ("utf-16-le", "plain"),
        ("utf-16-be", "comment"),
        ("utf-32", "plain"),
    ]:
        cases.append(Case("not_utf8", f"{encoding}-{where}", refuse_file(encoded(encoding, where))))
    for size in (2, 9, 64, 700, 4096, 65536):
        data = bytes(rng.getrandbits(8) for _ in range(size)) + b"\xff"  # \xff never occurs in UTF-8

        def random_bytes(ctx: Ctx, data: bytes = data) -> Path:
            return ctx.write(data)

        cases.append(Case("not_utf8", f"random-bytes-{size}", refuse_file(random_bytes)))
    for where in ("start", "key", "value", "end", "comment", "random"):

        def with_nul(ctx: Ctx, where: str = where, seed: int = rng.getrandbits(32)) -> Path:
            text = "# digits\n" + to_yaml(ctx.digits())
            positions = {
                "start": 0,
                "key": text.index("epochs") + 2,
                "value": text.index("sklearn_digits") + 4,
                "end": len(text),
                "comment": 3,
                "random": random.Random(seed).randrange(len(text)),
            }
            return ctx.write((text[: positions[where]] + "\0" + text[positions[where] :]).encode())

        cases.append(Case("nul_byte", where, refuse_file(with_nul)))
    return cases


def deep(form: str, levels: int = 10_000) -> str:
    half = levels // 2
    return {
        "lists": "[" * levels + "1" + "]" * levels,
        "mappings": "{a: " * levels + "1" + "}" * levels,
        "mixed": "[{a: " * half + "1" + "}]" * half,
        "block": "- " * levels + "x",
    }[form]


def nesting_cases() -> list[Case]:
    rng = random.Random(f"{SEED}:nesting")
    cases = []
    for form in ("lists", "mappings", "mixed", "block"):

        def whole(ctx: Ctx, form: str = form) -> Path:
            return ctx.write(deep(form))

        cases.append(Case("deep_nesting", f"document-{form}", refuse_file(whole)))
    for path, form in [
        ("data.load_options", "mappings"),
        ("model.options", "lists"),
        ("train.epochs", "mixed"),
        ("eval.metrics", rng.choice(["lists", "mixed"])),
    ]:

        def in_file(ctx: Ctx, path: str = path, form: str = form) -> Path:
            return ctx.write(put(ctx.digits(), path, Raw(deep(form))))

        cases.append(Case("deep_nesting", f"file-{path}-{form}", refuse_file(in_file)))

        def block_at(ctx: Ctx, path: str = path) -> Path:  # `key:` then an indented `- - - ... x`
            top, _, rest = path.partition(".")
            text = to_yaml({k: v for k, v in ctx.digits().items() if k != top})
            return ctx.write(text + f"{top}:\n  " + (f"{rest}:\n    " if rest else "") + deep("block") + "\n")

        if rng.random() < 0.5:
            cases.append(Case("deep_nesting", f"file-{path}-block", refuse_file(block_at)))
    for path, form in [
        ("data.load_options", "lists"),
        ("model.options", "mappings"),
        ("train.epochs", "block"),
        ("tuning.full.freeze", "mixed"),
        ("data.labels", rng.choice(["lists", "mappings"])),
    ]:
        cases.append(Case("deep_nesting", f"override-{path}-{form}", at("override", path, Raw(deep(form)))))
    return cases


def not_a_file_cases() -> list[Case]:
    def self_loop(ctx: Ctx) -> Path:
        os.symlink("recipe.yaml", ctx.recipe_path)
        return ctx.recipe_path

    def two_cycle(ctx: Ctx) -> Path:
        os.symlink("b.yaml", ctx.folder / "a.yaml")
        os.symlink("a.yaml", ctx.folder / "b.yaml")
        return ctx.folder / "a.yaml"

    def three_cycle(ctx: Ctx) -> Path:
        for name, target in [("a", "b"), ("b", "c"), ("c", "a")]:
            os.symlink(f"{target}.yaml", ctx.folder / f"{name}.yaml")
        return ctx.folder / "b.yaml"

    def loop_in_folder(ctx: Ctx) -> Path:
        os.symlink("loop", ctx.folder / "loop")
        return ctx.folder / "loop" / "recipe.yaml"

    def long_chain(ctx: Ctx) -> Path:  # not a loop, but more links than the kernel follows (ELOOP)
        ctx.write(ctx.digits(), "real.yaml")
        previous = "real.yaml"
        for i in range(60):
            os.symlink(previous, ctx.folder / f"link{i}.yaml")
            previous = f"link{i}.yaml"
        return ctx.folder / previous

    def folder(ctx: Ctx) -> Path:
        return ctx.folder

    def folder_named_yaml(ctx: Ctx) -> Path:
        ctx.recipe_path.mkdir()
        return ctx.recipe_path

    def folder_with_slash(ctx: Ctx) -> str:
        (ctx.folder / "recipes").mkdir()
        return f"{ctx.folder / 'recipes'}/"

    def link_to_folder(ctx: Ctx) -> Path:
        (ctx.folder / "recipes").mkdir()
        os.symlink("recipes", ctx.recipe_path)
        return ctx.recipe_path

    builders: list[Callable[[Ctx], Path | str]] = [self_loop, two_cycle, three_cycle, loop_in_folder, long_chain]
    folders: list[Callable[[Ctx], Path | str]] = [folder, folder_named_yaml, folder_with_slash, link_to_folder]
    return [Case("symlink_loop", b.__name__, refuse_file(b)) for b in builders] + [
        Case("directory", b.__name__, refuse_file(b)) for b in folders
    ]


def override_syntax_cases() -> list[Case]:
    def given(item: str, fragment: Expect) -> Callable[[Ctx], Attempt]:
        def make(ctx: Ctx) -> Attempt:
            ctx.write(ctx.digits())
            return Attempt(str(ctx.recipe_path), [item], [fragment], str(ctx.out))

        return make

    items: list[tuple[str, Expect]] = [
        ("train..epochs=1", Text("train..epochs")),
        ("=3", Text("'=3'")),
        (".train=1", Text(".train=1")),
        ("train.=1", Text("train.=1")),
        ("..=1", Text("..=1")),
        ("train. .epochs=1", Text("train. .epochs")),
        (" =1", Text(" =1")),
        ("model.options.=1", Text("model.options.=1")),
        ("train.epochs", Key("train.epochs")),  # no '='
        ("epochs", Text("epochs")),
        ("train.epochs:2", Text("train.epochs:2")),
        ("", Text("''")),
        ("train.epochs.value=1", Key("train.epochs")),  # a key below a number
        ("output_dir.name=x", Key("output_dir")),
        ("model.plugin.name=image", Key("model.plugin")),
    ]
    return [Case("override_syntax", repr(item)[1:-1] or "empty", given(item, frag)) for item, frag in items]


def override_yaml_cases() -> list[Case]:
    rng = random.Random(f"{SEED}:override_yaml")
    paths = key_paths(digits_recipe("CKPT", Path("OUT")))
    values = [
        "[1,",
        "{a: 1",
        '"unclosed',
        "'unclosed",
        "]",
        "}",
        "{a: [}",
        "@at",
        "`tick",
        "a: b: c",
        "*undefined_alias",
        "&anchor_without_value",
        "[1, 2]]",
        "- a\n b: c",
        "!",
        "%YAML 1.2",
        "{a: 1}}",
        "? [a\n: b",
    ]
    cases = []
    for value in values:
        path = "train.epochs" if value == "[1," else rng.choice(paths)
        cases.append(Case("override_bad_yaml", f"{path}={value}", at("override", path, Raw(value))))
    return cases


def python_tag_cases() -> list[Case]:
    rng = random.Random(f"{SEED}:python_tag")
    paths = ["train.epochs", "data.load_options", "model.options", "output_dir", "data.labels", "eval.metrics"]

    def payloads(marker: Path) -> dict[str, str]:
        touch = json.dumps(f"touch {marker}")
        return {
            "os.system": f"!!python/object/apply:os.system [{touch}]",
            "subprocess": f"!!python/object/apply:subprocess.check_call [[touch, {json.dumps(str(marker))}]]",
            "new": f"!!python/object/new:os.system [{touch}]",
            "open": f"!!python/object/apply:builtins.open [{json.dumps(str(marker))}, w]",
            "name": "!!python/name:os.system",
            "module": "!!python/module:os",
            "verbatim": f"!<tag:yaml.org,2002:python/object/apply:os.system> [{touch}]",
            "binary": "!!binary aGVsbG8=",
            "timestamp": "!!timestamp 2024-01-01",
            "set": "!!set {a: null, b: null}",
            "omap": "!!omap [a: 1, b: 2]",
            "local": "!mytag value",
        }

    cases = []
    for name in payloads(Path("M")):
        for where in ("file", "override"):
            path = rng.choice(paths)

            def make(ctx: Ctx, name: str = name, where: str = where, path: str = path) -> Attempt:
                marker = ctx.folder / MARKER
                attempt = at(where, path, Raw(payloads(marker)[name]))(ctx)
                if where == "file":
                    attempt.expect = [Text(str(ctx.recipe_path))]
                attempt.must_not_exist.append(marker)
                return attempt

            cases.append(Case("python_tag", f"{where}-{name}-{path}", make))
    return cases


def scheduler_cases() -> list[Case]:
    rng = random.Random(f"{SEED}:scheduler")
    where_at = positions(rng)
    names = [
        "cosine_with_min_lr",
        "reduce_lr_on_plateau",
        "warmup_stable_decay",
        "cosine_warmup_with_min_lr",
        "Linear",
        "linear ",
        "",
        "none",
        "constant_with_warmup2",
    ]
    cases = []
    used = {}
    for i, name in enumerate(names):
        used[name] = where = where_at(i)
        cases.append(Case("scheduler", f"{where}-{name or 'empty'}", at(where, "train.scheduler", name)))
    for name in names[:4]:  # the schedules the engine cannot build also in the other position
        other = "override" if used[name] == "file" else "file"
        cases.append(Case("scheduler", f"{other}-{name}", at(other, "train.scheduler", name)))
    return cases


def seed_cases() -> list[Case]:
    rng = random.Random(f"{SEED}:seed")
    where_at = positions(rng)
    values: list[Any] = [-1, -(2**31), 2**32, 2**32 + 7, 2**64, -(10**30), 10**30, 1.5]
    cases = []
    for shift, path in enumerate(("train.seed", "data.split_seed")):
        for i, value in enumerate(values):
            where = where_at(i + shift)
            cases.append(Case("seed", f"{where}-{path}={value}", at(where, path, value)))
    return cases


def fraction_cases() -> list[Case]:
    rng = random.Random(f"{SEED}:fraction")
    where_at = positions(rng)
    test, validation = Key("data.test_fraction"), Key("data.validation_fraction")
    either = AnyOf((test, validation))
    pairs: list[tuple[float, float, Expect]] = [
        (0.0001, 0.1, test),  # one example cannot hold ten classes
        (0.2, 0.0001, validation),
        (0.001, 0.001, either),
        (1e-300, 0.1, test),
        (0.99, 0.99, either),  # nothing left to train on
        (0.95, 0.95, either),  # 89 left after the test split, 4 after validation
        (0.995, 0.1, test),
        (0.2, 0.999, validation),
        (0.0, 0.1, test),
        (0.2, 1.0, validation),
        (1.5, 0.1, test),
        (0.2, -0.1, validation),
    ]
    cases = []
    for i, (t, v, expect) in enumerate(pairs):
        where = where_at(i)

        def make(ctx: Ctx, t: float = t, v: float = v, expect: Expect = expect, where: str = where) -> Attempt:
            if where == "file":
                ctx.write(ctx.digits(data={"test_fraction": t, "validation_fraction": v}))
                overrides = []
            else:
                ctx.write(ctx.digits())
                overrides = [f"data.test_fraction={t!r}", f"data.validation_fraction={v!r}"]
            return Attempt(str(ctx.recipe_path), overrides, [expect], str(ctx.out))

        cases.append(Case("empty_split", f"{where}-test{t}-validation{v}", make))
    return cases


def label_column_cases() -> list[Case]:
    def data_case(where: str, data: dict[str, Any], expect: Expect) -> Callable[[Ctx], Attempt]:
        def make(ctx: Ctx) -> Attempt:
            if where == "file":
                ctx.write(ctx.digits(data=data))
                return Attempt(str(ctx.recipe_path), [], [expect], str(ctx.out))
            ctx.write(ctx.digits())
            return Attempt(
                str(ctx.recipe_path), [f"data.{k}={flow(v)}" for k, v in data.items()], [expect], str(ctx.out)
            )

        return make

    label, input_ = Key("data.label_column"), Key("data.input_column")
    specs: list[tuple[str, dict[str, Any], Expect]] = [
        ("file", {"label_column": "image"}, label),
        ("override", {"label_column": "image"}, label),
        ("file", {"input_column": "label"}, AnyOf((label, input_))),
        ("override", {"input_column": ["image"], "label_column": "image"}, label),
        ("file", {"label_column": "digit"}, label),
        ("override", {"label_column": ""}, label),
        ("file", {"input_column": ["image", "image"]}, input_),
    ]
    return [
        Case("label_column", f"{w}-{'-'.join(f'{k}={v}' for k, v in d.items())}", data_case(w, d, e))
        for w, d, e in specs
    ]


def duplicate_name_cases() -> list[Case]:
    rng = random.Random(f"{SEED}:duplicate_names")
    where_at = positions(rng)
    cases = []
    for i in range(4):
        names = [f"digit{d}" for d in range(10)]
        names[rng.randrange(10)] = names[rng.randrange(10)]
        if len(set(names)) == 10:  # both picks hit the same slot: force one duplicate
            names[0] = names[1]
        where = where_at(i)
        cases.append(Case("duplicate_names", f"{where}-data.labels-{i}", at(where, "data.labels", names)))
    cases.append(Case("duplicate_names", "file-data.labels-pair", at("file", "data.labels", ["a", "a"])))
    for metrics, where in [
        (["accuracy", "accuracy"], "file"),
        (["accuracy", "f1", "accuracy"], "override"),
        (["f1", "accuracy", "f1"], "file"),
    ]:
        cases.append(
            Case("duplicate_names", f"{where}-eval.metrics-{'-'.join(metrics)}", at(where, "eval.metrics", metrics))
        )
    cases.append(
        Case("duplicate_names", "override-tuning.full.freeze", at("override", "tuning.full.freeze", ["vit", "vit"]))
    )

    def lora_twice(ctx: Ctx) -> dict[str, Any]:
        return ctx.digits(tuning={"strategy": "lora"})

    cases.append(
        Case(
            "duplicate_names",
            "file-tuning.lora.target_modules",
            at("file", "tuning.lora.target_modules", ["q_proj", "q_proj"], lora_twice),
        )
    )
    return cases


def long_output_dir_cases() -> list[Case]:
    def long_path(kind: str) -> Callable[[Ctx], str]:
        def build(ctx: Ctx) -> str:
            if kind == "name-300":
                return str(ctx.folder / ("r" * 300))
            if kind == "name-256":
                return str(ctx.folder / ("r" * 256))
            if kind == "name-accents":  # 130 characters, 260 bytes in UTF-8
                return str(ctx.folder / ("é" * 130))
            if kind == "name-euro":
                return str(ctx.folder / ("€" * 86))
            if kind == "path-5000":
                parts = ["p" * 200] * 25
                return str(ctx.folder.joinpath(*parts))
            if kind == "path-4096":
                base = str(ctx.folder)
                return base + "/" + "/".join(["q" * 99] * ((4200 - len(base)) // 100))
            return str(ctx.folder / ("x" * 100) / ("y" * 300) / "run")  # a long name in the middle

        return build

    cases = []
    kinds = ["name-300", "name-256", "name-accents", "name-euro", "path-5000", "path-4096", "middle"]
    for kind, where in [(kind, where) for kind in kinds for where in ("file", "override")]:

        def make(ctx: Ctx, kind: str = kind, where: str = where) -> Attempt:
            target = long_path(kind)(ctx)
            attempt = at(where, "output_dir", target)(ctx)
            attempt.output_dir = target
            return attempt

        cases.append(Case("long_output_dir", f"{where}-{kind}", make))
    return cases


def recursive_alias_cases() -> list[Case]:
    specs = [
        ("file", "data.load_options", "&a {x: *a}"),
        ("file", "data.load_options", "&a {x: 1, y: [*a]}"),
        ("file", "model.options", "&a {x: *a}"),
        ("file", "data.load_options.inner", "&a {x: {y: *a}}"),
        ("file", "eval.metrics", "&a [*a]"),
        ("override", "data.load_options", "&a {x: *a}"),
        ("override", "model.options", "&a [1, *a]"),
        ("override", "tuning.full.freeze", "&a [vit, *a]"),
    ]
    cases = []
    for where, path, text in specs:

        def make(ctx: Ctx, where: str = where, path: str = path, text: str = text) -> Attempt:
            attempt = at(where, path, Raw(text))(ctx)
            if where == "file":
                attempt.expect = [Text(str(ctx.recipe_path))]
            return attempt

        cases.append(Case("recursive_alias", f"{where}-{path}-{text}", make))

    def section_alias(ctx: Ctx) -> Attempt:  # a whole section that contains itself
        recipe = ctx.digits()
        del recipe["train"]
        ctx.write(to_yaml(recipe) + "train: &t {epochs: 1, again: *t}\n")
        return Attempt(str(ctx.recipe_path), [], [Text(str(ctx.recipe_path))], str(ctx.out))

    cases.append(Case("recursive_alias", "file-train-section", section_alias))
    return cases


def freeze_cases() -> list[Case]:
    specs = [
        ("file", ["vit", "classifier"]),
        ("override", ["vit", "classifier"]),
        ("file", ["classifier"]),
        ("override", ["classifier", "vit"]),
        ("file", [""]),  # the root module: everything
        ("override", ["vit.embeddings", "vit.layers", "vit.layernorm", "classifier"]),
    ]
    return [
        Case("freeze_all", f"{where}-{'+'.join(modules) or 'root'}", at(where, "tuning.full.freeze", modules))
        for where, modules in specs
    ]


def model_config_cases() -> list[Case]:
    rng = random.Random(f"{SEED}:model_config")
    where_at = positions(rng)
    sizes = ["image_size", "patch_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"]
    words = {
        "image_size": "sixteen",
        "patch_size": "four",
        "hidden_size": "thirty-two",
        "num_hidden_layers": "one",
        "num_attention_heads": "two",
        "intermediate_size": "sixty-four",
    }
    specs: list[tuple[str, dict[str, Any], list[Expect]]] = []
    for i, key in enumerate(sizes):
        specs.append((where_at(i), {key: -rng.choice([1, 2, 4, 16, 32])}, [Key("model.config"), Text(key)]))
        specs.append((where_at(i + 1), {key: words[key]}, [Key("model.config"), Text(key)]))
    for i, key in enumerate(rng.sample(sizes, 3)):
        specs.append((where_at(i), {key: 0}, [Key("model.config"), Text(key)]))
    specs += [
        ("file", {"hidden_size": "32"}, [Key("model.config"), Text("hidden_size")]),
        ("override", {"image_size": 16.5}, [Key("model.config"), Text("image_size")]),
        ("file", {"patch_size": 32}, [Key("model.config"), Text("patch_size")]),  # a patch larger than the image
        ("override", {"patch_size": 17}, [Key("model.config"), Text("patch_size")]),
        ("file", {"image_size": 2, "patch_size": 4}, [Key("model.config"), Text("patch_size")]),
        ("file", {"hiden_size": 32}, [Key("model.config"), Text("hiden_size")]),  # unknown config keys
        ("override", {"num_layers": 1}, [Key("model.config"), Text("num_layers")]),
        ("file", {"foo_bar": True}, [Key("model.config"), Text("foo_bar")]),
        ("override", {"model_type": "vitt"}, [Key("model.config.model_type")]),
        ("file", {"model_type": 7}, [Key("model.config.model_type")]),
    ]
    cases = []
    for where, values, expect in specs:

        def make(
            ctx: Ctx, where: str = where, values: dict[str, Any] = values, expect: list[Expect] = expect
        ) -> Attempt:
            if where == "file":
                ctx.write(ctx.scratch(**values))
                return Attempt(str(ctx.recipe_path), [], expect, str(ctx.out))
            ctx.write(ctx.scratch())
            overrides = [f"model.config.{k}={flow(v)}" for k, v in values.items()]
            return Attempt(str(ctx.recipe_path), overrides, expect, str(ctx.out))

        cases.append(Case("model_config", f"{where}-{'-'.join(f'{k}={v}' for k, v in values.items())}", make))

    def no_model_type(ctx: Ctx) -> Attempt:
        recipe = ctx.scratch()
        del recipe["model"]["config"]["model_type"]
        ctx.write(recipe)
        return Attempt(str(ctx.recipe_path), [], [Key("model.config")], str(ctx.out))

    cases.append(Case("model_config", "file-no-model_type", no_model_type))
    return cases


# -- silent success where the user made a mistake --------------------------------------------------------------


def duplicate_key_cases() -> list[Case]:
    rng = random.Random(f"{SEED}:duplicate_key")

    def top_level(section: str, separated: bool) -> Callable[[Ctx], Attempt]:
        def make(ctx: Ctx) -> Attempt:
            recipe = ctx.digits()
            second = dict(recipe[section]) if isinstance(recipe[section], dict) else recipe[section]
            if isinstance(second, dict):
                second = {**second, next(iter(second)): second[next(iter(second))]}
            pairs = Pairs(recipe.items())
            index = [k for k, _ in pairs].index(section)
            pairs.insert(len(pairs) if separated else index + 1, (section, second))
            ctx.write(pairs)
            return Attempt(str(ctx.recipe_path), [], [Text(str(ctx.recipe_path)), Key(section)], str(ctx.out))

        return make

    def nested(path: str, value: Any, separated: bool) -> Callable[[Ctx], Attempt]:
        def make(ctx: Ctx) -> Attempt:
            recipe = ctx.digits(data={"splits": {"train": "train"}})
            section, key = path.rsplit(".", 1)
            node = recipe
            for part in section.split("."):
                node = node[part]
            pairs = Pairs(node.items())
            index = [k for k, _ in pairs].index(key)
            pairs.insert(len(pairs) if separated else index + 1, (key, value))
            put(recipe, section, pairs)
            ctx.write(recipe)
            return Attempt(str(ctx.recipe_path), [], [Text(str(ctx.recipe_path)), Key(path)], str(ctx.out))

        return make

    cases = []
    for section in ("train", "model", "data", "output_dir", "tuning"):
        separated = rng.random() < 0.5
        cases.append(
            Case(
                "duplicate_key", f"top-{section}-{'apart' if separated else 'adjacent'}", top_level(section, separated)
            )
        )
    for path, value in [
        ("train.epochs", 5),
        ("train.learning_rate", 0.5),
        ("data.source", "sklearn_digits"),
        ("model.plugin", "image"),
        ("tuning.strategy", "head"),
        ("data.splits.train", "train"),
        ("train.mixed_precision", "no"),
    ]:
        separated = rng.random() < 0.5
        cases.append(
            Case(
                "duplicate_key", f"nested-{path}-{'apart' if separated else 'adjacent'}", nested(path, value, separated)
            )
        )

    def one_line(ctx: Ctx) -> Attempt:
        ctx.write(put(ctx.digits(), "train", Raw("{epochs: 1, batch_size: 8, epochs: 2}")))
        return Attempt(str(ctx.recipe_path), [], [Text(str(ctx.recipe_path)), Key("train.epochs")], str(ctx.out))

    cases.append(Case("duplicate_key", "flow-train.epochs", one_line))
    for path, text, key in [
        ("train", "{epochs: 1, epochs: 2}", "train.epochs"),
        ("data.load_options", "{a: 1, b: 2, a: 3}", "data.load_options.a"),
        ("tuning", "{strategy: full, full: {freeze: []}, strategy: head}", "tuning.strategy"),
    ]:

        def override(ctx: Ctx, path: str = path, text: str = text, key: str = key) -> Attempt:
            attempt = at("override", path, Raw(text))(ctx)
            attempt.expect = [Key(key)]
            return attempt

        cases.append(Case("duplicate_key", f"override-{key}", override))
    return cases


def yaml11_bool_cases() -> list[Case]:
    rng = random.Random(f"{SEED}:yaml11_bool")
    where_at = positions(rng)
    cases = []
    words = ["yes", "true", "on", "True", "ON", "y", "Yes", "no", "off", "false", "TRUE", "n"]
    for i, word in enumerate(words):
        where = where_at(i)
        cases.append(Case("yaml11_bool", f"{where}-train.epochs={word}", at(where, "train.epochs", Raw(word))))
    for path in [
        "train.batch_size",
        "data.train_samples_per_class",
        "train.num_workers",
        "train.gradient_accumulation_steps",
    ]:
        where = rng.choice(["file", "override"])
        word = rng.choice(words)
        cases.append(Case("yaml11_bool", f"{where}-{path}={word}", at(where, path, Raw(word))))
    return cases


def non_finite_cases() -> list[Case]:
    rng = random.Random(f"{SEED}:non_finite")
    where_at = positions(rng)
    cases = []
    specs = [
        ("train.learning_rate", v)
        for v in ["inf", ".inf", "nan", ".nan", "-.inf", "1e30", "1e309", "Infinity", ".Inf", "-inf", "1e999"]
    ]
    specs += [("train.weight_decay", v) for v in ["inf", ".inf", ".NaN", "1e30"]]
    specs += [
        ("tuning.full.learning_rate", ".inf"),
        ("tuning.head.learning_rate", ".nan"),
        ("tuning.lora.learning_rate", "1e30"),
        ("train.warmup_ratio", ".inf"),
        ("train.max_grad_norm", ".inf"),
        ("data.test_fraction", ".nan"),
        ("tuning.lora.dropout", ".nan"),
    ]
    for i, (path, text) in enumerate(specs):
        where = where_at(i)
        cases.append(Case("non_finite", f"{where}-{path}={text}", at(where, path, Raw(text))))
    return cases


def fp16_cases() -> list[Case]:
    def with_strategy(strategy: str) -> Callable[[Ctx], dict[str, Any]]:
        return lambda ctx: ctx.digits(tuning={"strategy": strategy})

    return [
        Case("fp16_on_cpu", "file-full", at("file", "train.mixed_precision", "fp16"), cpu_only=True),
        Case("fp16_on_cpu", "override-full", at("override", "train.mixed_precision", "fp16"), cpu_only=True),
        Case(
            "fp16_on_cpu",
            "override-head",
            at("override", "train.mixed_precision", "fp16", with_strategy("head")),
            cpu_only=True,
        ),
        Case(
            "fp16_on_cpu",
            "file-lora",
            at("file", "train.mixed_precision", "fp16", with_strategy("lora")),
            cpu_only=True,
        ),
    ]


def heads_cases() -> list[Case]:
    specs = [
        ("file", 30, 4),
        ("override", 30, 4),
        ("file", 32, 3),
        ("override", 10, 4),
        ("file", 33, 2),
        ("override", 64, 5),
    ]
    cases = []
    for where, hidden, heads in specs:

        def make(ctx: Ctx, where: str = where, hidden: int = hidden, heads: int = heads) -> Attempt:
            expect: list[Expect] = [Key("model.config"), Text("num_attention_heads")]
            if where == "file":
                ctx.write(ctx.scratch(hidden_size=hidden, num_attention_heads=heads))
                return Attempt(str(ctx.recipe_path), [], expect, str(ctx.out))
            ctx.write(ctx.scratch())
            overrides = [f"model.config.hidden_size={hidden}", f"model.config.num_attention_heads={heads}"]
            return Attempt(str(ctx.recipe_path), overrides, expect, str(ctx.out))

        cases.append(Case("heads_divide", f"{where}-hidden{hidden}-heads{heads}", make))
    return cases


def lora_target_cases() -> list[Case]:
    def lora(ctx: Ctx) -> dict[str, Any]:
        return ctx.digits(tuning={"strategy": "lora"})

    path = "tuning.lora.target_modules"
    return [
        Case("lora_targets", "file-empty", at("file", path, [], lora)),
        Case("lora_targets", "override-empty", at("override", path, [], lora)),
        Case("lora_targets", "override-missing-module", at("override", path, ["query_proj"], lora)),
        Case("lora_targets", "file-empty-name", at("file", path, [""], lora)),
        Case("lora_targets", "file-head-only", at("file", path, ["classifier"], lora)),  # adapts nothing either
    ]


def split_reuse_cases() -> list[Case]:
    specs = [
        ("file", {"train": "train", "test": "train"}, "data.splits.test"),
        ("override", {"train": "train", "test": "train"}, "data.splits.test"),
        ("file", {"train": "train", "validation": "train"}, "data.splits.validation"),
        ("override", {"train": "train", "validation": "train", "test": "train"}, "data.splits"),
        ("file", {"train": "a", "test": "b", "validation": "b"}, "data.splits.test"),
        ("override", {"train": "train", "test": "train", "validation": "x"}, "data.splits.test"),
    ]
    cases = []
    for where, splits, key in specs:

        def make(ctx: Ctx, where: str = where, splits: dict[str, str] = splits, key: str = key) -> Attempt:
            if where == "file":
                ctx.write(ctx.digits(data={"splits": splits}))
                return Attempt(str(ctx.recipe_path), [], [Key(key)], str(ctx.out))
            ctx.write(ctx.digits())
            overrides = [f"data.splits.{role}={name}" for role, name in splits.items()]
            return Attempt(str(ctx.recipe_path), overrides, [Key(key)], str(ctx.out))

        cases.append(Case("split_reuse", f"{where}-{'-'.join(f'{r}={n}' for r, n in splits.items())}", make))
    return cases


def ignored_source_key_cases() -> list[Case]:
    specs: list[tuple[str, str, Any]] = [
        ("file", "data.load_options", {"as_frame": True}),
        ("override", "data.load_options", {"x": 1}),
        ("file", "data.data_files", "digits.csv"),
        ("override", "data.data_files", {"train": "a.csv"}),
        ("file", "data.data_files", ["a.csv", "b.csv"]),
        ("override", "data.name", "digits"),
        ("file", "data.name", "mnist"),
        ("override", "data.load_options", {"name": "x", "data_files": "y"}),
    ]
    return [Case("ignored_source_key", f"{w}-{p}={flow(v)}", at(w, p, v)) for w, p, v in specs]


# -- legal but notable: must run, and the model card must say so ----------------------------------------------


def legal_cases() -> list[Case]:
    def legal(where: str, values: dict[str, Any], card: list[str]) -> Callable[[Ctx], Attempt]:
        def make(ctx: Ctx) -> Attempt:
            if where == "file":
                recipe = ctx.digits()
                for path, value in values.items():
                    put(recipe, path, value)
                ctx.write(recipe)
                return Attempt(str(ctx.recipe_path), [], [], str(ctx.out), card=card)
            ctx.write(ctx.digits())
            overrides = [f"{k}={flow(v)}" for k, v in values.items()]
            return Attempt(str(ctx.recipe_path), overrides, [], str(ctx.out), card=card)

        return make

    def bigger_batch(n: int) -> str:
        return f"train.batch_size {n} is larger than the"

    def more_per_class(n: int) -> list[str]:
        return [f"at most {n} examples per class", "had fewer"]

    specs: list[tuple[str, dict[str, Any], list[str]]] = [
        ("override", {"train.batch_size": 4096}, [bigger_batch(4096)]),
        ("file", {"train.batch_size": 121}, [bigger_batch(121)]),  # the training split is 12 x 10 = 120
        ("override", {"train.batch_size": 65536}, [bigger_batch(65536)]),
        ("override", {"data.train_samples_per_class": 100000}, more_per_class(100000)),
        ("file", {"data.train_samples_per_class": 1000}, more_per_class(1000)),
        (
            "file",
            {"data.train_samples_per_class": 100000, "train.batch_size": 4096},
            [*more_per_class(100000), bigger_batch(4096)],
        ),
    ]
    return [
        Case(
            "legal_notable",
            f"{w}-{'-'.join(f'{k}={v}' for k, v in values.items())}",
            legal(w, values, card),
            legal=True,
        )
        for w, values, card in specs
    ]


# -- validate said ok, the run failed: validate must now refuse ------------------------------------------------


def checkpoint_cases() -> list[Case]:
    def broken(file: str, how: str) -> Callable[[Ctx], Attempt]:
        def make(ctx: Ctx) -> Attempt:
            checkpoint = ctx.folder / "ckpt"
            shutil.copytree(ctx.tiny_vit, checkpoint)
            target = checkpoint / file
            target.unlink()
            if how == "corrupt":
                target.write_text("{not json")
            elif how == "empty":
                target.write_text("")
            elif how == "list":
                target.write_text("[]")
            elif how == "null":
                target.write_text("null")
            elif how == "random-bytes":
                target.write_bytes(bytes(random.Random(f"{SEED}:{file}").getrandbits(8) for _ in range(512)))
            elif how == "unknown-class":
                target.write_text(json.dumps({"image_processor_type": "NoSuchImageProcessor"}))
            elif how == "a-folder":
                target.mkdir()
            elif how == "symlink-loop":
                os.symlink(file, target)
            elif how == "empty-object":
                target.write_text("{}")
            ctx.write(ctx.digits(model={"plugin": "image", "checkpoint": str(checkpoint)}))
            return Attempt(str(ctx.recipe_path), [], [Key("model.checkpoint")], str(ctx.out))

        return make

    specs = [
        ("preprocessor_config.json", how)
        for how in (
            "missing",
            "corrupt",
            "empty",
            "list",
            "null",
            "random-bytes",
            "unknown-class",
            "a-folder",
            "symlink-loop",
        )
    ]
    specs += [("config.json", "corrupt"), ("config.json", "empty-object"), ("config.json", "random-bytes")]
    return [Case("checkpoint_files", f"{file}-{how}", broken(file, how)) for file, how in specs]


def bad_image_cases() -> list[Case]:
    def folder_with(bad_name: str, how: str) -> Callable[[Ctx], Attempt]:
        def make(ctx: Ctx) -> Attempt:
            import numpy as np
            import PIL.Image

            rng = np.random.default_rng(0)
            images = ctx.folder / "images"
            for label in ("cat", "dog", "owl"):
                (images / label).mkdir(parents=True)
                for i in range(8):
                    pixels = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
                    PIL.Image.fromarray(pixels).save(images / label / f"{i}.png")
            bad = images / bad_name
            bad.parent.mkdir(parents=True, exist_ok=True)
            good = (images / "cat" / "0.png").read_bytes()
            bad.write_bytes(
                {
                    "random-bytes": bytes(rng.integers(0, 256, 3000, dtype=np.uint8)),
                    "zero-bytes": b"",
                    "truncated": good[: len(good) // 2],
                    "text": b"this is not an image\n",
                }[how]
            )
            data = {
                "source": "imagefolder",
                "data_files": {"train": f"{images}/**"},
                "input_column": "image",
                "test_fraction": 0.25,
                "validation_fraction": 0.25,
                "train_samples_per_class": None,
            }
            ctx.write(ctx.digits(data=data))
            return Attempt(str(ctx.recipe_path), [], [Text(bad.name)], str(ctx.out))

        return make

    specs = [
        ("dog/bad.png", "random-bytes"),
        ("cat/empty.png", "zero-bytes"),
        ("owl/cut.png", "truncated"),
        ("dog/notes.jpg", "text"),
    ]
    return [Case("unreadable_image", f"{name}-{how}", folder_with(name, how)) for name, how in specs]


def plugin_option_cases() -> list[Case]:
    """Keys the image plugin does not take (it takes only ``augment``), other plugins' options among them."""
    specs: list[tuple[str, str, Any, str]] = [
        ("override", "model.options", {"bad_img": 1}, "bad_img"),
        ("file", "model.options", {"bad_img": 1}, "bad_img"),
        ("override", "model.options.bad_img", 1, "bad_img"),
        ("file", "model.options", {"crop": 0.9}, "crop"),
        ("override", "model.options", {"max_length": 16}, "max_length"),  # the text plugin's option
        ("file", "model.options", {"max_seconds": 1}, "max_seconds"),  # the audio plugin's option
        ("override", "model.options", {"": 1}, "''"),
        ("file", "model.options", {"bad_img": None}, "bad_img"),
    ]
    cases = []
    for where, path, value, key in specs:

        def make(ctx: Ctx, where: str = where, path: str = path, value: Any = value, key: str = key) -> Attempt:
            attempt = at(where, path, value)(ctx)
            attempt.expect = [Key(f"model.options.{key}"), Text("unknown key (valid keys here: augment)")]
            return attempt

        cases.append(Case("plugin_options", f"{where}-{path}={flow(value)}", make))
    return cases


# -- generic garbage: every key path of the digits recipe ------------------------------------------------------

# Deleting these is refused; deleting any other key of the digits recipe leaves a legal recipe (defaults).
REQUIRED = {
    "model",
    "model.plugin",
    "model.checkpoint",  # or model.config
    "data",
    "data.source",
    "data.input_column",
    "data.test_fraction",  # or data.splits.test
    "data.validation_fraction",  # or data.splits.validation
    "tuning",
    "tuning.strategy",
    "output_dir",
}
# Mutations that leave a legal recipe: not garbage.
LEGAL_MUTATIONS = {("data.train_samples_per_class", "null")}


def garbage(rng: random.Random) -> dict[str, Any]:
    """A value of each other YAML type (and a few out-of-range ones)."""
    return {
        "list": [rng.randint(-5, 5), rng.choice(["a", "image", "full"])],
        "mapping": {rng.choice(["zz", "value", "x-y"]): rng.choice([1, "b", None, [1]])},
        "null": None,
        "bool": rng.choice([True, False]),
        "huge_int": 10**30,
        "negative": rng.choice([-1, -7, -0.5, -(10**6)]),
        "empty_string": "",
        "long_string": "".join(rng.choices(string.ascii_letters + "_-", k=rng.randint(300, 5000))),
    }


def generic_cases() -> list[Case]:
    rng = random.Random(f"{SEED}:generic")
    paths = key_paths(digits_recipe("CKPT", Path("OUT")))
    cases = []
    for path in paths:
        for kind, value in garbage(rng).items():
            if (path, kind) in LEGAL_MUTATIONS:
                continue
            for where in ("file", "override"):
                cases.append(Case("generic", f"{where}-{path}-{kind}", at(where, path, value)))
    for path in paths:
        if path in REQUIRED:

            def without(ctx: Ctx, path: str = path) -> Attempt:
                ctx.write(drop(ctx.digits(), path))
                return Attempt(str(ctx.recipe_path), [], [Key(path)], str(ctx.out))

            cases.append(Case("generic", f"file-{path}-deleted", without))
    return cases


FAMILIES: list[Callable[[], list[Case]]] = [
    alias_bomb_cases,
    encoding_cases,
    nesting_cases,
    not_a_file_cases,
    override_syntax_cases,
    override_yaml_cases,
    python_tag_cases,
    scheduler_cases,
    seed_cases,
    fraction_cases,
    label_column_cases,
    duplicate_name_cases,
    long_output_dir_cases,
    recursive_alias_cases,
    freeze_cases,
    model_config_cases,
    duplicate_key_cases,
    yaml11_bool_cases,
    non_finite_cases,
    fp16_cases,
    heads_cases,
    lora_target_cases,
    split_reuse_cases,
    ignored_source_key_cases,
    legal_cases,
    checkpoint_cases,
    bad_image_cases,
    plugin_option_cases,
    generic_cases,
]
CASES = [case for family in FAMILIES for case in family()]
assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"

# --------------------------------------------------------------------------------------------------------------
# Running a command: in-process under a SIGALRM guard, or in the memory-capped child


class Hung(BaseException):
    """Raised by the SIGALRM guard; a BaseException so that neither click nor tlhub catches it."""


@dataclass
class Outcome:
    args: list[str]
    exit_code: int | None  # None: stopped by the guard
    stdout: str
    stderr: str
    seconds: float
    raised: str = ""  # a traceback the CLI let escape (CliRunner catches it instead of printing it)


def _on_alarm(signum: int, frame: Any) -> None:
    raise Hung


def invoke(call: Callable[..., Any], args: list[str]) -> Outcome:
    """Run the CLI with ``args`` through ``call`` (the ``cli`` fixture or a CliRunner), stopped at ``GUARD_S``."""
    import traceback

    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, GUARD_S)
    start = time.perf_counter()
    try:
        result = call(*args)
    except Hung:
        return Outcome(args, None, "", "", time.perf_counter() - start)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    seconds = time.perf_counter() - start
    raised = ""
    if result.exc_info is not None and not isinstance(result.exc_info[1], SystemExit):
        raised = "".join(traceback.format_exception(*result.exc_info))
    return Outcome(args, result.exit_code, result.stdout, result.stderr, seconds, raised)


def _isolated_main() -> None:
    """The child process: read jobs (JSON) from stdin, print one result line per job as soon as it is done."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (ISOLATED_MEMORY, ISOLATED_MEMORY))  # a bomb fails here, not the host
    from click.testing import CliRunner

    from tlhub.cli import main

    def call(*args: str) -> Any:
        return CliRunner().invoke(main, list(args))

    for job in json.loads(sys.stdin.read()):
        outcomes = [invoke(call, job["validate"])]
        if outcomes[0].exit_code == 0:
            outcomes.append(invoke(call, job["run"]))
        print("@@case " + json.dumps({"id": job["id"], "outcomes": [o.__dict__ for o in outcomes]}), flush=True)


def run_isolated(jobs: list[dict[str, Any]]) -> dict[str, list[Outcome]]:
    """Run ``jobs`` in a memory-capped child; a job that outlives its watchdog is reported as hung and the
    child restarted for the rest."""
    results: dict[str, list[Outcome]] = {}
    pending = list(jobs)
    while pending:
        child = subprocess.Popen(
            [sys.executable, "-c", "from tests.test_fuzz_recipes import _isolated_main; _isolated_main()"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump(stream: Any = child.stdout, lines: queue.Queue[str | None] = lines) -> None:
            for line in stream:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        assert child.stdin is not None
        child.stdin.write(json.dumps(pending))
        child.stdin.close()
        chatter: list[str] = []
        deadline = time.monotonic() + 60 + 2 * GUARD_S  # the first job also pays for the imports
        while pending:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = "@@hung"
            if line is None or line == "@@hung":
                job = pending.pop(0)
                why = "did not finish (watchdog)" if line == "@@hung" else "the child process died"
                results[job["id"]] = [Outcome(job["validate"], None, "", f"{why}:\n{''.join(chatter)[-4000:]}", -1.0)]
                child.kill()
                child.wait()
                break
            if not line.startswith("@@case "):
                chatter.append(line)
                continue
            record = json.loads(line[len("@@case ") :])
            results[record["id"]] = [Outcome(**o) for o in record["outcomes"]]
            pending = [j for j in pending if j["id"] != record["id"]]
            chatter = []
            deadline = time.monotonic() + 2 * GUARD_S + 5
        else:
            child.wait()
    return results


# --------------------------------------------------------------------------------------------------------------
# Judging


PROGRESS = re.compile(r"\d+%\||\bit/s\]|examples/s\]|s/it\]")


def error_lines(stderr: str) -> list[str]:
    """The lines of stderr that start a message (progress bars and their carriage returns set aside)."""
    lines = [line for chunk in stderr.split("\n") for line in chunk.split("\r")]
    return [line for line in lines if line.startswith("error: ") and not PROGRESS.search(line)]


def judge_refusal(outcome: Outcome, attempt: Attempt, scrub: Callable[[str], str]) -> list[str]:
    problems = []
    if outcome.exit_code is None:
        why = f": {outcome.stderr}" if outcome.stderr else ""
        return [f"did not finish within {GUARD_S} s (stopped by the guard){why}"]
    if outcome.exit_code != 2:
        problems.append(f"exit code {outcome.exit_code}, expected 2")
    if outcome.raised:
        problems.append("raised an exception (a user would see this traceback)")
    if "Traceback" in outcome.stdout + outcome.stderr:
        problems.append("printed a traceback")
    if outcome.seconds > REFUSE_WITHIN_S:
        problems.append(f"took {outcome.seconds:.1f} s, more than {REFUSE_WITHIN_S:.0f} s")
    starts = error_lines(outcome.stderr)
    if len(starts) != 1:
        problems.append(f"stderr holds {len(starts)} lines starting 'error: ', expected exactly one message")
    scrubbed = scrub(outcome.stderr)
    for expect in attempt.expect:
        if not expect.found(outcome.stderr, scrubbed):
            problems.append(f"stderr does not name {expect}")
    return problems


def judge_legal(outcome: Outcome) -> list[str]:
    if outcome.exit_code is None:
        return [f"did not finish within {GUARD_S} s (stopped by the guard)"]
    problems = []
    if outcome.exit_code != 0:
        problems.append(f"exit code {outcome.exit_code}, expected 0 (legal input)")
    if outcome.raised or "Traceback" in outcome.stdout + outcome.stderr:
        problems.append("raised or printed a traceback")
    return problems


def snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.is_dir() else set()


def _short(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else f"{text[: limit - 40]}...<{len(text):,} chars>...{text[-20:]}"


def report(case: Case, attempt: Attempt, outcomes: list[Outcome], problems: list[str]) -> str:
    lines = [f"case {case.id} ({'legal: must run' if case.legal else 'must be refused'}):"]
    for o in outcomes:
        shown = " ".join(_short(repr(a) if not a or " " in a or "\n" in a else a) for a in o.args)
        lines += [f"$ tlhub {shown}", f"  exit {o.exit_code} after {o.seconds:.2f} s"]
        lines += ["  --- stdout ---", o.stdout.rstrip(), "  --- stderr ---", o.stderr.rstrip()]
        if o.raised:
            lines += ["  --- raised ---", o.raised.rstrip()]
    recipe = Path(attempt.recipe)
    try:
        if recipe.is_file() and not recipe.is_symlink():
            start = recipe.read_bytes()[:1500].decode("utf-8", "replace")
            lines += ["  --- recipe file (start) ---", start]
    except OSError:
        pass
    lines.append("expected: " + ("; ".join(map(str, attempt.expect)) or "a run (exit 0)"))
    lines += ["problems:"] + [f"  - {p}" for p in problems]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def isolated(tmp_path_factory: pytest.TempPathFactory, tiny_vit: Path) -> dict[str, Any]:
    """Build every isolated case, run them all in one memory-capped child; id -> (attempt, folder, its files
    before, outcomes)."""
    built = {}
    jobs = []
    for case in (c for c in CASES if c.isolated):
        ctx = Ctx(tmp_path_factory.mktemp(case.kind), tiny_vit)
        attempt = case.make(ctx)
        built[case.id] = (attempt, ctx.folder, snapshot(ctx.folder))
        args = [attempt.recipe, *attempt.overrides]
        jobs.append({"id": case.id, "validate": ["validate", *args], "run": ["run", *args]})
    outcomes = run_isolated(jobs)
    return {case_id: (*built[case_id], outcomes[case_id]) for case_id in built}


def _basetemp_scrubber(basetemp: Path) -> Callable[[str], str]:
    roots = {str(basetemp), str(basetemp.resolve())}
    return lambda text: re.sub("|".join(map(re.escape, roots)) + r"[^\s'\":,)]*", "<tmp>", text)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_input_is_refused(
    case: Case,
    cli: Any,
    tiny_vit: Path,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> None:
    if case.cpu_only:
        import torch

        if torch.accelerator.is_available():
            pytest.skip("fp16 is legal on this machine: it has an accelerator")
    scrub = _basetemp_scrubber(tmp_path_factory.getbasetemp())
    written_by_validate = False
    if case.isolated:
        attempt, folder, before, outcomes = request.getfixturevalue("isolated")[case.id]
    else:
        folder = tmp_path / "case"
        folder.mkdir()
        attempt = case.make(Ctx(folder, tiny_vit))
        before = snapshot(folder)
        args = [attempt.recipe, *attempt.overrides]
        outcomes = [invoke(cli, ["validate", *args])]
        if os.path.lexists(attempt.output_dir):
            written_by_validate = True
        if outcomes[0].exit_code == 0:  # validate passed: see what a run does with it
            outcomes.append(invoke(cli, ["run", *args]))

    problems: list[str] = []
    validate, run = outcomes[0], outcomes[1] if len(outcomes) > 1 else None
    if written_by_validate:
        problems.append(f"validate wrote {_short(attempt.output_dir)}")
    if case.legal:
        problems += [f"validate: {p}" for p in judge_legal(validate)]
        if run is not None:
            problems += [f"run: {p}" for p in judge_legal(run)]
            card = Path(attempt.output_dir) / "README.md"
            text = card.read_text() if card.is_file() else ""
            if not text:
                problems.append(f"run: no model card at {card}")
            problems += [f"model card does not state {s!r}" for s in attempt.card if text and s not in text]
    else:
        problems += [f"validate: {p}" for p in judge_refusal(validate, attempt, scrub)]
        if run is not None:
            problems += [f"run: {p}" for p in judge_refusal(run, attempt, scrub)]
        if os.path.lexists(attempt.output_dir):
            problems.append(f"output_dir {_short(attempt.output_dir)} exists afterwards")
        if added := snapshot(folder) - before:
            problems.append(f"files appeared in the case folder: {sorted(added)[:10]}")
    for path in attempt.must_not_exist:
        if os.path.lexists(path):
            problems.append(f"{path} exists: a YAML payload ran")
    assert not problems, report(case, attempt, outcomes, problems)


def test_every_kind_is_fuzzed_many_times() -> None:
    """The acceptance asks for at least 150 generated cases across every kind of the issue."""
    kinds = {c.kind for c in CASES}
    assert len(CASES) >= 150, len(CASES)
    assert {
        "alias_bomb",
        "not_utf8",
        "nul_byte",
        "deep_nesting",
        "symlink_loop",
        "directory",
        "override_bad_yaml",
        "python_tag",
        "scheduler",
        "seed",
        "empty_split",
        "label_column",
        "duplicate_names",
        "long_output_dir",
        "recursive_alias",
        "freeze_all",
        "model_config",
        "duplicate_key",
        "yaml11_bool",
        "non_finite",
        "fp16_on_cpu",
        "heads_divide",
        "lora_targets",
        "split_reuse",
        "ignored_source_key",
        "legal_notable",
        "checkpoint_files",
        "unreadable_image",
        "plugin_options",
        "generic",
        "override_syntax",
    } <= kinds
