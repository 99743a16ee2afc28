"""Recipes: the typed schema, reading a recipe file, ``KEY=VALUE`` overrides and error reporting.

A recipe is validated completely before any weights or data load, and every problem is reported at
once, each naming its YAML key path, the bad value and the valid ones. The schema is strict: no
coercion a YAML user could be surprised by (``yes`` or ``true`` is not an epoch count, ``"5"`` is not a
number), finite numbers only, and bounds on everything a typo could make absurd.
"""

from __future__ import annotations

import difflib
import math
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from tlhub.errors import RecipeError
from tlhub.metrics import BUILTIN as BUILTIN_METRICS
from tlhub.safe_yaml import parse_yaml_value, read_yaml_file
from tlhub.tuning import STRATEGIES
from tlhub.tuning import full as full_strategy
from tlhub.tuning import head as head_strategy
from tlhub.tuning import lora as lora_strategy
from tlhub.tuning.parameters import Name

# The schedules the engine builds from a warmup and a total step count alone (transformers.get_scheduler);
# reduce_lr_on_plateau needs a metric per step and the *_min_lr / warmup_stable_decay ones more arguments.
SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
)
SEED_MAX = 2**32 - 1  # numpy's seeds are 32-bit
# The experiment trackers Accelerate logs to (accelerate.utils.LoggerType, less "all": a recipe names what it
# logs to, whatever else is installed); a test keeps this list equal to Accelerate's. Whether a tracker's
# package is installed is checked by the plan (tlhub validate), which may import Accelerate.
TRACKERS = ("aim", "clearml", "comet_ml", "dvclive", "mlflow", "swanlab", "tensorboard", "trackio", "wandb")


class _Section(BaseModel):
    # strict: a YAML `yes`/`true` is not 1 and "5" is not 5; finite numbers only.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _enum(names: Any) -> Any:
    """A JSON Schema ``enum`` for a name the validators check (with did-you-mean messages), for editors."""
    return {"enum": sorted(names)}


def _examples(names: Any) -> dict[str, Any]:
    """JSON Schema ``examples``: the built-in names (plugins may register more)."""
    return {"examples": sorted(names)}


def _no_duplicates(values: list[str], what: str) -> list[str]:
    seen = {v for v in values if values.count(v) > 1}
    if seen:
        raise PydanticCustomError(
            "duplicates", "{what} {names} listed more than once", {"what": what, "names": ", ".join(sorted(seen))}
        )
    return values


