"""Shared fixtures: tiny random models saved to disk, recipe writers, and the CLI driven in-process."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# tlhub's own plugins only: messages that list plugins stay exact whatever else is installed (the example
# plugin package's tests register it themselves, and check its entry point in a process of its own).
os.environ.setdefault("TLHUB_LOAD_PLUGINS", "image,text,audio")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
PRETRAINED_VIT = REPO / "recipes" / "checkpoints" / "vit-cifar10"


def tiny_vit_config(**overrides: Any) -> Any:
    from transformers import ViTConfig

    values = dict(
        image_size=16,
        patch_size=4,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=5,
    )
    values.update(overrides)
    return ViTConfig(**values)


@pytest.fixture(scope="session")
def tiny_vit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer ViT classifier (5 classes) saved as a checkpoint folder."""
    import torch
    from transformers import ViTForImageClassification, ViTImageProcessorPil

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-vit")
    ViTForImageClassification(tiny_vit_config(id2label={i: f"old{i}" for i in range(5)})).save_pretrained(path)
    ViTImageProcessorPil(size={"height": 16, "width": 16}).save_pretrained(path)
    return path


def tiny_audio_config(model_type: str, **overrides: Any) -> Any:
    from transformers import AutoConfig

    values: dict[str, Any] = dict(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8, 8),
        conv_stride=(5, 4),
        conv_kernel=(10, 4),
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2,
        classifier_proj_size=8,
        mask_time_prob=0.0,
        num_labels=2,
    )
    values.update(overrides)
    return AutoConfig.for_model(model_type, **values)


@pytest.fixture(scope="session")
def tiny_audio(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``tiny_audio(model_type, norm)``: a randomly initialised tiny audio classifier of the wav2vec2 family
    (2 classes) with its feature extractor (16 kHz), saved as a checkpoint folder (built once each)."""
    import torch
    from transformers import AutoModelForAudioClassification, Wav2Vec2FeatureExtractor

    built: dict[tuple[str, str], Path] = {}

    def make(model_type: str = "wav2vec2", norm: str = "layer") -> Path:
        if (model_type, norm) not in built:
            torch.manual_seed(0)
            path = tmp_path_factory.mktemp(f"tiny-{model_type}-{norm}")
            config = tiny_audio_config(model_type, feat_extract_norm=norm, id2label={0: "old0", 1: "old1"})
            AutoModelForAudioClassification.from_config(config).save_pretrained(path)
            Wav2Vec2FeatureExtractor(sampling_rate=16000, return_attention_mask=norm == "layer").save_pretrained(path)
            built[model_type, norm] = path
        return built[model_type, norm]

    return make


@pytest.fixture(scope="session")
def tiny_wav2vec2(tiny_audio: Any) -> Path:
    return tiny_audio("wav2vec2")  # type: ignore[no-any-return]


def write_wav(path: Path, samples: Any, rate: int = 8000) -> Path:
    """A 16-bit WAV of ``samples`` in [-1, 1] (channels x samples for several channels)."""
    import wave

    import numpy as np

    data = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(data.shape[0])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(data.T, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def write_tones(folder: Path, per_class: int = 24, rate: int = 8000, seed: int = 0) -> Path:
    """Tiny spoken-digit-like data: ``low_N.wav`` (300 Hz) and ``high_N.wav`` (1,500 Hz) tones of 0.2-0.6 s."""
    import numpy as np

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for label, hz in (("low", 300), ("high", 1500)):
        for i in range(per_class):
            t = np.arange(int(rate * rng.uniform(0.2, 0.6))) / rate
            tone = 0.5 * np.sin(2 * np.pi * hz * rng.uniform(0.9, 1.1) * t) + 0.02 * rng.standard_normal(t.size)
            write_wav(folder / f"{label}_{i}.wav", tone, rate)
    return folder


def tones_recipe(checkpoint: Path | str, folder: Path, output_dir: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A small audio recipe on :func:`write_tones` data, laid out like recipes/spoken_digits_wav2vec2.yaml."""
    recipe: dict[str, Any] = {
        "model": {"plugin": "audio", "checkpoint": str(checkpoint), "options": {"max_seconds": 0.5}},
        "data": {
            "source": "audio_files",
            "data_files": {"train": str(folder / "*.wav")},
            "load_options": {"label_pattern": "^(low|high)_"},
            "input_column": "audio",
            "test_fraction": 0.25,
            "validation_fraction": 0.2,
        },
        "tuning": {"strategy": "full"},
        "train": {"epochs": 6, "batch_size": 8, "learning_rate": 1e-2, "mixed_precision": "no"},
        "output_dir": str(output_dir),
    }
    return _update(recipe, sections)


# A tiny vocabulary: special tokens, the words of the tiny SMS data below, and single letters so that
# WordPiece spells any other ASCII word; non-Latin scripts map to [UNK].
_LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]
HAM_WORDS = "see you at lunch ok thanks mum home later dinner love going now".split()
SPAM_WORDS = "win cash prize free call claim urgent txt reply award".split()
TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *HAM_WORDS, *SPAM_WORDS, *_LETTERS]
TINY_VOCAB += [f"##{c}" for c in _LETTERS]


