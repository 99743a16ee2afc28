"""tlhub's training loop against HF Trainer and a bare PyTorch loop on the main job's fine-tune.

    .venv/bin/python benchmarks/engine_speed.py [--pairs 3] [--epochs 4]

The same model (the CIFAR-10 ViT with a new 10-class head), data (the digits training split, preprocessed by the
image plugin's encoder), batch (32), precision (bf16 autocast), optimizer (fused AdamW, cosine schedule with
warmup, gradient clipping at 1.0) and steps for each. Each contender is a process of its own that trains
``--epochs`` epochs and reports its training time per epoch (data loading included, evaluation excluded); the
figure is training samples per second, the median over the epochs after the first. Contenders run in pairs,
tlhub and each other one, ``--pairs`` times, tlhub first in one pair and second in the next, and each tlhub run
is divided by the other run of its pair, so a drift of the machine's speed cancels. Attention: transformers'
default (SDPA) for all, which tlhub's ``model.attention: auto`` keeps (benchmarks/step_levers.py). Time it on a
quiet machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "recipes" / "digits_vit.yaml"
CONTENDERS = ("tlhub", "trainer", "bare")


def plan_of(epochs: int, output: Path) -> Any:
    import tlhub

    return tlhub.make_plan(RECIPE, overrides={"train.epochs": epochs, "output_dir": str(output)})


def model_of(plan: Any) -> Any:
    from tlhub.model import build_model

    model, _ = build_model(plan.modality, plan.checkpoint, plan.config)  # the new head, as tlhub builds it
    return model


def inputs_of(plan: Any) -> tuple[Any, Any]:
    """The training examples and the collate that tlhub's training batches use (image plugin's encoder)."""
    r = plan.recipe
    train = plan.splits.train.select_columns([*r.data.input_columns, r.data.label_column])
    collate = plan.modality.collate(
        plan.processor, plan.config, plan.options, r.data.input_columns, r.data.label_column, training=True
    )
    return train, collate


def run_tlhub(epochs: int, output: Path) -> list[float]:
    import tlhub

    tlhub.run(plan_of(epochs, output))
    history = json.loads((output / "run.json").read_text())["history"]
    return [h["train_seconds"] for h in history]


def run_trainer(epochs: int, output: Path) -> list[float]:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    plan = plan_of(epochs, output)
    train, collate = inputs_of(plan)
    t = plan.recipe.train
    seconds: list[float] = []

    class EpochTimes(TrainerCallback):
        def on_epoch_begin(self, *args: Any, **kwargs: Any) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, *args: Any, **kwargs: Any) -> None:
            seconds.append(time.perf_counter() - self.started)

    arguments = TrainingArguments(
        output_dir=str(output / "trainer"),
        per_device_train_batch_size=t.batch_size,
        num_train_epochs=epochs,
        learning_rate=t.learning_rate,
        weight_decay=t.weight_decay,
        lr_scheduler_type=t.scheduler,
        warmup_steps=int(t.warmup_ratio * epochs * -(-len(train) // t.batch_size)),
        max_grad_norm=t.max_grad_norm,
        bf16=t.mixed_precision == "bf16",
        use_cpu=True,
        eval_strategy="no",
        save_strategy="no",
        report_to=[],
        logging_steps=50,
        remove_unused_columns=False,  # the collate reads the image column
        dataloader_num_workers=t.num_workers,
        seed=t.seed,
        disable_tqdm=True,
    )
    Trainer(
        model=model_of(plan),
        args=arguments,
        train_dataset=train,
        data_collator=collate,
        callbacks=[EpochTimes()],
    ).train()
    return seconds


def run_bare(epochs: int, output: Path) -> list[float]:
    import torch
    from torch.utils.data import DataLoader
    from transformers import get_scheduler

    plan = plan_of(epochs, output)
    train, collate = inputs_of(plan)
    t = plan.recipe.train
    torch.manual_seed(t.seed)
    model = model_of(plan).train()
    loader = DataLoader(train, batch_size=t.batch_size, shuffle=True, collate_fn=collate)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=t.learning_rate, weight_decay=t.weight_decay, fused=True)
    steps = epochs * len(loader)
    scheduler = get_scheduler(t.scheduler, optimizer, int(t.warmup_ratio * steps), steps)
    seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        for batch in loader:
            labels = batch.pop("labels")
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=t.mixed_precision == "bf16"):
                logits = model(**batch).logits
            loss = torch.nn.functional.cross_entropy(logits.float(), labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        seconds.append(time.perf_counter() - started)
    return seconds


def worker(name: str, epochs: int) -> None:
    """One contender in this process: prints ``{"seconds": [...], "examples": n}``."""
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "run"
        seconds = {"tlhub": run_tlhub, "trainer": run_trainer, "bare": run_bare}[name](epochs, output)
        examples = len(plan_of(epochs, Path(folder) / "count").splits.train)
    print(json.dumps({"seconds": seconds, "examples": examples}))


def samples_per_second(name: str, epochs: int) -> float:
    done = subprocess.run(
        [sys.executable, __file__, "--worker", name, "--epochs", str(epochs)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return float(statistics.median(report["examples"] / s for s in report["seconds"][1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--worker", choices=CONTENDERS)
    parser.add_argument("--only", default=",".join(CONTENDERS), help="comma-separated contenders")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.epochs)
        return
    from report import machine, write_section

    others = [n for n in args.only.split(",") if n != "tlhub"]
    rates: dict[str, list[float]] = {n: [] for n in ["tlhub", *others]}
    ratios: dict[str, list[float]] = {n: [] for n in others}
    for pair in range(args.pairs):
        for name in others:  # each ratio from neighbouring runs, tlhub first in one pair and second in the next:
            if pair % 2 == 0:  # a machine that speeds up or slows down over time favours neither
                ours, theirs = samples_per_second("tlhub", args.epochs), samples_per_second(name, args.epochs)
            else:
                theirs, ours = samples_per_second(name, args.epochs), samples_per_second("tlhub", args.epochs)
            rates["tlhub"].append(ours)
            rates[name].append(theirs)
            ratios[name].append(ours / theirs)
            print(f"pair {pair + 1}: tlhub {ours:.1f} vs {name} {theirs:.1f} samples/s ({ours / theirs:.3f}x)")
    rows = [
        "| contender | training samples/s (median, min-max) | tlhub / it, per pair (median, min-max) |",
        "|---|---|---|",
    ]
    for name, values in rates.items():
        ratio = ratios.get(name)
        paired = f"{statistics.median(ratio):.3f} ({min(ratio):.3f}-{max(ratio):.3f})" if ratio else "-"
        rows.append(f"| {name} | {statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f}) | {paired} |")
    lines = [
        "## Engine speed: tlhub against HF Trainer and a bare loop",
        "",
        f"`benchmarks/engine_speed.py`, {machine()}: the digits fine-tune of `recipes/digits_vit.yaml` (batch 32, "
        f"bf16 autocast, fused AdamW, clipping 1.0), {args.epochs} epochs a run, {args.pairs} pairs in alternating "
        "order; samples/s "
        f"of a run: the median over its epochs 2-{args.epochs}.",
        "",
        *rows,
    ]
    print("\n".join(lines))
    write_section("engine_speed", lines)


if __name__ == "__main__":
    main()