def _unknown(kind: str, value: str, known: list[str]) -> PydanticCustomError:
    close = difflib.get_close_matches(value, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return PydanticCustomError(
        "unknown_name",
        "'{value}' is not a known {kind} (known: {known}){hint}",
        {"value": value, "kind": kind, "known": ", ".join(known) or "none", "hint": hint},
    )


class ModelSection(_Section):
    plugin: str = Field(
        min_length=1, description="Modality plugin that builds and preprocesses the model (`tlhub plugins` lists them)."
    )
    checkpoint: str | None = Field(
        None,
        min_length=1,
        description="Pretrained checkpoint to start from: a local folder (config.json + weights) or a Hub id. "
        "Its output layer is replaced by a new head.",
    )
    config: dict[str, Any] | None = Field(
        None,
        description="transformers config values (with `model_type`) for a model trained from scratch; "
        "used instead of `checkpoint`.",
    )
    attention: Literal["auto", "eager", "sdpa", "flash_attention_2"] = Field(
        "auto",
        description="The attention implementation the model is built with (transformers' attn_implementation). "
        "auto: transformers' default (sdpa where the family has it; eager measured not consistently faster on a "
        "CPU, docs/benchmarks.md). flash_attention_2 needs a GPU and the flash-attn package.",
    )
    init: Literal["pretrained", "random"] = Field(
        "pretrained",
        description="pretrained: start from the checkpoint's values. random: the checkpoint's architecture and "
        "preprocessing with random values, the from-scratch control of a transfer experiment (`tlhub compare`'s "
        "`scratch`).",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Options of the plugin named by model.plugin, checked by that plugin in `tlhub validate`; "
        "`tlhub schema --markdown` lists each plugin's keys.",
    )
    trust_remote_code: bool = Field(
        False,
        description="Run Python code shipped with the checkpoint (config.json `auto_map`: its own config, model "
        "or preprocessing classes) to load it. That code runs with your rights: only for sources you trust. "
        "Datasets' loading scripts never run (datasets 4+ removed them). The model card states it.",
    )
    allow_partial_load: bool = Field(
        False,
        description="Start from a checkpoint whose tensors outside the head do not all fit its config (missing, "
        "extra or of another size): those start from random values or are dropped, a warning in the head "
        "surgery and model card. Off: such a checkpoint is refused, since it belongs to another architecture.",
    )

    @field_validator("plugin")
    @classmethod
    def _known_plugin(cls, value: str, info: Any) -> str:
        known = (info.context or {}).get("plugins")
        if known is not None and value not in known:
            raise _unknown("plugin", value, sorted(known))
        return value

    @model_validator(mode="after")
    def _one_start(self) -> ModelSection:
        if (self.checkpoint is None) == (self.config is None):
            raise PydanticCustomError(
                "model_start", "set exactly one of model.checkpoint (fine-tune) or model.config (train from scratch)"
            )
        if self.config is not None and "model_type" not in self.config:
            raise PydanticCustomError("model_type", "model.config: needs a `model_type` (e.g. vit)")
        if self.init == "random" and self.checkpoint is None:
            raise PydanticCustomError(
                "model_init",
                "model.init: 'random' takes the architecture of model.checkpoint, which is not set (a model.config "
                "model starts from random values anyway)",
            )
        return self


class SplitsSection(_Section):
    train: str = Field("train", min_length=1, description="Split of the source used for training.")
    validation: str | None = Field(
        None,
        min_length=1,
        description="Split that picks the best epoch; null carves it from train (data.validation_fraction).",
    )
    test: str | None = Field(
        None, min_length=1, description="Split for the final test; null carves it from train (data.test_fraction)."
    )


class DataSection(_Section):
    source: str = Field(
        min_length=1,
        description="A registered source (`tlhub plugins`), or anything `datasets.load_dataset` takes: "
        "a Hub id, a local folder, or a builder such as parquet, csv, imagefolder with `data_files`.",
    )
    name: str | None = Field(None, min_length=1, description="Dataset configuration name (`load_dataset(path, name)`).")
    data_files: Name | list[Name] | dict[str, Name | list[Name]] | None = Field(
        None,
        description="Files for a builder source, e.g. {train: a.parquet, test: b.parquet}; "
        "relative to the working directory.",
    )
    load_options: dict[str, Any] = Field(
        default_factory=dict,
        description="For a registered source (`tlhub plugins`): its own options, checked by it. Otherwise more "
        "keyword arguments for `datasets.load_dataset`, such as a csv builder's sep, column_names or quoting.",
    )
    input_column: str | list[str] = Field(
        description="Column holding the model input (image, audio or text); two text columns for sentence pairs."
    )
    label_column: str = Field("label", min_length=1, description="Column holding the class label (ids or names).")
    labels: list[Name] | None = Field(
        None,
        min_length=2,
        description="Class names in id order (at least two, each once); default: the label column's names.",
    )
    splits: SplitsSection = Field(default_factory=SplitsSection, description="Which source splits play which role.")
    test_fraction: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Share of train carved out (stratified) as the test split when splits.test is null.",
    )
    validation_fraction: float | None = Field(
        None, gt=0, lt=1, description="Share of train carved out (stratified) as the validation split."
    )
    split_seed: int = Field(
        0, ge=0, le=SEED_MAX, description="Seed of the carved splits, so every strategy sees the same split."
    )
    train_samples_per_class: int | None = Field(
        None,
        gt=0,
        le=10**9,
        description="Keep at most this many training examples per class (few-shot experiments); a class with "
        "fewer keeps all of its own, and the model card says so.",
    )
    lines_per_row: Literal["one", "any"] = Field(
        "one",
        description="For csv files: 'one' checks that every non-empty line (after a header) is one row, so rows "
        "lost to a stray quote are an error; 'any' allows quoted fields that span lines.",
    )

    @property
    def input_columns(self) -> list[str]:
        """``input_column`` as a list."""
        return [self.input_column] if isinstance(self.input_column, str) else list(self.input_column)

    @field_validator("input_column")
    @classmethod
    def _one_or_two_columns(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not 1 <= len(value) <= 2:
            raise PydanticCustomError(
                "input_columns", "name one column, or two for sentence pairs (got {n})", {"n": len(value)}
            )
        names = [value] if isinstance(value, str) else value
        if any(not n for n in names):
            raise PydanticCustomError("input_columns", "a column name cannot be empty")
        _no_duplicates(names, "column")
        return value

    @field_validator("labels")
    @classmethod
    def _distinct_labels(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _no_duplicates(value, "label")

    @model_validator(mode="after")
    def _splits_defined(self) -> DataSection:
        if self.label_column in self.input_columns:
            raise PydanticCustomError(
                "label_is_input",
                "data.label_column: '{c}' is also the input column; name the column that holds the class labels",
                {"c": self.label_column},
            )
        for role in ("validation", "test"):
            if getattr(self.splits, role) is not None and getattr(self.splits, role) == self.splits.train:
                raise PydanticCustomError(
                    "split_reuse",
                    "data.splits.{role}: '{name}' is the training split, so the {role} score would be measured on "
                    "training data; name another split, or unset it to carve one from train",
                    {"role": role, "name": self.splits.train},
                )
        if self.splits.test is not None and self.splits.test == self.splits.validation:
            raise PydanticCustomError(
                "split_reuse",
                "data.splits.test: '{name}' is also data.splits.validation, so the best epoch would be picked on "
                "the test data; name two different splits",
                {"name": self.splits.test},
            )
        if self.splits.test is None and self.test_fraction is None:
            raise PydanticCustomError("no_test", "set data.splits.test or data.test_fraction: a run needs a test split")
        if self.splits.validation is None and self.validation_fraction is None:
            raise PydanticCustomError(
                "no_validation",
                "set data.splits.validation or data.validation_fraction: the best epoch is picked on it",
            )
        return self


class TuningSection(_Section):
    # `strategy` picks a registered strategy (tlhub's head, full, lora or a plugin's); each has its own block of
    # options, so switching with `tuning.strategy=head` keeps the others' settings valid. The built-ins' blocks
    # are typed here; a plugin strategy's block (`tuning.<its name>`) is validated by its own options model.
    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)

    strategy: str = Field(
        description="How to fine-tune: head (only the new head trains: tiny data), full (every layer trains "
        "from the pretrained values: more data), lora (low-rank adapters plus the new head), or a strategy a "
        "plugin registers (`tlhub plugins` lists them; its options go under tuning.<its name>).",
        json_schema_extra=_examples(STRATEGIES),
    )
    full: full_strategy.Options = Field(
        default_factory=full_strategy.Options,
        description="Options of `full`, used when tuning.strategy is full: every layer trains, but these.",
    )
    head: head_strategy.Options = Field(
        default_factory=head_strategy.Options,
        description="Options of `head`, used when tuning.strategy is head: only the new head trains.",
    )
    lora: lora_strategy.Options = Field(
        default_factory=lora_strategy.Options,
        description="Options of `lora`, used when tuning.strategy is lora: adapters on the backbone, head in full.",
    )

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        known = _registered_strategies()
        if value not in known:
            raise _unknown("strategy", value, sorted(known))
        return value

    @model_validator(mode="after")
    def _plugin_blocks(self) -> TuningSection:
        """Each further block names a plugin's strategy and holds options its model accepts."""
        known = _registered_strategies()
        for name, block in (self.model_extra or {}).items():
            strategy = known.get(name)
            if strategy is None:
                raise PydanticCustomError(
                    "unknown_block",
                    "tuning.{name}: not a strategy's options (strategies: {known})",
                    {"name": name, "known": ", ".join(sorted(known))},
                )
            try:
                self.__pydantic_extra__[name] = strategy.options.model_validate(block, strict=True)  # type: ignore[index]
            except ValidationError as exc:
                raise PydanticCustomError(
                    "strategy_options",
                    "{problems}",
                    {"problems": "; ".join(format_errors(exc, strategy.options, prefix=f"tuning.{name}."))},
                ) from None
        return self

    def options(self) -> BaseModel:
        """The options block of the chosen strategy (its defaults when the recipe has none)."""
        found = getattr(self, self.strategy, None)
        if found is None:
            found = _registered_strategies()[self.strategy].options()
        return found  # type: ignore[no-any-return]

    def learning_rate(self, default: float) -> float:
        """The chosen strategy's own learning rate, else ``default`` (train.learning_rate)."""
        own: float | None = getattr(self.options(), "learning_rate", None)
        return own if own is not None else default


def _registered_strategies() -> dict[str, Any]:
    from tlhub.plugins import strategies

    return strategies()


class EarlyStopping(_Section):
    patience: int = Field(gt=0, le=10_000, description="Epochs without an improvement before training stops.")
    min_delta: float = Field(
        0.0, ge=0, le=1, description="Smallest rise of eval.select_metric that counts as an improvement."
    )


class TrainSection(_Section):
    epochs: int = Field(3, gt=0, le=10_000, description="Passes over the training split.")
    batch_size: int = Field(
        32,
        gt=0,
        le=65_536,
        description="Examples per step on each process; larger than the training split means one batch per "
        "epoch (the model card says so).",
    )
    eval_batch_size: int = Field(128, gt=0, le=65_536, description="Examples per evaluation step on each process.")
    learning_rate: float = Field(
        1e-4, gt=0, le=1, description="Peak learning rate of AdamW (above 1 AdamW only diverges)."
    )
    weight_decay: float = Field(0.0, ge=0, le=1, description="AdamW's decoupled weight decay.")
    scheduler: Literal[SCHEDULERS] = Field(  # type: ignore[valid-type]
        "linear", description=f"Learning-rate schedule after warmup: {', '.join(SCHEDULERS)}."
    )
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="Share of optimizer steps spent warming up.")
    gradient_accumulation_steps: int = Field(1, gt=0, le=4096, description="Batches summed per optimizer step.")
    max_grad_norm: float | None = Field(1.0, gt=0, le=1e6, description="Gradient clipping norm; null disables it.")
    label_smoothing: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Training loss against targets that give this share of probability to all classes evenly "
        "(torch cross_entropy's label_smoothing); validation and test losses are plain. 0: off.",
    )
    mixed_precision: Literal["no", "fp16", "bf16"] = Field(
        "bf16",
        description="Autocast dtype; bf16 also speeds up recent CPUs (AMX); fp16 needs a GPU.",
    )
    seed: int = Field(0, ge=0, le=SEED_MAX, description="Seed for the new head's initialisation and the data order.")
    checkpoint_steps: int | None = Field(
        None,
        gt=0,
        le=10**9,
        description="Also save a resumable checkpoint every N optimizer steps (one is saved every epoch).",
    )
    num_workers: int = Field(0, ge=0, le=256, description="DataLoader worker processes.")
    compile: bool = Field(
        False,
        description="torch.compile the model (inductor, through Accelerate's dynamo_backend). Off: measured 5% "
        "faster per step for the main job's ViT on a 2-core CPU after a first step of 11 s, and each new batch "
        "shape compiles again (docs/benchmarks.md). false: tlhub does not ask for it (a launcher's config may).",
    )
    threads: int | None = Field(
        None,
        gt=0,
        le=4096,
        description="Intra-op CPU threads of each process (torch.set_num_threads); null: the CPUs this process may "
        "use (its CPU affinity and cgroup quota) shared among the machine's local processes, or OMP_NUM_THREADS "
        "when set. Printed and recorded in run.json.",
    )
    class_weighting: Literal["none", "balanced"] = Field(
        "none",
        description="Weight the training loss by class: 'balanced' weighs each class by n_examples / "
        "(n_classes * its count), so a rare class counts as much as a common one.",
    )
    early_stopping: EarlyStopping | None = Field(
        None,
        description="Stop when the validation metric (eval.select_metric) stalls; null trains every epoch. "
        "The best epoch's weights are kept either way, and the model card says when and why it stopped.",
    )
    logging_steps: int = Field(
        10,
        gt=0,
        le=10**9,
        description="Every N optimizer steps, record the mean training loss of the batches since the last record "
        "and the learning rate (run.json `log`, curves.png, the trackers); the last step of training is always "
        "recorded.",
    )
    report_to: list[Annotated[str, Field(json_schema_extra=_enum(TRACKERS))]] = Field(
        default_factory=list,
        description=f"Experiment trackers that receive the recipe, the training log and each epoch's validation "
        f"metrics, through Accelerate: {', '.join(TRACKERS)}, or one a plugin registers (`tlhub plugins`); each "
        "one's package must be installed. TensorBoard "
        "and Aim write under logs/ in output_dir (`tensorboard --logdir OUTPUT_DIR/logs`); the others log where "
        "their own settings say (their service, or a folder of theirs in the working directory).",
    )

    @field_validator("report_to")
    @classmethod
    def _known_trackers(cls, values: list[str]) -> list[str]:
        if not values:
            return values
        from tlhub.plugins import trackers

        known = {*TRACKERS, *trackers()}  # Accelerate's, and those plugins register
        for v in values:
            if v not in known:
                raise _unknown("tracker", v, sorted(known))
        return _no_duplicates(values, "tracker")