def tiny_text_config(model_type: str, **overrides: Any) -> Any:
    from transformers import AutoConfig

    if model_type == "distilbert":
        values: dict[str, Any] = dict(dim=32, n_layers=2, n_heads=2, hidden_dim=64)
    else:
        values = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    values.update(vocab_size=len(TINY_VOCAB), max_position_embeddings=64, pad_token_id=0, num_labels=3)
    values.update(overrides)
    return AutoConfig.for_model(model_type, **values)


@pytest.fixture(scope="session")
def tiny_text(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``tiny_text(model_type)``: a randomly initialised 2-layer sequence classifier (3 classes) with a
    WordPiece tokenizer over :data:`TINY_VOCAB`, saved as a checkpoint folder (built once per type)."""
    import torch
    from transformers import AutoModelForSequenceClassification, BertTokenizer

    built: dict[str, Path] = {}

    def make(model_type: str = "bert") -> Path:
        if model_type not in built:
            torch.manual_seed(0)
            path = tmp_path_factory.mktemp(f"tiny-{model_type}")
            BertTokenizer(vocab={token: i for i, token in enumerate(TINY_VOCAB)}).save_pretrained(path)
            config = tiny_text_config(model_type, id2label={i: f"old{i}" for i in range(3)})
            AutoModelForSequenceClassification.from_config(config).save_pretrained(path)
            built[model_type] = path
        return built[model_type]

    return make


def write_sms_tsv(path: Path, rows: int = 120, seed: int = 0) -> Path:
    """Tiny SMS-like data, ``label<TAB>text`` with no header: ham and spam use different words."""
    import random

    rng = random.Random(seed)
    lines = []
    for i in range(rows):
        label = "spam" if i % 3 == 0 else "ham"
        words = SPAM_WORDS if label == "spam" else HAM_WORDS
        lines.append(f"{label}\t{' '.join(rng.choices(words, k=rng.randint(3, 12)))}")
    path.write_text("\n".join(lines) + "\n")
    return path


def sms_recipe(checkpoint: Path | str, data_file: Path, output_dir: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A small text recipe on :func:`write_sms_tsv` data, laid out like recipes/sms_spam_bert.yaml."""
    recipe: dict[str, Any] = {
        "model": {"plugin": "text", "checkpoint": str(checkpoint), "options": {"max_length": 16}},
        "data": {
            "source": "csv",
            "data_files": str(data_file),
            "load_options": {"sep": "\t", "column_names": ["label", "text"], "quoting": 3},
            "input_column": "text",
            "labels": ["ham", "spam"],
            "test_fraction": 0.25,
            "validation_fraction": 0.2,
        },
        "tuning": {"strategy": "full"},
        "train": {"epochs": 10, "batch_size": 16, "learning_rate": 2e-2, "mixed_precision": "no"},
        "eval": {"metrics": ["accuracy", "f1", "f1_per_class"], "select_metric": "f1"},
        "output_dir": str(output_dir),
    }
    return _update(recipe, sections)


def _update(recipe: dict[str, Any], sections: dict[str, Any]) -> dict[str, Any]:
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(recipe.get(key), dict):
            recipe[key] = {**recipe[key], **value}
        else:
            recipe[key] = value
    return recipe


def digits_recipe(checkpoint: Path | str, output_dir: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A small fine-tuning recipe on scikit-learn's digits; ``sections`` update its top-level sections."""
    recipe: dict[str, Any] = {
        "model": {"plugin": "image", "checkpoint": str(checkpoint)},
        "data": {
            "source": "sklearn_digits",
            "input_column": "image",
            "test_fraction": 0.2,
            "validation_fraction": 0.1,
            "train_samples_per_class": 12,
        },
        "tuning": {"strategy": "full"},
        "train": {
            "epochs": 1,
            "batch_size": 32,
            "eval_batch_size": 128,
            "learning_rate": 1e-3,
            "mixed_precision": "no",
        },
        "output_dir": str(output_dir),
    }
    return _update(recipe, sections)


def write_recipe(path: Path, recipe: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


@pytest.fixture
def cli():
    """Run the ``tlhub`` CLI in-process; returns the click ``Result`` (output = stdout + stderr)."""
    from click.testing import CliRunner

    from tlhub.cli import main

    def invoke(*args: str) -> Any:
        return CliRunner().invoke(main, [str(a) for a in args])

    return invoke


def _loopback_works() -> bool:
    import socket

    try:
        with socket.create_server(("127.0.0.1", 0)) as server:
            socket.create_connection(server.getsockname(), timeout=2).close()
        return True
    except OSError:
        return False


needs_loopback = pytest.mark.skipif(
    not _loopback_works(),
    reason="the loopback interface is down (a bare `unshare -n` namespace): several processes talk over it; "
    "bring it up with `ip link set lo up` inside the namespace",
)
needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"real data folder {SHARED_DATA} is missing (CI provides it beside the clone)"
)
needs_pretrained_vit = pytest.mark.skipif(
    not (PRETRAINED_VIT / "model.safetensors").is_file(),
    reason=f"{PRETRAINED_VIT} is missing: run `tlhub run recipes/pretrain_vit_cifar10.yaml` first",
)


# --- tlhub in a separate process, started warm ------------------------------------------------------------

# Imported once by a fork server, so that each `tlhub` process forked from it starts in a fraction of a second
# instead of the ~5 s a cold `python -m tlhub` spends importing.
_WARM_MODULES = [
    "torch",
    "transformers",
    "transformers.models.vit.modeling_vit",
    "datasets",
    "accelerate",
    "peft",
    "evaluate",
    "sklearn.datasets",
    "safetensors.torch",
    "tlhub.cli",
    "tlhub.runner",
    "tlhub.engine",
    "tlhub.plan",
    "tlhub.rundir",
    "tlhub_image",
    "tests.conftest",
]


def _tlhub_main(args: list[str], log: str) -> None:
    """A warm process's body: ``tlhub ARGS`` with stdout and stderr in ``LOG.out`` and ``LOG.err``, line by line
    (what a killed process printed is on disk)."""
    import sys

    for fd, suffix in ((1, ".out"), (2, ".err")):
        target = os.open(log + suffix, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    from tlhub.cli import main

    main(args, prog_name="tlhub")  # exits with the CLI's own code (SystemExit becomes the process's exit code)


class TlhubProcess:
    """One running ``tlhub`` process: its output so far, and the signals a test sends it.

    ``run_until`` lets it run in short slices and checks a condition only while it is stopped, so that the
    state a test sees when it kills the process is exactly the state the process dies in.
    """

    def __init__(self, process: Any, log: Path) -> None:
        self.process = process
        self.log = log

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def out(self) -> str:
        """What it printed to stdout so far."""
        return _read(Path(f"{self.log}.out"))

    def err(self) -> str:
        """What it printed to stderr so far."""
        return _read(Path(f"{self.log}.err"))

    def wait(self, timeout: float = 300) -> int:
        self.process.join(timeout)
        assert self.process.exitcode is not None, f"tlhub did not end within {timeout} s:\n{self.err()[-2000:]}"
        return int(self.process.exitcode)

    def alive(self) -> bool:
        return bool(self.process.is_alive())

    def send(self, number: int) -> None:
        os.kill(self.pid, number)

    def pause(self) -> bool:
        """Stop the process (SIGSTOP) and wait until every thread has stopped; ``False`` when it has ended."""
        import signal
        import time

        try:
            os.kill(self.pid, signal.SIGSTOP)
        except ProcessLookupError:
            return False
        while True:
            states = _thread_states(self.pid)
            if not states or "Z" in states or "X" in states:
                return False
            if all(s in "tT" for s in states):
                return True
            time.sleep(0.0001)

    def cont(self) -> None:
        import signal

        try:
            os.kill(self.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass  # it has ended

    def kill(self) -> int:
        """SIGKILL (a stopped process dies too); the exit code, -9."""
        import signal

        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it has ended
        return self.wait(60)

    def run_until(self, condition: Any, quantum: float = 0.001, timeout: float = 300) -> bool:
        """Run in slices of ``quantum`` seconds until ``condition()`` holds while the process is stopped.

        Returns ``True`` with the process stopped there, ``False`` when it ended first.
        """
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.pause():
                return False
            if condition():
                return True
            self.cont()
            time.sleep(quantum)
        raise AssertionError(f"condition not reached within {timeout} s:\n{self.err()[-2000:]}")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""  # not started yet


def _thread_states(pid: int) -> list[str]:
    """The state letter of each thread of ``pid`` (``T`` stopped, ``Z`` ended, ...); none once it is gone."""
    states = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return []
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that just ended
        states.append(stat[stat.rindex(")") + 2])
    return states


@pytest.fixture(scope="session")
def start_tlhub() -> Any:
    """``start_tlhub(*args, log=path)``: start ``tlhub ARGS`` in its own process -> :class:`TlhubProcess`.

    Processes are forked from a server that has imported torch, transformers and tlhub once (multiprocessing's
    forkserver), so they start fast and die like any process: SIGKILL leaves what a crash leaves. Each runs the
    CLI's ``main`` exactly as ``tlhub`` does; anything still running at the end of the session is killed.
    """
    import multiprocessing

    if not Path("/proc/self/task").is_dir():
        pytest.skip("pausing a process at an exact point reads /proc (Linux)")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_WARM_MODULES)
    started: list[TlhubProcess] = []

    def start(*args: str | Path, log: Path) -> TlhubProcess:
        process = context.Process(target=_tlhub_main, args=([str(a) for a in args], str(log)))
        process.start()
        started.append(TlhubProcess(process, log))
        return started[-1]

    yield start
    for running in started:
        if running.alive():
            running.kill()
