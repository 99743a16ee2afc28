"""The per-step levers of a training step on this CPU: attention implementation, AdamW path, torch.compile.

    .venv/bin/python benchmarks/step_levers.py [--steps 12]

- Attention: for each model (the shipped bases' architectures, and ViT-B/16 for a large one), random values, a
  training step (forward, backward, fused AdamW) under bf16 autocast on a fixed batch, timed after two warm-up
  steps, with ``attn_implementation`` eager and sdpa in turn, alternating. ``model.attention: auto``
  (tlhub/model.py) follows what this measures.
- AdamW: ``optimizer.step()`` alone on the main job's ViT, for-loop (torch's CPU default), foreach and fused.
- torch.compile: the main job's ViT training step compiled (inductor) against eager, and the compilation's cost.

Time it on a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from report import machine, write_section

REPO = Path(__file__).resolve().parent.parent
CHECKPOINTS = REPO / "recipes" / "checkpoints"


def cases() -> dict[str, tuple[Any, Any, dict[str, torch.Tensor]]]:
    """name -> (config, auto class, batch) for the shipped families at the bases' sizes, and ViT-B/16."""
    from transformers import (
        AutoConfig,
        AutoModelForAudioClassification,
        AutoModelForImageClassification,
        AutoModelForSequenceClassification,
    )

    vit = AutoConfig.from_pretrained(CHECKPOINTS / "vit-cifar10")
    vit_b = AutoConfig.for_model("vit", image_size=224, patch_size=16, num_labels=10)  # 768 wide, 12 layers
    minilm = AutoConfig.for_model(
        "bert", hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536, num_labels=2
    )
    wav2vec2 = AutoConfig.from_pretrained(CHECKPOINTS / "wav2vec2-speech20")
    return {
        "ViT 6x192, 32x32 images (64 patches), batch 32": (
            vit,
            AutoModelForImageClassification,
            {"pixel_values": torch.randn(32, 3, 32, 32), "labels": torch.randint(0, 10, (32,))},
        ),
        "ViT-B/16 12x768, 224x224 images (196 patches), batch 8": (
            vit_b,
            AutoModelForImageClassification,
            {"pixel_values": torch.randn(8, 3, 224, 224), "labels": torch.randint(0, 10, (8,))},
        ),
        "MiniLM 6x384, 64 tokens, batch 32": (
            minilm,
            AutoModelForSequenceClassification,
            {"input_ids": torch.randint(1000, 2000, (32, 64)), "labels": torch.randint(0, 2, (32,))},
        ),
        f"wav2vec2 {wav2vec2.num_hidden_layers}x{wav2vec2.hidden_size}, 1 s of audio, batch 16": (
            wav2vec2,
            AutoModelForAudioClassification,
            {"input_values": torch.randn(16, 16_000), "labels": torch.randint(0, 10, (16,))},
        ),
    }


