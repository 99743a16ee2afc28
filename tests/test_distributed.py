"""Two CPU processes (gloo) against one: each shipped recipe family gives the same metrics and weights with the
same effective batch, a resumed 2-process run too; FSDP on a CPU falls back to data parallel, saying so.

The tiny models here have no dropout: each process draws its own dropout masks, which no process count could
reproduce. Training sets are a multiple of the effective batch (16), so no process fills its last batch up with
examples from the start of the epoch (Accelerate's even_batches).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import tlhub
from tests.conftest import (
    TINY_VOCAB,
    digits_recipe,
    needs_loopback,
    sms_recipe,
    tiny_audio_config,
    tiny_text_config,
    tiny_vit_config,
    tones_recipe,
    write_recipe,
    write_sms_tsv,
    write_tones,
)

pytestmark = needs_loopback
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "tlhub"]
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch"]
REPO = Path(__file__).resolve().parent.parent


def checkpoint(kind: str, folder: Path) -> Path:
    """A tiny randomly initialised classifier of the family without dropout, with its processor."""
    from transformers import (
        AutoModelForAudioClassification,
        AutoModelForImageClassification,
        AutoModelForSequenceClassification,
        BertTokenizer,
        ViTImageProcessorPil,
        Wav2Vec2FeatureExtractor,
    )

    torch.manual_seed(0)
    if kind == "image":
        AutoModelForImageClassification.from_config(tiny_vit_config()).save_pretrained(folder)
        ViTImageProcessorPil(size={"height": 16, "width": 16}).save_pretrained(folder)
    elif kind == "text":
        config = tiny_text_config("bert", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
        BertTokenizer(vocab={token: i for i, token in enumerate(TINY_VOCAB)}).save_pretrained(folder)
    else:
        quiet = dict.fromkeys(
            ("hidden_dropout", "activation_dropout", "attention_dropout", "feat_proj_dropout", "final_dropout"), 0.0
        )
        config = tiny_audio_config("wav2vec2", feat_extract_norm="layer", layerdrop=0.0, **quiet)
        AutoModelForAudioClassification.from_config(config).save_pretrained(folder)
        Wav2Vec2FeatureExtractor(sampling_rate=16000, return_attention_mask=True).save_pretrained(folder)
    return folder


def recipe(kind: str, tmp_path: Path, batch_size: int, output: str, **train: Any) -> dict[str, Any]:
    """The family's small recipe, 16 (or a multiple) training examples, 2 epochs, no dropout."""
    base = tmp_path / f"base-{kind}"  # made by checkpoint(kind, base)
    settings = {"epochs": 2, "batch_size": batch_size, "learning_rate": 1e-2, "mixed_precision": "no", **train}
    if kind == "image":
        made = digits_recipe(base, tmp_path / output, data={"train_samples_per_class": 16}, train=settings)
    elif kind == "text":
        data = write_sms_tsv(tmp_path / "sms.tsv")
        made = sms_recipe(base, data, tmp_path / output, data={"train_samples_per_class": 16}, train=settings)
    else:
        data = write_tones(tmp_path / "tones")
        made = tones_recipe(base, data, tmp_path / output, data={"train_samples_per_class": 8}, train=settings)
    return made


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


def same_run(one: Path, two: Path) -> None:
    """The metrics and the saved weights of two runs agree within float tolerance."""
    first, second = (json.loads((run / "metrics.json").read_text()) for run in (one, two))
    for split in ("validation", "test"):
        assert first[split]["examples"] == second[split]["examples"]
        for key, value in first[split].items():
            assert second[split][key] == pytest.approx(value, rel=1e-4, abs=1e-5), (split, key, first, second)
    a, b = weights(one), weights(two)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name].float(), b[name].float(), atol=1e-4), name


