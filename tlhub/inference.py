"""Use a trained run: :func:`load` a run directory, predict on new inputs, score it on labelled data.

Inputs go through the same steps as in training, owned by the run's plugin: ``check_data`` (decoding,
resampling, cropping, unreadable files named) and the evaluation encoder (``make_encoder`` with
``training=False``: never augmented). So ``tlhub eval`` on a run's own test split gives the run's own
test metrics, and predictions are those of ``transformers.pipeline`` on the saved folder.

>>> model = tlhub.load("runs/digits_vit")
>>> model.predict(["digit.png"])[0].label
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlhub.errors import CheckpointError, DataError, TlhubError

if TYPE_CHECKING:
    import datasets
    from accelerate import Accelerator

    from tlhub.engine import SplitPredictions
    from tlhub.modality import Modality
    from tlhub.recipe import Recipe


@dataclass(frozen=True)
class Prediction:
    """One input's predicted class, its probability, and the ``k`` most probable classes."""

    input: str  # a file path, the text itself, or '#i' for the i-th value passed in memory
    label: str
    score: float
    top_k: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class TrainedModel:
    """A run directory's model with everything needed to read raw inputs: what :func:`load` returns."""

    path: Path
    recipe: Recipe
    modality: Modality
    options: Any
    processor: Any
    model: Any  # a transformers PreTrainedModel, in eval mode
    labels: list[str]  # class names in id order

    @property
    def input_columns(self) -> list[str]:
        return self.recipe.data.input_columns

    def dataset(self, values: Sequence[Any]) -> datasets.Dataset:
        """Raw inputs as a ``datasets.Dataset`` whose input column has this model's feature type.

        Images and audio: file paths, or in-memory values (PIL images; ``{"array", "sampling_rate"}``
        dicts); text: strings (tuples of two for sentence pairs). An input type a plugin adds: values whose
        feature type ``datasets`` infers (lists of numbers for time series).
        """
        import datasets

        from tlhub.data import INDEX_COLUMN

        feature = {"image": datasets.Image(), "audio": datasets.Audio(), "text": datasets.Value("string")}.get(
            self.modality.input_type
        )
        columns = self.input_columns
        if len(columns) == 1:
            data: dict[str, list[Any]] = {columns[0]: list(values)}
        else:
            data = {c: [v[i] for v in values] for i, c in enumerate(columns)}
        data[INDEX_COLUMN] = list(range(len(values)))
        if feature is None:
            return datasets.Dataset.from_dict(data)
        features = datasets.Features({**{c: feature for c in columns}, INDEX_COLUMN: datasets.Value("int64")})
        return datasets.Dataset.from_dict(data, features=features)

    def prepare(self, split: datasets.Dataset, on_error: str = "fail") -> tuple[datasets.Dataset, list[str]]:
        """The plugin's checks and one-off preparation (``check_data``); with ``on_error="skip"``, the
        examples it refuses are dropped, each named in the returned problems."""
        from tlhub.data import numbered

        split = numbered(split)
        try:
            return self._check(split), []
        except DataError as exc:
            if on_error != "skip":
                raise
            first = str(exc)
        kept, problems = [], []
        for i in range(len(split)):  # only after a failure: find each example the plugin refuses
            try:
                kept.append(self._check(split.select([i])))
            except DataError as exc:
                problems.append(str(exc))
        if not kept:
            raise DataError(f"no input could be read; the first problem: {first}")
        import datasets

        return datasets.concatenate_datasets(kept), problems

    def _check(self, split: datasets.Dataset) -> datasets.Dataset:
        checked, _ = self.modality.call(
            "check_data",
            split=split,
            columns=self.input_columns,
            config=self.model.config,
            processor=self.processor,
            options=self.options,
        )
        return checked

    def collate(self, labels: str | None = None) -> Any:
        """Batches for the model: the evaluation encoder (no augmentation), class ids when ``labels`` names a column."""
        return self.modality.collate(self.processor, self.model.config, self.options, self.input_columns, labels)

    def logits(
        self,
        split: datasets.Dataset,
        batch_size: int = 32,
        labels: str | None = None,
        accelerator: Accelerator | None = None,
        progress: bool = False,
    ) -> SplitPredictions:
        """The model's logits for every example of a prepared split, in order."""
        from torch.utils.data import DataLoader

        from tlhub.engine import predict_split

        loader = DataLoader(split, batch_size=batch_size, collate_fn=self.collate(labels))
        if accelerator is not None:
            loader = accelerator.prepare(loader)
        return predict_split(self.model, loader, accelerator, progress=progress, logits=self.modality.logits_output)

    def predict(
        self,
        inputs: Sequence[Any] | datasets.Dataset,
        top_k: int = 1,
        batch_size: int = 32,
        on_error: str = "fail",
        descriptions: Sequence[str] | None = None,
        progress: bool = False,
        skipped: list[str] | None = None,
    ) -> list[Prediction]:
        """The predicted class of each input (paths, in-memory values or texts; or a ``datasets.Dataset``
        with the run's input column), in order. With ``on_error="skip"`` unreadable inputs are left out, and
        why each was is added to ``skipped``. ``descriptions`` name the inputs (default: path or text)."""
        import datasets
        import torch

        from tlhub.data import INDEX_COLUMN, describe_inputs, numbered

        split = numbered(inputs if isinstance(inputs, datasets.Dataset) else self.dataset(inputs))
        named = list(descriptions) if descriptions is not None else describe_inputs(split, self.input_columns)
        shown = dict(zip(split[INDEX_COLUMN], named, strict=True))
        prepared, problems = self.prepare(split, on_error)
        if skipped is not None:
            skipped += problems
        probabilities = torch.softmax(self.logits(prepared, batch_size, progress=progress).logits, dim=-1)
        k = max(1, min(top_k, len(self.labels)))
        scores, ids = probabilities.topk(k, dim=-1)
        return [
            Prediction(
                input=shown[index],
                label=self.labels[int(row_ids[0])],
                score=float(row_scores[0]),
                top_k=[(self.labels[int(i)], float(s)) for i, s in zip(row_ids, row_scores, strict=True)],
            )
            for index, row_scores, row_ids in zip(prepared[INDEX_COLUMN], scores, ids, strict=True)
        ]