class EvalSection(_Section):
    metrics: list[Annotated[str, Field(json_schema_extra={"examples": sorted(BUILTIN_METRICS)})]] = Field(
        default_factory=lambda: ["accuracy"],
        description="Metrics computed on every evaluated split (evaluate modules): built in "
        f"{', '.join(sorted(BUILTIN_METRICS))}; plugins add more (`tlhub plugins` lists them).",
    )
    select_split: Literal["validation", "none"] = Field(
        "validation",
        description="Split whose select_metric picks the best epoch (never test: it must stay unseen); "
        "'none' keeps the last epoch.",
    )
    select_metric: str = Field(
        "accuracy",
        description="Metric (higher is better) that picks the best epoch on select_split.",
        json_schema_extra=_examples(BUILTIN_METRICS),
    )

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, values: list[str]) -> list[str]:
        if not values:
            raise PydanticCustomError("no_metrics", "name at least one metric (known: {known})", {"known": _metrics()})
        known = _known_metrics()
        for v in values:
            if v not in known:
                raise _unknown("metric", v, sorted(known))
        return _no_duplicates(values, "metric")

    @model_validator(mode="after")
    def _select_computed(self) -> EvalSection:
        if self.select_metric not in self.metrics:
            raise PydanticCustomError(
                "select_metric",
                "eval.select_metric: '{m}' is not among eval.metrics ({ms})",
                {"m": self.select_metric, "ms": ", ".join(self.metrics)},
            )
        return self


