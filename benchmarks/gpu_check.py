"""GPU check: tlhub's training loop (`tlhub.engine.fit`) against a bare Accelerate loop, ViT-B/16 in bf16.

On the GPU machine (device tool, ``carry: [".whl"]``; ``.whl/`` holds the wheels of what tlhub's engine
imports and that machine lacks: pydantic, pydantic-core, annotated-types, typing-inspection,
typing-extensions, datasets, evaluate, dill, multiprocess), one command, about 3 minutes on one H200:

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit; export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1; nvidia-smi -L; python3 benchmarks/gpu_check.py --output $OUT 2>&1 | tee $OUT/log.txt

Here, on the CPU with a tiny ViT and a few steps (tests/test_gpu_check.py runs it):

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/gpu_check.py --dry-run

Both loops train the same randomly initialised ``ViTForImageClassification`` (transformers' ``ViTConfig()``
defaults: hidden 768, 12 layers, 224 px, patch 16; 1000 labels) on the same synthetic images, made once on
the device, with the same batch, AdamW, clipping, schedule and Accelerate ``mixed_precision="bf16"``, one
after the other in this process (``--rounds`` alternates their order). What each figure measures:

- samples/s: a forward pre-hook on the model marks the start of every training forward pass (a CUDA event
  on a GPU, ``perf_counter`` on the CPU). The time from the start of step ``warmup`` to the start of step
  ``warmup + steps`` covers exactly ``steps`` whole steps (data, forward, backward, clipping, AdamW,
  schedule and whatever else the loop does between two forward passes); warm-up steps, model set-up,
  evaluation and checkpoint saves are outside it. Each run trains ``warmup + steps + 1`` steps.
- TFLOP/s and MFU: FLOPs of one training step (forward + backward, batch as given; AdamW not counted)
  by ``torch.utils.flop_counter.FlopCounterMode``, attention counted through PyTorch's math kernel (its
  fused CPU kernel has no FLOP formula), times the timed steps over the time; MFU against the device's
  dense bf16 peak from its data sheet (``--peak-tflops`` overrides) and against a measured 8192^3 bf16
  matrix product. An analytic count (3 x the forward's matrix products) is printed beside it.
- peak memory: ``torch.cuda.max_memory_allocated`` over one run (the synthetic images included).
- tlhub's row also splits the wall time of ``fit``: before its first step (``prepare``, metric loading),
  all its training steps, and after them (validation on one batch, the best-model and checkpoint saves,
  loading the best weights back).

What differs between the loops is what tlhub's loop does: its DataLoader (seedable sampler) feeds rows of a
``datasets.Dataset`` of indices to a collate that gathers the images on the device and leaves the labels on
the CPU for Accelerate to move (a synchronous copy, as with real data); each step reads the loss back
(``float(loss)``, a synchronisation) and updates tqdm and the log. The bare loop draws indices on the device
and never waits for it.

The wheels: datasets 4.8.5 rather than the 5.2.0 of the development environment, because datasets 5's
fingerprint fails with pyarrow 24 (PicklingError on MonthDayNano, seen here) and that machine's pyarrow
version is not known; 4.8.5 worked here with pyarrow 24 and 26, huggingface-hub 1.33 and transformers 5.17.
typing-extensions 4.16 because pydantic 2.14 asks for it. To make them, in the repository root:
``python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp
--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl
pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
typing-extensions==4.16.0 datasets==4.8.5 evaluate==0.4.6 dill==0.4.1 multiprocess==0.70.19``
(``.whl/`` is ignored through ``.git/info/exclude``).

With two or more CUDA devices it also runs both loops under DDP on two GPUs (torchrun, this script in
``--ddp-worker`` mode); otherwise it says that was skipped. ``--output DIR`` writes ``report.json`` and
``report.md`` after every measurement, so a later failure loses nothing measured before it.
"""  # noqa: E501 (the device command stays one line, to be copied whole)

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the GPU machine holds tlhub's working tree, not an installed tlhub

import torch  # noqa: E402