def _run_record(path: Path) -> dict[str, Any]:
    from tlhub.rundir import read_run_record

    if not path.is_dir():
        raise CheckpointError(f"run directory '{path}' {'is not a folder' if path.exists() else 'does not exist'}")
    try:
        record = read_run_record(path)
    except TlhubError as exc:
        raise CheckpointError(str(exc)) from None
    if record is None:
        raise CheckpointError(
            f"'{path}' is not a tlhub run directory (it has no run.json); pass the output_dir of a finished `tlhub run`"
        )
    if record.get("status") != "finished":
        raise CheckpointError(
            f"the run in '{path}' has status '{record.get('status')}', not finished: its model folder is incomplete; "
            "finish it with `tlhub run RECIPE --resume`"
        )
    return record


def load(run_dir: str | Path) -> TrainedModel:
    """The model a finished ``tlhub run`` saved in ``run_dir`` (any modality; a LoRA run's merged model),
    ready to :meth:`TrainedModel.predict`. Works offline: it reads only the run directory."""
    from tlhub import plugins
    from tlhub.plan import plugin_options
    from tlhub.recipe import validate_recipe

    path = Path(run_dir)
    record = _run_record(path)
    registry = plugins.registry()
    recipe = validate_recipe(record.get("recipe") or {}, source=str(path / "run.json"))
    modality = plugins.resolve_modality(recipe.model.plugin, registry)
    options, problems = plugin_options(modality, recipe)
    if problems:
        raise CheckpointError(f"{path / 'run.json'}: " + "; ".join(problems))
    trust = recipe.model.trust_remote_code
    try:
        model = modality.model_class.from_pretrained(str(path), trust_remote_code=trust)
        processor = modality.call(
            "load_processor", checkpoint=str(path), config=model.config, options=options, trust_remote_code=trust
        )
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        lines = str(exc).strip().splitlines()
        raise CheckpointError(
            f"the model saved in '{path}' does not load ({type(exc).__name__}: {lines[0][:200] if lines else ''})"
        ) from None
    import torch

    if torch.accelerator.is_available():
        model.to(torch.accelerator.current_accelerator())
    model.eval()
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    return TrainedModel(path, recipe, modality, options, processor, model, labels)