def _dotted(overrides: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested override mappings as dotted keys: {train: {epochs: 1}} and {train.epochs: 1} mean the same."""
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        if isinstance(value, dict) and value:
            flat.update(_dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# What `tlhub compare` calls each built-in strategy of its grid, as recipe overrides (tlhub/comparison.py
# adds the unfreezing schedule's epochs); `baseline` is the plugin's classical model, not a recipe run.
COMPARE_STRATEGIES = ("baseline", "scratch", "head", "lora", "full", "unfreeze")


class CompareSection(_Section):
    """The grid of `tlhub compare`: strategies x labelled examples per class x seeds."""

    strategy_overrides: dict[Name, dict[Name, Any]] = Field(
        default_factory=dict,
        description="Recipe overrides per strategy as dotted keys, e.g. {head: {train.learning_rate: 0.003}}; "
        "a name that is not built in defines a strategy of its own (it must set tuning.strategy).",
    )
    strategies: list[Name] = Field(
        default_factory=lambda: list(COMPARE_STRATEGIES),
        min_length=1,
        description="baseline (the plugin's classical model), scratch (the checkpoint's architecture from random "
        "values, trained in full), head, lora, full, unfreeze (tuning.full.unfreeze: the head alone for the "
        "first third of the epochs, then everything), or a name of your own defined in strategy_overrides.",
    )
    samples_per_class: list[Annotated[int, Field(gt=0, le=10**9)] | None] = Field(
        default_factory=lambda: [2, 10, 50, None],
        min_length=1,
        description="Training-set sizes, in labelled examples per class (data.train_samples_per_class); null: "
        "the whole training split. Subsets are nested: each larger one holds the smaller.",
    )
    seeds: list[Annotated[int, Field(ge=0, le=SEED_MAX)]] = Field(
        default_factory=lambda: [0, 1, 2], min_length=1, description="train.seed of each repetition of a cell."
    )
    min_steps: int = Field(
        0,
        ge=0,
        le=10**9,
        description="Each cell trains at least this many optimizer steps: small subsets get more epochs (at 2 "
        "examples per class an epoch is one step).",
    )
    overrides: dict[Name, Any] = Field(
        default_factory=dict,
        description="Recipe overrides for every cell as dotted keys, e.g. {train.epochs: 10, "
        "train.early_stopping.patience: 3}: a grid may train shorter than the recipe's one run.",
    )
    output_dir: str | None = Field(
        None, min_length=1, description="Where the grid's runs and summary go; default: output_dir + '-compare'."
    )

    @field_validator("overrides")
    @classmethod
    def _flat(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _dotted(value)

    @field_validator("strategies", "samples_per_class", "seeds")
    @classmethod
    def _distinct(cls, value: list[Any], info: Any) -> list[Any]:
        if repeated := sorted({str(v) for v in value if value.count(v) > 1}):
            raise PydanticCustomError("duplicates", "{m} listed more than once", {"m": ", ".join(repeated)})
        return value

    @field_validator("strategy_overrides")
    @classmethod
    def _own_strategies(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        value = {name: _dotted(overrides) for name, overrides in value.items()}
        for name, overrides in value.items():
            if name not in COMPARE_STRATEGIES and "tuning.strategy" not in overrides:
                raise PydanticCustomError(
                    "own_strategy", "{name}: a strategy of your own must set tuning.strategy", {"name": name}
                )
        return value

    @field_validator("strategies")
    @classmethod
    def _known_strategies(cls, value: list[str], info: Any) -> list[str]:
        own = sorted(set(info.data.get("strategy_overrides") or {}) - set(COMPARE_STRATEGIES))
        for name in value:
            if name not in COMPARE_STRATEGIES and name not in own:
                raise _unknown("strategy", name, [*sorted(COMPARE_STRATEGIES), *own])
        return value


class Recipe(_Section):
    """A fine-tuning (or pretraining) run, as written in a YAML recipe."""

    model: ModelSection = Field(description="What to train: plugin plus checkpoint or config.")
    data: DataSection = Field(description="Where the examples come from and how they are split.")
    tuning: TuningSection = Field(description="Which parameters train.")
    train: TrainSection = Field(default_factory=TrainSection, description="The optimisation loop.")
    eval: EvalSection = Field(default_factory=EvalSection, description="Metrics and best-epoch selection.")
    compare: CompareSection | None = Field(
        None, description="The grid `tlhub compare` runs (a run ignores it); flags of `tlhub compare` override it."
    )
    output_dir: str = Field(
        min_length=1,
        description="Run directory: the model folder, metrics, resolved recipe and model card. Never the "
        "working directory, a parent of it, the recipe's folder or the base checkpoint's folder.",
    )

    @model_validator(mode="after")
    def _unfreeze_within_epochs(self) -> Recipe:
        unfreeze = self.tuning.full.unfreeze
        if self.tuning.strategy == "full" and unfreeze is not None and unfreeze.head_epochs >= self.train.epochs:
            raise PydanticCustomError(
                "unfreeze_epochs",
                "tuning.full.unfreeze.head_epochs: {h} of train.epochs {e} leaves no epoch in which the backbone "
                "trains; use fewer head epochs or more epochs (or tuning.strategy: head)",
                {"h": unfreeze.head_epochs, "e": self.train.epochs},
            )
        return self

    @model_validator(mode="after")
    def _stopping_watches_validation(self) -> Recipe:
        if self.train.early_stopping is not None and self.eval.select_split == "none":
            raise PydanticCustomError(
                "stopping_split",
                "train.early_stopping: watches the validation metric, but eval.select_split is none; "
                "set eval.select_split: validation, or unset train.early_stopping",
            )
        return self


def _known_metrics() -> list[str]:
    """The metrics plugins registered (tlhub's built-ins among them)."""
    from tlhub.plugins import metrics

    return sorted(metrics())


def _metrics() -> str:
    return ", ".join(_known_metrics())


def _describe_loc(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(part) if part != "" else "''" for part in loc)  # an empty key shows as ''


def section_model(annotation: Any) -> type[BaseModel] | None:
    """The model of a field that is a section of its own, optional or not (``tuning.lora``,
    ``train.early_stopping``), else ``None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    members = [a for a in typing.get_args(annotation) if a is not type(None)]
    if len(members) == 1 and isinstance(members[0], type) and issubclass(members[0], BaseModel):
        return members[0]
    return None


def _fields_at(root: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The valid keys of the section at ``loc`` under ``root`` (for 'unknown key' messages)."""
    model: type[BaseModel] | None = root
    for part in loc:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return []
        model = section_model(model.model_fields[part].annotation)
    return list(model.model_fields) if model else []


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# Errors whose message already says everything (no "(got ...)" suffix).
_SELF_EXPLAINED = {
    "unknown_name",
    "unknown_block",
    "strategy_options",
    "model_start",
    "model_type",
    "no_test",
    "no_validation",
    "select_metric",
    "input_columns",
    "duplicates",
    "label_is_input",
    "split_reuse",
    "no_metrics",
    "stopping_split",
    "unfreeze_epochs",
    "model_init",
    "own_strategy",
}


def format_errors(error: ValidationError, root: type[BaseModel] = BaseModel, prefix: str = "") -> list[str]:
    """One line per problem: ``key.path: what is wrong (what would be valid)``.

    ``root`` is the model that was validated (for the valid keys of a section), ``prefix`` its key path.
    """
    problems = []
    for e in error.errors():
        loc = tuple(e["loc"])
        where = prefix + (_describe_loc(loc) or "recipe") if loc else prefix.rstrip(".") or "recipe"
        if e["type"] == "extra_forbidden":
            key = str(loc[-1])
            valid = _fields_at(root, loc[:-1])
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            problems.append(f"{where}: unknown key (valid keys here: {', '.join(valid) or 'none'}){hint}")
        elif e["type"] == "missing":
            problems.append(f"{where}: required key is missing")
        elif e["type"] in _SELF_EXPLAINED:
            # a message that names its own key (a check across keys) replaces the section's path
            names_key = re.match(r"[a-z_]+(\.[a-z_]+)+: ", e["msg"])
            problems.append(prefix + e["msg"] if names_key else f"{where}: {e['msg']}")
        elif e["type"] in ("int_type", "float_type") and isinstance(e["input"], bool):
            problems.append(f"{where}: {e['msg']} (got {str(e['input']).lower()}, a boolean)")
        else:
            problems.append(f"{where}: {e['msg']} (got {_shown(e['input'])})")
    return problems


def unusable_values(value: Any, where: str = "", _seen: frozenset[int] = frozenset()) -> list[str]:
    """Key paths holding inf or nan, or a string with a NUL character, anywhere in a recipe (plugin options
    and configs included), or a mapping or list that contains itself (possible from Python, not from
    YAML: the reader refuses it)."""
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{where or 'recipe'}: {value} is not a finite number"]
    if isinstance(value, str) and "\0" in value:  # no file name, column or split can hold one
        return [f"{where or 'recipe'}: holds a NUL character ({value!r})"]
    if not isinstance(value, dict | list):
        return []
    if id(value) in _seen:
        return [f"{where or 'recipe'}: contains itself"]
    seen = _seen | {id(value)}
    items = value.items() if isinstance(value, dict) else enumerate(value)
    return [p for k, v in items for p in unusable_values(v, f"{where}.{k}" if where else str(k), seen)]


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise RecipeError([f"override '{item[:60]}': expected KEY=VALUE, e.g. train.epochs=1"])
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(p.strip() for p in parts):
        raise RecipeError([f"override '{item[:60]}': '{key}' is not a dotted key such as train.epochs"])
    return parts, parse_yaml_value(raw, key.strip())


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings as a mapping of dotted keys to values, parsed by the recipe's YAML reader."""
    return {".".join(parts): value for parts, value in map(_parse_override, overrides)}


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any] | list[str]) -> dict[str, Any]:
    """Set dotted keys in a recipe dict. Strings ``KEY=VALUE`` are parsed by the recipe's YAML reader."""
    if isinstance(overrides, dict):
        pairs = [(key.split("."), value) for key, value in overrides.items()]
    else:
        pairs = [_parse_override(item) for item in overrides]
    for parts, value in pairs:
        node = data
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                section = ".".join(parts[: depth + 1])
                raise RecipeError(
                    [f"override '{'.'.join(parts)}': {section} is {_shown(child)}, not a section with keys"]
                )
            node = child
        node[parts[-1]] = value
    return data


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a recipe file into a dict; every problem with the file is a one-line ``RecipeError``."""
    data = read_yaml_file(path)
    if not isinstance(data, dict):
        raise RecipeError(
            ["a recipe is a YAML mapping with keys model, data, tuning, train, eval, output_dir"], source=str(path)
        )
    return data


def validate_recipe(data: dict[str, Any], source: str = "recipe", plugins: set[str] | None = None) -> Recipe:
    """Validate a recipe dict; raise ``RecipeError`` listing every problem.

    ``plugins`` is the set of known plugin names; ``None`` skips that check.
    """
    problems = unusable_values(data)
    try:
        recipe = Recipe.model_validate(data, context={"plugins": plugins})
    except ValidationError as exc:
        problems += [
            p for p in format_errors(exc, Recipe) if p.split(":")[0] not in {q.split(":")[0] for q in problems}
        ]
    if problems:
        raise RecipeError(problems, source=source)
    return recipe


def load_recipe(
    path: str | Path, overrides: dict[str, Any] | list[str] | None = None, plugins: set[str] | None = None
) -> Recipe:
    """Read, override and validate a recipe file."""
    data = apply_overrides(read_yaml(path), overrides or {})
    return validate_recipe(data, source=str(path), plugins=plugins)


def dump_recipe(recipe: Recipe) -> str:
    """The fully resolved recipe as YAML (every default written out)."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