def step_seconds(model: Any, batch: dict[str, torch.Tensor], steps: int) -> list[float]:
    """Seconds of each of ``steps + 2`` training steps (the first two are the warm-up)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    times = []
    for _ in range(steps + 2):
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - started)
    return times


def adamw_rows(steps: int) -> list[str]:
    """``optimizer.step()`` of the main job's ViT, per AdamW implementation, alternating rounds."""
    config = cases_vit()
    batch = {"pixel_values": torch.randn(32, 3, 32, 32), "labels": torch.randint(0, 10, (32,))}
    paths = {
        "for-loop (torch's CPU default)": {"foreach": False},
        "foreach": {"foreach": True},
        "fused": {"fused": True},
    }
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(2):
        for name, options in paths.items():
            torch.manual_seed(0)
            model = _auto_image().from_config(config).train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05, **options)
            for i in range(steps // 2 + 2):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    model(**batch).loss.backward()
                started = time.perf_counter()
                optimizer.step()
                if i >= 2:
                    times[name].append(time.perf_counter() - started)
                optimizer.zero_grad()
    rows = ["| AdamW | optimizer.step (ms) |", "|---|---|"]
    return rows + [f"| {name} | {1000 * statistics.median(values):.1f} |" for name, values in times.items()]


def compile_rows(steps: int) -> list[str]:
    """The main job's ViT training step, eager against torch.compile (inductor), and the first step's cost."""
    batch = {"pixel_values": torch.randn(32, 3, 32, 32), "labels": torch.randint(0, 10, (32,))}
    rows = ["| main job's ViT step | first step (s) | median step (s) |", "|---|---|---|"]
    for name in ("eager (no compile)", "torch.compile"):
        torch.manual_seed(0)
        model = _auto_image().from_config(cases_vit()).train()
        times = step_seconds(torch.compile(model) if name == "torch.compile" else model, batch, steps)
        rows.append(f"| {name} | {times[0]:.2f} | {statistics.median(times[2:]):.3f} |")
    return rows


def preparation_rows() -> list[str]:
    """What reading and encoding the main job's training split costs per epoch (without training on it)."""
    import tempfile

    import tlhub

    with tempfile.TemporaryDirectory() as folder:
        plan = tlhub.make_plan(REPO / "recipes" / "digits_vit.yaml", overrides={"output_dir": folder})
    r = plan.recipe
    train = plan.splits.train.select_columns([*r.data.input_columns, r.data.label_column])
    collate = plan.modality.collate(
        plan.processor, plan.config, plan.options, r.data.input_columns, r.data.label_column, training=True
    )
    times: dict[str, list[float]] = {"read the rows (decode the PNGs)": [], "encode them into batches": []}
    for _ in range(5):
        started = time.perf_counter()
        rows = [train[i] for i in range(len(train))]
        read = time.perf_counter()
        for i in range(0, len(rows), r.train.batch_size):
            collate(rows[i : i + r.train.batch_size])
        times["read the rows (decode the PNGs)"].append(read - started)
        times["encode them into batches"].append(time.perf_counter() - read)
    rows_ = [f"| main job's training split, {len(train)} digits, per epoch | seconds (median of 5) |", "|---|---|"]
    return rows_ + [f"| {name} | {statistics.median(values):.3f} |" for name, values in times.items()]


def cases_vit() -> Any:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(CHECKPOINTS / "vit-cifar10")


def _auto_image() -> Any:
    from transformers import AutoModelForImageClassification

    return AutoModelForImageClassification


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    rows = ["| model | eager s/step | sdpa s/step | eager / sdpa |", "|---|---|---|---|"]
    ratios: list[float] = []
    for name, (config, auto, batch) in cases().items():
        models = {}
        for attention in ("eager", "sdpa"):
            torch.manual_seed(0)
            models[attention] = auto.from_config(config, attn_implementation=attention).train()
        times: dict[str, list[float]] = {"eager": [], "sdpa": []}
        for _ in range(2):  # alternating blocks of steps: a drift of the machine touches both
            for attention, model in models.items():
                times[attention] += step_seconds(model, batch, args.steps // 2)[2:]
        eager, sdpa = statistics.median(times["eager"]), statistics.median(times["sdpa"])
        rows.append(f"| {name} | {eager:.3f} | {sdpa:.3f} | {eager / sdpa:.2f} |")
        ratios.append(eager / sdpa)
        print(rows[-1], flush=True)
    adamw, compiled, prepared = adamw_rows(args.steps), compile_rows(args.steps), preparation_rows()
    lines = [
        "## Per-step levers: attention, AdamW, torch.compile",
        "",
        f"`benchmarks/step_levers.py`, {machine()}, torch {torch.__version__}.",
        "",
        "**Attention**: one training step (forward, backward, "
        f"fused AdamW) under bf16 autocast, random values, the median of {args.steps} steps after 2 warm-up steps "
        f"per implementation, alternating. Eager / SDPA from {min(ratios):.2f} to {max(ratios):.2f} across the "
        "models, and a model's ratio moves by about 0.05 from run to run (the main job's ViT: 1.02, 1.04 and 0.93 "
        "in three runs): neither is consistently faster on this CPU, so `model.attention: auto` keeps "
        "transformers' default (SDPA), as on a GPU (tlhub/model.py).",
        "",
        *rows,
        "",
        "**AdamW**: `optimizer.step()` alone, the main job's ViT (6x192, 2.7 M parameters), median of "
        f"{args.steps // 2 * 2} steps per path. tlhub uses fused (tlhub/engine.py `make_optimizer`), as HF Trainer "
        "does by default.",
        "",
        *adamw,
        "",
        "**torch.compile** (inductor, default mode) of the main job's ViT training step, batch 32, bf16 autocast: "
        "not made a default, as it measured no faster per step here and its first step compiles.",
        "",
        *compiled,
        "",
        "**Preprocessing** of the main job's images, done again for every batch of every epoch: what a cache of "
        "the encoded pixels could save, beside an epoch's training time of about 6 s (docs/benchmarks.md, Engine "
        "speed). Not cached: about 2% of an epoch here, while a cache of encoded pixels grows with the image "
        "size (a 224x224 float image is 600 KB: 30 GB for 50,000 photos) and a plugin's encoder may pad per batch.",
        "",
        *prepared,
    ]
    write_section("step_levers", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