# The datasets builder that reads a folder of class-named subfolders, per input type.
_FOLDER_BUILDERS = {"image": "imagefolder", "audio": "audiofolder"}


def labelled_data(
    trained: TrainedModel,
    data: str | None = None,
    recipe: str | None = None,
    split: str | None = None,
    input_column: str | None = None,
    label_column: str | None = None,
) -> tuple[datasets.Dataset, str, str]:
    """The labelled examples to score ``trained`` on: ``(split, its input column's name, a name for the report)``.

    ``data`` is a folder (class-named subfolders: ``imagefolder`` / ``audiofolder``) or a table file
    (csv, tsv, json, jsonl, parquet); ``recipe`` a recipe file whose data section (with its split
    carving) is used; neither: the run's own data, carved as in the run. ``split`` picks a split of the
    data (default: the only one, or ``test``), or a role (train/validation/test) of a recipe's data.
    Labels are matched to the model's by name.
    """
    from tlhub import plugins
    from tlhub.data import load_splits
    from tlhub.recipe import load_recipe

    if data is None:
        section = load_recipe(recipe).data if recipe else trained.recipe.data
        if input_column or label_column:
            section = section.model_copy(
                update={
                    "input_column": input_column or section.input_column,
                    "label_column": label_column or section.label_column,
                }
            )
        role = split or "test"
        if role not in ("train", "validation", "test"):
            raise DataError(f"--split: '{role}' is not a role of the recipe's data (train, validation, test)")
        splits = load_splits(section, plugins.registry().sources)
        chosen = getattr(splits, role)
        columns = section.input_columns
        _same_columns(trained, columns)
        renamed = chosen.rename_columns(dict(zip(columns, trained.input_columns, strict=True)))
        examples = _match_labels(renamed, section.label_column, splits.labels, trained.labels, where=recipe or "run")
        return examples, section.label_column, role
    return _from_path(trained, Path(data), split, input_column, label_column)


def _same_columns(trained: TrainedModel, columns: list[str]) -> None:
    if len(columns) != len(trained.input_columns):
        raise DataError(
            f"--input-column: the model reads {len(trained.input_columns)} input column(s), "
            f"the data names {len(columns)} ({', '.join(columns)})"
        )