TLHUB, BARE = "tlhub fit", "bare loop"
# The settings both loops share, written out rather than taken from TrainSection's defaults, so a change of
# tlhub's defaults cannot make the two loops differ.
LEARNING_RATE = 1e-4
MAX_GRAD_NORM = 1.0
SEED = 0
POOL_BATCHES = 4  # synthetic images made once, this many batches' worth, drawn from by index
# Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, TFLOP/s. The first name found in
# torch.cuda.get_device_name wins, so the more specific names come first (GH200 contains H200, L40S L4).
PEAK_BF16_TFLOPS = (
    ("GH200", 989.0),
    ("H200 NVL", 835.0),
    ("H200", 989.0),  # SXM
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # SXM ("NVIDIA H100 80GB HBM3")
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
)
VERSIONS = ("torch", "transformers", "accelerate", "datasets", "evaluate", "pydantic", "huggingface-hub", "pyarrow")


@dataclass(frozen=True)
class Settings:
    dry_run: bool
    steps: int  # timed steps per run
    warmup: int  # steps before the timed ones
    batch: int  # examples per step on each process
    rounds: int

    @property
    def total_steps(self) -> int:
        # one more than warm-up + timed: the timed window ends where the last step starts
        return self.warmup + self.steps + 1


@dataclass
class Synthetic:
    """Random images and labels made once on the device; both loops draw their batches from them."""

    pixels: torch.Tensor  # (pool, channels, size, size) float32
    labels: torch.Tensor  # (pool,) int64


class StepClock:
    """Marks the start of every training forward pass of ``model`` with a forward pre-hook.

    On a GPU each mark is a CUDA event, so the time between two marks is the device's time for the work
    queued between them, whether or not the loop waits for the device. Evaluation's forward passes
    (``model.training`` false) are not marks; the first one's wall time is kept.
    """

    def __init__(self, model: torch.nn.Module, cuda: bool) -> None:
        self.cuda = cuda
        self.starts: list[tuple[float, Any]] = []  # (perf_counter, CUDA event or None) per training step
        self.first_eval: float | None = None
        self._handle = model.register_forward_pre_hook(self._mark)

    def _mark(self, module: torch.nn.Module, args: Any) -> None:
        if not module.training:
            if self.first_eval is None:
                self.first_eval = time.perf_counter()
            return
        event = None
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
        self.starts.append((time.perf_counter(), event))

    def seconds(self, first: int, last: int) -> float:
        """From the start of step ``first`` to the start of step ``last`` (0-based)."""
        if self.cuda:
            torch.cuda.synchronize()
            return float(self.starts[first][1].elapsed_time(self.starts[last][1])) / 1000
        return self.starts[last][0] - self.starts[first][0]

    def remove(self) -> None:
        self._handle.remove()


def vit_config(dry_run: bool) -> Any:
    from transformers import ViTConfig

    if dry_run:
        tiny: dict[str, Any] = dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            image_size=32,
            patch_size=8,
            num_labels=10,
        )
        return ViTConfig(**tiny)
    labels: dict[str, Any] = {"num_labels": 1000}
    return ViTConfig(**labels)  # ViT-B/16: hidden 768, 12 layers, 12 heads, MLP 3072, 224 px, patch 16


def new_model(config: Any) -> torch.nn.Module:
    from accelerate.utils import set_seed
    from transformers import ViTForImageClassification

    set_seed(SEED)  # the same initial weights in every run
    return ViTForImageClassification(config)


def new_accelerator(dry_run: bool) -> Any:
    """Configured as ``tlhub.engine.make_accelerator`` configures a run's, with bf16; on the CPU for a dry run."""
    from accelerate import Accelerator, DataLoaderConfiguration
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()  # one global state: clear the last run's (a process group stays)
    return Accelerator(
        cpu=dry_run or not torch.cuda.is_available(),
        mixed_precision="bf16",
        gradient_accumulation_steps=1,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, non_blocking=True),
    )


def synthetic(config: Any, batch: int, device: torch.device) -> Synthetic:
    generator = torch.Generator(device=device).manual_seed(SEED)
    size = POOL_BATCHES * batch
    shape = (size, config.num_channels, config.image_size, config.image_size)
    return Synthetic(
        pixels=torch.randn(shape, generator=generator, device=device),
        labels=torch.randint(config.num_labels, (size,), generator=generator, device=device),
    )