def kill_every_process_running(recipe: Path) -> None:
    """SIGKILL every process whose command line names ``recipe``: the launcher and the workers it started (torch's
    elastic agent starts each worker in a session of its own, out of reach of the launcher's process group)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if str(recipe).encode() in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue  # gone already, or not ours to read


def torchrun(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*TORCHRUN, "run", str(path), *args], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, _errors(done.stderr)
    return done


def _errors(stderr: str) -> str:
    """The lines of a failed launch worth reading: tlhub's messages and each rank's error, not the tracebacks."""
    keep = [line for line in stderr.splitlines() if "error" in line.lower() and "Traceback" not in line]
    return "\n".join(keep[:20]) or stderr[-3000:]


@pytest.mark.parametrize("kind", ["image", "text", "audio"])
def test_two_processes_with_half_the_batch_train_what_one_process_trains(tmp_path: Path, kind: str) -> None:
    checkpoint(kind, tmp_path / f"base-{kind}")
    one = tlhub.run(tlhub.Recipe.model_validate(recipe(kind, tmp_path, 16, "one", threads=1)))
    assert json.loads((one.output_dir / "run.json").read_text())["processes"]["processes"] == 1
    path = write_recipe(tmp_path / "two.yaml", recipe(kind, tmp_path, 8, "two"))
    torchrun(path)
    processes = json.loads((tmp_path / "two" / "run.json").read_text())["processes"]
    assert (processes["processes"], processes["distributed_type"]) == (2, "MULTI_CPU"), processes
    same_run(one.output_dir, tmp_path / "two")


def test_a_resumed_two_process_run_trains_what_an_uninterrupted_one_does(tmp_path: Path) -> None:
    checkpoint("text", tmp_path / "base-text")
    # 20 steps, a checkpoint after each (about 50 ms each): the kill lands long before the end
    one = tlhub.run(tlhub.Recipe.model_validate(recipe("text", tmp_path, 16, "one", threads=1, epochs=10)))
    path = write_recipe(tmp_path / "two.yaml", recipe("text", tmp_path, 8, "two", checkpoint_steps=1, epochs=10))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    started = subprocess.Popen(
        [*TORCHRUN, "run", str(path)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "two").glob("checkpoints/checkpoint_*/COMPLETE")):
        assert started.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.01)
    kill_every_process_running(path)  # the launcher and both workers, as a crashed machine would
    started.wait()
    assert not (tmp_path / "two" / "metrics.json").exists()
    resumed = torchrun(path, "--resume")
    assert "resumed from" in resumed.stdout
    same_run(one.output_dir, tmp_path / "two")


@pytest.mark.parametrize("shipped", ["ddp_cpu.yaml", "fsdp.yaml"])
def test_the_shipped_accelerate_configs_launch_on_this_cpu(tmp_path: Path, shipped: str) -> None:
    """ddp_cpu.yaml as it is; fsdp.yaml on 2 CPU processes: Accelerate enables FSDP on GPU-like devices only, so
    the launch runs plain data parallel (gloo), and tlhub says so and records both. Either way the saved folder
    is an ordinary model folder that transformers.pipeline loads."""
    from sklearn.datasets import load_digits
    from transformers import pipeline

    config = tmp_path / shipped
    config.write_text(
        (REPO / "recipes" / "accelerate" / shipped)
        .read_text()
        .replace("num_processes: 8", "num_processes: 2")
        .replace("mixed_precision: bf16", "mixed_precision: 'no'")
        .replace("use_cpu: false", "use_cpu: true")
    )
    checkpoint("image", tmp_path / "base-image")
    path = write_recipe(tmp_path / "r.yaml", recipe("image", tmp_path, 8, "out"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*ACCELERATE, "--config_file", str(config), "-m", "tlhub", "run", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, _errors(done.stderr)
    processes = json.loads((tmp_path / "out" / "run.json").read_text())["processes"]
    assert processes["distributed_type"] == "MULTI_CPU" and processes["processes"] == 2
    warned = "asked for FSDP, but Accelerate runs MULTI_CPU on cpu: FSDP needs GPUs" in done.stdout
    if shipped == "fsdp.yaml":
        assert warned and processes["accelerate_config"]["ACCELERATE_USE_FSDP"] == "true"
        assert processes["accelerate_config"]["FSDP_AUTO_WRAP_POLICY"] == "TRANSFORMER_BASED_WRAP"
    else:
        assert not warned and "ACCELERATE_USE_FSDP" not in processes["accelerate_config"]
        assert processes["accelerate_config"]["ACCELERATE_MIXED_PRECISION"] == "no"
    image = __import__("PIL.Image").Image.fromarray((load_digits().images[0] * 255 / 16).astype("uint8"))
    (best, *_) = pipeline("image-classification", model=str(tmp_path / "out"))(image)
    assert best["label"] in {str(d) for d in range(10)}