def _from_path(
    trained: TrainedModel, path: Path, split: str | None, input_column: str | None, label_column: str | None
) -> tuple[datasets.Dataset, str, str]:
    import datasets

    from tlhub.predict_io import TABLES

    kind = trained.modality.input_type
    if path.is_dir():
        if kind not in _FOLDER_BUILDERS:
            raise DataError(f"--data: '{path}' is a folder; {kind} data comes as a table file ({', '.join(TABLES)})")
        builder, options = _FOLDER_BUILDERS[kind], {"data_dir": str(path)}
        default_input: str | None = kind  # the column imagefolder / audiofolder make
    elif path.suffix.lower() in TABLES:
        if not path.is_file():
            raise DataError(f"--data: '{path}' does not exist")
        builder = TABLES[path.suffix.lower()]
        options = {"data_files": str(path), **({"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {})}
        default_input = trained.input_columns[0] if len(trained.input_columns) == 1 else None
    else:
        what = "does not exist" if not path.exists() else "is neither a folder nor a table file"
        raise DataError(
            f"--data: '{path}' {what}; give a folder of class-named subfolders or a {', '.join(TABLES)} file"
        )
    try:
        loaded = datasets.load_dataset(builder, **options)
    except Exception as exc:  # datasets words a bad file many ways; each is the data's fault here
        lines = str(exc).strip().splitlines()
        raise DataError(
            f"--data: '{path}' does not load as {builder} ({type(exc).__name__}: {lines[0][:200] if lines else ''})"
        ) from None
    name = split or ("test" if "test" in loaded else next(iter(loaded)) if len(loaded) == 1 else None)
    if name is None or name not in loaded:
        raise DataError(f"--split: give one of the data's splits: {', '.join(loaded)}")
    examples = loaded[name]
    inputs = (
        [input_column] if input_column else ([default_input] if default_input else trained.recipe.data.input_columns)
    )
    label = label_column or ("label" if path.is_dir() else trained.recipe.data.label_column)
    for flag, column in [*(("--input-column", c) for c in inputs), ("--label-column", label)]:
        if column not in examples.column_names:
            raise DataError(f"{flag}: '{path}' has no column '{column}' (columns: {', '.join(examples.column_names)})")
    _same_columns(trained, inputs)
    examples = examples.select_columns([*inputs, label])
    examples = examples.rename_columns({a: b for a, b in zip(inputs, trained.input_columns, strict=True) if a != b})
    feature = examples.features[label]
    names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    examples = _match_labels(examples, label, names, trained.labels, where=str(path))
    return examples, label, f"{path.stem or path.name}-{name}"


def _match_labels(
    examples: datasets.Dataset, column: str, names: list[str] | None, known: list[str], where: str
) -> datasets.Dataset:
    """The label column as the model's class ids, matched by name; a name the model lacks is an error."""
    import datasets

    values = examples[column]
    if None in values:
        raise DataError(f"{where}: {values.count(None)} example(s) have no label in column '{column}'")
    given = [names[v] if names is not None else str(v) for v in values]
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise DataError(
            f"{where}: label(s) {', '.join(map(repr, unknown[:10]))} of column '{column}' are not classes of the "
            f"model; the data's labels: {', '.join(sorted(set(given)))}; the model's: {', '.join(known)}"
        )
    ids = {name: i for i, name in enumerate(known)}
    examples = examples.remove_columns(column)
    return examples.add_column(column, [ids[g] for g in given], feature=datasets.ClassLabel(names=known))


def evaluate(
    trained: TrainedModel,
    examples: datasets.Dataset,
    label_column: str,
    title: str,
    batch_size: int = 32,
    mistakes: int = 20,
) -> Any:
    """Score ``trained`` on labelled ``examples`` (from :func:`labelled_data`): an :class:`tlhub.report.EvalReport`,
    computed as the run computed its own test metrics (the recipe's metrics and mixed precision)."""
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from tlhub.data import INDEX_COLUMN, describe_inputs, numbered
    from tlhub.engine import score_predictions
    from tlhub.metrics import load_metrics
    from tlhub.report import make_report

    examples = numbered(examples)
    shown = dict(zip(examples[INDEX_COLUMN], describe_inputs(examples, trained.input_columns), strict=True))
    prepared, _ = trained.prepare(examples)
    AcceleratorState._reset_state()
    accelerator = Accelerator(
        cpu=not torch.accelerator.is_available(), mixed_precision=trained.recipe.train.mixed_precision
    )
    trained = dataclasses.replace(trained, model=accelerator.prepare(trained.model))
    predictions = trained.logits(prepared, batch_size, labels=label_column, accelerator=accelerator, progress=True)
    metrics = score_predictions(predictions, load_metrics(trained.recipe.eval.metrics), trained.labels)
    kept = prepared[INDEX_COLUMN]
    return make_report(title, predictions, metrics, trained.labels, [shown[i] for i in kept], mistakes)