def run_tlhub(
    accelerator: Any, model: torch.nn.Module, data: Synthetic, num_labels: int, settings: Settings, scratch: Path
) -> None:
    """``tlhub.engine.fit`` for one epoch of exactly ``settings.total_steps`` steps on each process."""
    import datasets

    from tlhub.engine import TrainingData, fit
    from tlhub.recipe import EvalSection, TrainSection
    from tlhub.rundir import CheckpointStore

    pool_labels = data.labels.tolist()
    pool_size = len(pool_labels)

    def split(examples: int) -> datasets.Dataset:
        # rows are indices into the image pool: the loop's sampler, loader and collate run as they do on real data
        indices = list(range(examples))
        return datasets.Dataset.from_dict({"index": indices, "label": [pool_labels[i % pool_size] for i in indices]})

    def collate(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        index = torch.tensor([e["index"] for e in examples]) % pool_size
        return {
            "pixel_values": data.pixels[index.to(data.pixels.device, non_blocking=True)],
            "labels": torch.tensor([e["label"] for e in examples]),  # on the CPU: Accelerate moves it, as it would
        }

    examples = settings.total_steps * settings.batch * accelerator.num_processes
    training = TrainingData(
        train=split(examples),
        validation=split(settings.batch),  # one batch: fit evaluates every epoch
        collate=collate,
        labels=[f"class{i}" for i in range(num_labels)],
        label_column="label",
    )
    train = TrainSection(
        epochs=1,
        batch_size=settings.batch,
        eval_batch_size=settings.batch,
        learning_rate=LEARNING_RATE,
        weight_decay=0.0,
        scheduler="linear",
        warmup_ratio=0.0,
        max_grad_norm=MAX_GRAD_NORM,
        mixed_precision="bf16",
        seed=SEED,
        checkpoint_steps=None,  # none mid-run; fit still saves one checkpoint and the best model after the epoch
        num_workers=0,
    )
    store = CheckpointStore(folder=scratch / "checkpoints", best=scratch / "best_model")
    fit(accelerator, model, training, train, EvalSection(metrics=["accuracy"]), store)


def run_bare(accelerator: Any, model: torch.nn.Module, data: Synthetic, settings: Settings) -> None:
    """The canonical Accelerate loop with the same optimizer, clipping and schedule, and nothing else."""
    from transformers import get_scheduler

    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
    # as fit counts them: the prepared scheduler steps once per process per optimizer step
    scheduler = get_scheduler(
        "linear",
        optimizer=optimizer,
        num_warmup_steps=0,
        num_training_steps=settings.total_steps * accelerator.num_processes,
    )
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    model.train()
    device = data.pixels.device
    generator = torch.Generator(device=device).manual_seed(SEED + accelerator.process_index)
    for _ in range(settings.total_steps):
        index = torch.randint(len(data.pixels), (settings.batch,), generator=generator, device=device)
        loss = model(pixel_values=data.pixels[index], labels=data.labels[index]).loss
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    accelerator.wait_for_everyone()


def free_memory(cuda: bool) -> None:
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state()  # drops the prepared models and loaders Accelerate still refers to
    GradientState._reset_state()
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()


def measure(path: str, round_: int, settings: Settings, config: Any, scratch: Path) -> dict[str, Any]:
    """Train one loop once; the row's times and memory (throughput and MFU are added by ``finish_row``)."""
    accelerator = new_accelerator(settings.dry_run)
    cuda = accelerator.device.type == "cuda"
    left = 0
    if cuda:
        torch.cuda.reset_peak_memory_stats(accelerator.device)
        left = torch.cuda.memory_allocated(accelerator.device)  # by earlier runs: would count in this run's peak
    model = new_model(config)
    data = synthetic(config, settings.batch, accelerator.device)
    clock = StepClock(model, cuda)
    started = time.perf_counter()
    if path == TLHUB:
        folder = scratch / f"tlhub-{round_}"
        try:
            run_tlhub(accelerator, model, data, config.num_labels, settings, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    else:
        run_bare(accelerator, model, data, settings)
    if cuda:
        torch.cuda.synchronize()
    ended = time.perf_counter()
    clock.remove()
    seen = len(clock.starts)
    if seen != settings.total_steps:
        raise RuntimeError(f"{path}: {seen} training forward passes seen, {settings.total_steps} expected")
    seconds = clock.seconds(settings.warmup, settings.warmup + settings.steps)
    first, last = clock.starts[0][0], clock.starts[-1][0]
    row: dict[str, Any] = {
        "path": path,
        "round": round_,
        "processes": accelerator.num_processes,
        "steps": settings.steps,
        "warmup": settings.warmup,
        "batch": settings.batch * accelerator.num_processes,
        "seconds": seconds,
        "peak_memory_gib": torch.cuda.max_memory_allocated(accelerator.device) / 2**30 if cuda else None,
        "memory_at_start_gib": left / 2**30 if cuda else None,
        "wall_s": ended - started,
        "before_first_step_s": first - started,
        "all_steps_s": last - first,  # warm-up included, up to the start of the last step
        "after_steps_s": ended - last,  # the last step, then (tlhub) validation, saves, loading the best weights
        # tlhub: from the first validation forward pass to the end of fit
        "evaluation_and_saves_s": None if clock.first_eval is None else ended - clock.first_eval,
    }
    del model, data, clock, accelerator
    free_memory(cuda)
    return row


def finish_row(row: dict[str, Any], flops_per_step: int, peaks: dict[str, float | None]) -> dict[str, Any]:
    """Add samples/s, TFLOP/s and MFU to a measured row (``flops_per_step`` is per process)."""
    processes, seconds = row["processes"], row["seconds"]
    row["samples_per_s"] = row["steps"] * row["batch"] / seconds
    row["tflops"] = flops_per_step * row["steps"] * processes / seconds / 1e12
    for key in ("spec", "measured"):
        peak = peaks.get(key)
        row[f"mfu_{key}"] = row["tflops"] / (peak * processes) if peak else None
    return row


def count_flops(config: Any, batch: int, device: torch.device) -> tuple[int, int, str]:
    """FLOPs of one training step (forward + backward) at ``batch``, by ``FlopCounterMode``; the parameters; the
    attention implementation transformers chose (the loops run it; the count goes through the math kernel)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    model = new_model(config).to(device).train()
    pixels = torch.randn(batch, config.num_channels, config.image_size, config.image_size, device=device)
    labels = torch.randint(config.num_labels, (batch,), device=device)
    counter = FlopCounterMode(display=False)
    with counter:
        # the math kernel: its matrix products are counted on every device (the fused CPU kernel's are not)
        with sdpa_kernel(SDPBackend.MATH), torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model(pixel_values=pixels, labels=labels).loss
        loss.backward()
    flops, parameters = int(counter.get_total_flops()), sum(p.numel() for p in model.parameters())
    attention = str(getattr(model.config, "_attn_implementation", "unknown"))
    del model, pixels, labels, loss
    return flops, parameters, attention


def analytic_flops(config: Any, batch: int) -> int:
    """3 x the forward's matrix products: every product's backward is two of its size, except the patch
    embedding's (no gradient for the pixels). Per layer 2T(4d^2 + 2dI) + 4T^2 d; T tokens, d hidden, I MLP."""
    d, mlp, patch = config.hidden_size, config.intermediate_size, config.patch_size
    patches = (config.image_size // patch) ** 2
    tokens = patches + 1  # and the [CLS] token
    layer = 2 * tokens * (4 * d * d + 2 * d * mlp) + 4 * tokens * tokens * d
    embed = 2 * patches * config.num_channels * patch * patch * d
    head = 2 * d * config.num_labels  # on the [CLS] token only
    forward = config.num_hidden_layers * layer + embed + head
    return batch * (3 * forward - embed)


def matmul_tflops(device: torch.device, size: int = 8192, repeats: int = 20) -> float:
    """bf16 TFLOP/s of a ``size``^3 matrix product on random data: what this device reaches, as a second peak."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        a @ b
    end.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1000
    del a, b
    torch.cuda.empty_cache()
    return 2 * size**3 * repeats / seconds / 1e12


def spec_peak(device_name: str) -> float | None:
    return next((tflops for name, tflops in PEAK_BF16_TFLOPS if name in device_name), None)


def version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "missing"


def environment(cuda: bool) -> dict[str, Any]:
    spec = importlib.util.find_spec("tlhub")
    return {
        "python": platform.python_version(),
        "versions": {name: version(name) for name in VERSIONS},
        "device": torch.cuda.get_device_name() if cuda else f"CPU ({platform.machine()}, {os.cpu_count()} cores)",
        "cuda_devices": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "tlhub_from": str(Path(spec.origin).parent) if spec and spec.origin else "not found",
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


class Report:
    """The header, the rows as they come, and notes; written as JSON and Markdown after every change."""

    def __init__(self, output: Path | None, header: dict[str, Any]) -> None:
        self.output = output
        self.header = header
        self.rows: list[dict[str, Any]] = []
        self.notes: list[str] = []
        if output is not None:
            output.mkdir(parents=True, exist_ok=True)

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.save()

    def note(self, line: str) -> None:
        self.notes.append(line)
        self.save()

    def save(self) -> None:
        if self.output is None:
            return
        payload = {**self.header, "rows": self.rows, "notes": self.notes}
        (self.output / "report.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
        (self.output / "report.md").write_text(self.markdown() + "\n")

    def markdown(self) -> str:
        h = self.header
        env, settings, flops, peaks = h["environment"], h["settings"], h["flops"], h["peaks"]
        model = h["model"]
        versions = ", ".join(f"{name} {v}" for name, v in env["versions"].items())
        lines = [
            "# tlhub GPU check" + (" (dry run: CPU, tiny ViT)" if settings["dry_run"] else ""),
            "",
            f"- device: {env['device']}; CUDA devices: {env['cuda_devices']}; torch built for CUDA {env['cuda']}"
            + (f", cuDNN {env['cudnn']}" if env["cudnn"] else ""),
            f"- versions: Python {env['python']}, {versions}; tlhub from {env['tlhub_from']}",
            f"- model: ViTForImageClassification, hidden {model['hidden']}, {model['layers']} layers, "
            f"{model['image']} px, patch {model['patch']} ({model['tokens']} tokens), {model['labels']} labels, "
            f"{model['parameters'] / 1e6:.2f}M parameters, random init, attention: {model['attention']}",
            f"- each run: {settings['warmup']} warm-up steps, {settings['steps']} timed steps, 1 closing step; "
            f"batch {settings['batch']} per process; Accelerate bf16 autocast (fp32 weights and AdamW states); "
            f"AdamW lr {LEARNING_RATE:g}, gradient clipping {MAX_GRAD_NORM:g}, linear schedule",
            f"- FLOPs per step (forward + backward, batch {settings['batch']}): {_flop(flops['counted'])} by "
            f"FlopCounterMode (the basis of TFLOP/s and MFU); analytic {_flop(flops['analytic'])}",
            f"- peak: {_tflops(peaks['spec'])} dense bf16 ({peaks['spec_source']}); measured bf16 8192^3 matrix "
            f"product: {_tflops(peaks['measured'])}",
            "",
            "| path | round | processes | steps timed (+warm-up) | batch | samples/s | TFLOP/s | MFU (spec peak) "
            "| MFU (measured matmul peak) | peak memory (GiB) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        cpu = env["cuda_devices"] == 0 or settings["dry_run"]
        for r in self.rows:
            if "error" in r:
                lines.append(
                    f"| {r['path']} | {r.get('round', '')} | {r.get('processes', '')} | failed: "
                    f"{r['error']} | | | | | | |"
                )
                continue
            mfu = ("n/a on CPU", "n/a on CPU") if cpu else (_percent(r["mfu_spec"]), _percent(r["mfu_measured"]))
            memory = "n/a on CPU" if r["peak_memory_gib"] is None else f"{r['peak_memory_gib']:.2f}"
            lines.append(
                f"| {r['path']} | {r['round']} | {r['processes']} | {r['steps']} (+{r['warmup']}) | {r['batch']} "
                f"| {r['samples_per_s']:.1f} | {r['tflops']:.3g} | {mfu[0]} | {mfu[1]} | {memory} |"
            )
        lines += ["", *self.summary(), *(f"- {n}" for n in self.notes)]
        return "\n".join(lines)

    def summary(self) -> list[str]:
        lines = []
        for processes in sorted({r["processes"] for r in self.rows if "error" not in r}):
            rate = {
                path: [
                    r["samples_per_s"]
                    for r in self.rows
                    if r["path"] == path and r.get("processes") == processes and "error" not in r
                ]
                for path in (TLHUB, BARE)
            }
            if rate[TLHUB] and rate[BARE]:
                tlhub, bare = sum(rate[TLHUB]) / len(rate[TLHUB]), sum(rate[BARE]) / len(rate[BARE])
                lines.append(
                    f"- {processes} process(es): tlhub fit {tlhub:.1f} samples/s, bare loop {bare:.1f} samples/s "
                    f"(means over rounds): tlhub / bare = {tlhub / bare:.3f}"
                )
        for r in self.rows:
            if (r.get("memory_at_start_gib") or 0) > 0.01:
                lines.append(
                    f"- {r['path']}, {r['processes']} process(es), round {r['round']}: its peak memory includes "
                    f"{r['memory_at_start_gib']:.2f} GiB that earlier runs left allocated"
                )
            if r["path"] == TLHUB and "error" not in r:
                saves = r["evaluation_and_saves_s"] or 0.0
                lines.append(
                    f"- tlhub fit, {r['processes']} process(es), round {r['round']}: wall {r['wall_s']:.1f} s = "
                    f"{r['before_first_step_s']:.1f} s before the first step (prepare, metric loading) + "
                    f"{r['all_steps_s']:.1f} s of steps up to the last one + {r['after_steps_s'] - saves:.1f} s for "
                    f"the last step + {saves:.1f} s from the first validation batch on (validation, best-model and "
                    "checkpoint saves, loading the best weights)"
                )
        return lines


def _flop(count: int) -> str:
    exponent = min(max((len(str(count)) - 1) // 3, 2), 4)  # MFLOP to TFLOP
    return f"{count / 1000**exponent:.4g} {'MGT'[exponent - 2]}FLOP"


def _tflops(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} TFLOP/s"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _failure(path: str, round_: int, processes: int | None, exc: BaseException) -> dict[str, Any]:
    traceback.print_exc()
    lines = str(exc).strip().splitlines()
    return {
        "path": path,
        "round": round_,
        "processes": processes,
        "error": f"{type(exc).__name__}: {lines[0][:300] if lines else ''}",
    }


def run_ddp(args: argparse.Namespace, settings: Settings, scratch: Path) -> list[dict[str, Any]]:
    """Both loops on two processes (torchrun of this script as ``--ddp-worker``); the rows rank 0 wrote."""
    result = scratch / "ddp-rows.json"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(Path(__file__).resolve()),
        "--ddp-worker",
        "--result",
        str(result),
        "--scratch",
        str(scratch / "ddp"),
        "--steps",
        str(settings.steps),
        "--warmup",
        str(settings.warmup),
        "--batch-size",
        str(settings.batch),
        *(["--dry-run"] if settings.dry_run else []),
    ]
    print("DDP:", " ".join(command), flush=True)
    try:
        done = subprocess.run(command, timeout=args.ddp_timeout, check=False)
        failed = f"exit status {done.returncode}" if done.returncode else None
    except subprocess.TimeoutExpired:
        failed = f"timed out after {args.ddp_timeout} s"
    rows = json.loads(result.read_text()) if result.is_file() else []
    if failed:
        rows.append({"path": "DDP", "round": 1, "processes": 2, "error": f"torchrun: {failed}"})
    return rows


def ddp_worker(args: argparse.Namespace, settings: Settings) -> None:
    """One process of ``run_ddp``: each loop once; rank 0 writes the rows after each."""
    config = vit_config(settings.dry_run)
    rows: list[dict[str, Any]] = []
    scratch = Path(args.scratch)  # the same folder on every rank: fit saves and loads through it
    for path in (TLHUB, BARE):
        try:
            rows.append(measure(path, 1, settings, config, scratch))
        except Exception as exc:
            rows.append(_failure(path, 1, 2, exc))
        free_memory(torch.cuda.is_available() and not settings.dry_run)
        if int(os.environ.get("RANK", "0")) == 0:
            Path(args.result).write_text(json.dumps(rows, default=str))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, help="timed steps per run (default 250; dry run 10)")
    parser.add_argument("--warmup", type=int, help="untimed steps before them (default 25; dry run 2)")
    parser.add_argument("--batch-size", type=int, help="examples per step on each process (default 128; dry run 8)")
    parser.add_argument("--rounds", type=int, help="runs of each loop, alternating their order (default 2; dry run 1)")
    parser.add_argument("--dry-run", action="store_true", help="on the CPU with a tiny ViT: checks the script")
    parser.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak, instead of the table's")
    parser.add_argument("--output", type=Path, help="folder for report.json and report.md")
    parser.add_argument(
        "--ddp", choices=("auto", "on", "off"), default="auto", help="2-process DDP runs: auto = with 2+ CUDA devices"
    )
    parser.add_argument("--ddp-timeout", type=int, default=600, help="seconds the DDP runs may take")
    parser.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name, full, dry in (("steps", 250, 10), ("warmup", 25, 2), ("batch_size", 128, 8), ("rounds", 2, 1)):
        if getattr(args, name) is None:
            setattr(args, name, dry if args.dry_run else full)
        if getattr(args, name) < (0 if name == "warmup" else 1):
            parser.error(f"--{name.replace('_', '-')} must be at least {0 if name == 'warmup' else 1}")
    return args


def main() -> int:
    args = parse_args()
    settings = Settings(args.dry_run, args.steps, args.warmup, args.batch_size, args.rounds)
    if args.ddp_worker:
        ddp_worker(args, settings)
        return 0
    cuda = torch.cuda.is_available() and not settings.dry_run
    device = torch.device("cuda" if cuda else "cpu")
    env = environment(cuda)
    config = vit_config(settings.dry_run)
    peaks: dict[str, Any] = {"spec": None, "spec_source": "n/a on CPU", "measured": None}
    if cuda:
        peaks["spec"] = args.peak_tflops or spec_peak(env["device"])
        source = "data sheet" if peaks["spec"] else "unknown device: pass --peak-tflops"
        peaks["spec_source"] = "--peak-tflops" if args.peak_tflops else source
        peaks["measured"] = matmul_tflops(device)
    counted, parameters, attention = count_flops(config, settings.batch, device)
    flops = {"counted": counted, "analytic": analytic_flops(config, settings.batch)}
    tokens = (config.image_size // config.patch_size) ** 2 + 1
    header = {
        "command": sys.argv,
        "environment": env,
        "settings": {
            "dry_run": settings.dry_run,
            "steps": settings.steps,
            "warmup": settings.warmup,
            "batch": settings.batch,
            "rounds": settings.rounds,
            "precision": "Accelerate mixed_precision=bf16",
        },
        "model": {
            "hidden": config.hidden_size,
            "layers": config.num_hidden_layers,
            "image": config.image_size,
            "patch": config.patch_size,
            "tokens": tokens,
            "labels": config.num_labels,
            "parameters": parameters,
            "attention": attention,
        },
        "flops": flops,
        "peaks": peaks,
        "measured": "samples/s: device time (CUDA events; CPU: perf_counter) from the start of step warmup to the "
        "start of step warmup+steps, marked by a forward pre-hook; TFLOP/s: FlopCounterMode FLOPs of one "
        "forward+backward step x steps / that time; peak memory: torch.cuda.max_memory_allocated per run",
    }
    report = Report(args.output, header)
    print(f"{env['device']}; Python {env['python']}; " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()))
    print(f"FLOPs per step: {flops['counted']:,} counted, {flops['analytic']:,} analytic", flush=True)

    with tempfile.TemporaryDirectory(prefix="tlhub-gpu-check-") as tmp:
        scratch = Path(tmp)
        for round_ in range(1, settings.rounds + 1):
            for path in (TLHUB, BARE) if round_ % 2 else (BARE, TLHUB):
                print(f"== {path}, round {round_}", flush=True)
                try:
                    row = finish_row(measure(path, round_, settings, config, scratch), flops["counted"], peaks)
                    print(f"{path}: {row['samples_per_s']:.1f} samples/s", flush=True)
                except Exception as exc:
                    row = _failure(path, round_, 1, exc)
                free_memory(cuda)  # after a failure too: the next run's peak memory starts from nothing
                report.add(row)
        devices = env["cuda_devices"]
        if args.ddp == "on" or (args.ddp == "auto" and cuda and devices >= 2):
            for row in run_ddp(args, settings, scratch):
                report.add(row if "error" in row else finish_row(row, flops["counted"], peaks))
        else:
            why = "--ddp off" if args.ddp == "off" else "a dry run" if settings.dry_run else f"{devices} CUDA device(s)"
            report.note(f"DDP on 2 GPUs: skipped ({why}; it runs with 2 or more CUDA devices, or with --ddp on)")
    print(report.markdown(), flush=True)
    return 1 if any("error" in r for r in report.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
