"""Helpers for testing a tlhub plugin package, the checks tlhub's own tests make.

- :func:`fake_images`, :func:`fake_audio`, :func:`fake_texts`: a small labelled dataset of each built-in input
  type, as files a recipe reads (class-named folders of PNG or WAV files, a CSV of texts); :func:`fake_series`,
  numeric sequences as JSON lines, for a plugin that adds a sequence input type (time series, tabular rows);
- :func:`registered`: a plugin module in tlhub's plugin manager for the length of a ``with`` block, as its
  entry point puts it once the package is installed;
- :func:`changed_tensors` and :func:`assert_head_only`: head-only training must leave every pretrained tensor
  bit-identical;
- :func:`lora_reload_logits`: a LoRA run's saved adapter, loaded onto its base checkpoint with peft, must give
  the logits of the merged model the run saved.

Build tiny random checkpoints with transformers itself (``SomeConfig(hidden_size=8, ...)``, ``from_config``,
``save_pretrained`` with its processor); the packages under ``examples/plugins/`` and their ``tests/`` show the
whole pattern. Nothing here imports pytest.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any


@contextmanager
def registered(plugin: ModuleType | object, name: str) -> Iterator[None]:
    """``plugin`` (a module or object with ``@tlhub.hookimpl`` functions) registered under ``name`` (its entry
    point's name) inside the ``with`` block; tlhub's own plugins and installed entry points load first. When an
    installed entry point already registered that very plugin, nothing changes."""
    from tlhub.plugins import load_plugins, pm

    load_plugins()
    if pm.get_plugin(name) is plugin:
        yield
        return
    pm.register(plugin, name=name)
    try:
        yield
    finally:
        pm.unregister(plugin)


def fake_images(
    folder: Path, classes: tuple[str, ...] = ("cat", "dog"), per_class: int = 8, size: int = 16, seed: int = 0
) -> Path:
    """``folder/<class>/<i>.png``: random RGB pictures, each class a little brighter than the last, so a model
    can learn them. Returns ``folder`` (``data: {source: imagefolder, data_dir: folder}`` or a plugin's own)."""
    import numpy as np
    import PIL.Image

    rng = np.random.default_rng(seed)
    for index, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 128, (size, size, 3)) + 127 * index // max(len(classes) - 1, 1)
            PIL.Image.fromarray(pixels.astype(np.uint8)).save(folder / name / f"{i}.png")
    return folder


def fake_audio(
    folder: Path,
    classes: tuple[str, ...] = ("low", "high"),
    per_class: int = 8,
    seconds: float = 0.5,
    rate: int = 16_000,
    seed: int = 0,
) -> Path:
    """``folder/<class>/<i>.wav``: 16-bit mono tones with noise, a higher pitch per class."""
    import wave

    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    for index, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            samples = 0.5 * np.sin(2 * np.pi * 220 * (index + 1) * t) + 0.05 * rng.standard_normal(t.size)
            with wave.open(str(folder / name / f"{i}.wav"), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(rate)
                w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return folder


def fake_texts(path: Path, classes: tuple[str, ...] = ("ham", "spam"), per_class: int = 8, seed: int = 0) -> Path:
    """A CSV with columns ``text`` and ``label``: short messages whose words give their class away."""
    import csv
    import random

    rng = random.Random(seed)
    words = {name: [f"{name}{k}" for k in range(5)] for name in classes}
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for name in classes:
            for _ in range(per_class):
                writer.writerow([" ".join(rng.choices(words[name], k=6)), name])
    return path


def fake_series(
    path: Path,
    classes: tuple[str, ...] = ("slow", "fast"),
    per_class: int = 8,
    length: int | tuple[int, int] = 64,
    channels: int = 1,
    seed: int = 0,
) -> Path:
    """JSON lines with ``series`` and ``label``: noisy sine waves, a higher frequency per class. ``length`` is a
    number of steps or a ``(shortest, longest)`` range; one channel gives a list of numbers per row, several a
    list of steps each listing its channels (``datasets`` reads ``List(Value(float64))`` or
    ``List(List(Value(float64)))``)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    shortest, longest = (length, length) if isinstance(length, int) else length
    with path.open("w") as f:
        for index, name in enumerate(classes):
            for _ in range(per_class):
                steps = int(rng.integers(shortest, longest + 1))
                t = np.arange(steps)[:, None] + rng.uniform(0, 20, channels)
                values = np.sin(2 * np.pi * (index + 1) * t / 32) + 0.1 * rng.standard_normal((steps, channels))
                series = values[:, 0].tolist() if channels == 1 else values.tolist()
                f.write(json.dumps({"series": series, "label": name}) + "\n")
    return path


def changed_tensors(before: Path, after: Path, skip: tuple[str, ...] = ("classifier.",)) -> list[str]:
    """Names of the tensors in both checkpoint folders' ``model.safetensors`` whose values differ, those under
    ``skip`` (the new head) left out."""
    import torch
    from safetensors.torch import load_file

    old, new = load_file(str(before / "model.safetensors")), load_file(str(after / "model.safetensors"))
    shared = [k for k in old if k in new and not k.startswith(skip)]
    return [k for k in shared if old[k].shape != new[k].shape or not torch.equal(old[k], new[k])]


def assert_head_only(before: Path, after: Path, head: tuple[str, ...] = ("classifier",)) -> None:
    """Raise ``AssertionError`` unless head-only training left every pretrained tensor bit-identical."""
    changed = changed_tensors(before, after, tuple(f"{h}." for h in head))
    assert not changed, f"head-only training changed pretrained tensors: {changed[:5]}"


def lora_reload_logits(
    run_dir: Path, auto_model: str, batch: dict[str, Any], output: str = "logits"
) -> tuple[Any, Any]:
    """``(logits of the merged model the run saved, logits of its adapter loaded onto the base checkpoint)``
    for ``batch`` (a processor's output). They should be equal (``torch.allclose``). ``auto_model`` and
    ``output`` are the plugin's ``Modality.auto_model`` (by name) and ``logits_output``."""
    import torch
    import transformers
    from peft import PeftModel

    model_class = getattr(transformers, auto_model)
    adapter = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    config = transformers.AutoConfig.from_pretrained(run_dir)
    base = model_class.from_pretrained(adapter["base_model_name_or_path"], config=config, ignore_mismatched_sizes=True)
    reloaded = PeftModel.from_pretrained(base, run_dir / "adapter").eval()
    merged = model_class.from_pretrained(run_dir).eval()
    with torch.no_grad():
        return merged(**batch)[output], reloaded(**batch)[output]
