"""What a modality plugin registers, and how tlhub tells input types apart.

A :class:`Modality` is plain data plus a few functions: no base class to inherit. tlhub calls each
function with **keyword arguments** and passes only the ones the function names (as pluggy does for
hooks), so a plugin written today keeps working when a call gains an argument. The input-type check
(:func:`check_input_types`) compares three independent answers to "what does this model read?": the
recipe's plugin, the checkpoint's config, and the data column's ``datasets`` feature type.

Nothing heavy is imported here: a plugin module imports ``tlhub`` at load time, and ``tlhub plugins``
must stay fast.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tlhub.errors import InputTypeError

if TYPE_CHECKING:
    from pydantic import BaseModel
    from transformers import PretrainedConfig

    from tlhub.input_types import InputType

# Numbers each example of a loaded split (its row in the source as loaded), so that what a plugin's checks keep
# (they may drop examples) maps back to its input, a plugin's DataError can name the row, and a training batch's
# augmentation is seeded by the examples it holds. Every split ``check_data`` receives has it.
INDEX_COLUMN = "__tlhub_index"

# The functions a Modality holds, and the keyword arguments tlhub passes to each (a function names
# the subset it needs). Calls only ever gain arguments.
CALLS: dict[str, tuple[str, ...]] = {
    "load_processor": ("checkpoint", "config", "options", "trust_remote_code"),
    "new_processor": ("config", "options"),
    "adapt_config": ("config", "options"),
    "check_plan": ("config", "checkpoint", "processor", "options"),
    "check_data": ("split", "columns", "config", "processor", "options"),
    "make_encoder": ("processor", "config", "options", "training"),
    "extend_model": ("model", "options"),
    "augments": ("options",),
    "features": ("model", "batch"),
    "head_logits": ("model", "features"),
    "baseline": ("columns", "config", "processor", "options", "seed"),
}

# Module names, fixed or read from the model's config (families name their layers differently).
ModuleNames = tuple[str, ...] | Callable[["PretrainedConfig"], tuple[str, ...]]


@functools.cache
def _accepted(function: Callable[..., Any]) -> frozenset[str] | None:
    """The keyword names ``function`` takes; ``None`` when it takes ``**kwargs`` (every name)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: give it everything
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return frozenset(p.name for p in parameters if p.kind is not inspect.Parameter.POSITIONAL_ONLY)


def accepts(function: Callable[..., Any], name: str) -> bool:
    """Whether ``function`` names the keyword argument ``name`` (``**kwargs`` alone does not count)."""
    try:
        parameter = inspect.signature(function).parameters.get(name)
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )


@dataclass(frozen=True)
class Modality:
    """A model family that tlhub can fine-tune, registered by a plugin.

    Attributes:
        name: what a recipe writes as ``model.plugin`` (``image``).
        input_type: a registered input type (:class:`tlhub.InputType`): ``image``, ``audio`` and ``text`` are
            built in; a plugin may register more.
        model_types: ``config.model_type`` values this modality can build (``vit``, ``deit``).
        auto_model: the transformers auto class with a classification head, or a model class for a family no
            auto class covers (``PatchTSTForClassification``), or either's name in ``transformers``
            (``"AutoModelForImageClassification"``: the plugin then imports nothing heavy).
        pipeline_task: the ``transformers.pipeline`` task its outputs load into; ``""`` when transformers has
            no pipeline for this kind of input (time series): the model card then names none.
        head_modules: names of the modules that form the classification head (or ``config -> names``);
            they are replaced by a new head, saved with a LoRA adapter, and are the only trainable part
            under the ``head`` strategy.
        lora_targets: default LoRA target module names (suffixes), or ``config -> names``.
        load_processor: ``(checkpoint, config, options, trust_remote_code) -> processor``, the checkpoint's own
            preprocessing; pass ``trust_remote_code`` (the recipe's opt-in) on to ``from_pretrained``.
        new_processor: ``(config, options) -> processor`` for a model trained from scratch; raise
            ``RecipeError`` when the family cannot be trained from scratch (a text model needs its tokenizer).
        adapt_config: optional ``(config, options) -> None``: called once tlhub has written the new classes into
            the config (``num_labels``, ``id2label``, ``label2id``), before the model is built, for a family that
            sizes its head from another key (PatchTST: ``num_targets``).
        logits_output: the field of the model's output that holds the class scores: ``logits`` for
            transformers' classifiers, ``prediction_logits`` for PatchTST. tlhub never passes the labels to the
            model: it computes the loss from these scores itself.
        check_plan: optional ``(config, checkpoint, processor, options) -> problems``: what only the plugin
            knows, checked by ``tlhub validate`` before any weights or data load (options against the
            config and the processor); each problem a line ``key.path: what is wrong``.
        check_data: ``(split, columns, config, processor, options) -> (split, notes)``: checks the examples
            (raising ``DataError`` naming the bad file or row: ``split[tlhub.INDEX_COLUMN]`` holds each
            example's row number in the data as loaded), may drop examples the plugin's options
            say to drop or prepare them once for its encoder (audio: decoded and resampled), and
            returns the split with one sentence per adaptation (grayscale to RGB, resampling,
            truncation, dropped rows), written to the model card.
        make_encoder: ``(processor, config, options, training) -> encode`` where ``encode(values)`` turns a
            list of raw column values (tuples when a recipe names several input columns) into the model's
            input tensors, one call per batch. ``training`` is ``True`` for the encoder of training
            batches only: random augmentation belongs there, never in evaluation or prediction. An
            ``encode`` that takes a ``labels`` keyword receives the batch's class ids (a tensor) and
            may return its own ``labels``: class probabilities of shape (batch, classes) for mixup or
            cutmix, trained on with soft-target cross-entropy.
        extend_model: optional ``(model, options) -> notes``, called once the pretrained layers are
            loaded and the new head is in place, to add modules the head reads from (the text plugin's
            mean-pooling layer); the notes go to the model card.
        fixed_modules: modules (or ``config -> names``) that belong to the saved model but never train,
            whatever the strategy: modules of ``extend_model`` whose values are a construction.
        layers: the backbone's blocks from the input side to the output side (or ``config -> blocks``), each
            a module name or a tuple of names (dotted prefixes); together they hold every parameter
            outside the head and the fixed modules. Gradual unfreezing unfreezes them from the top;
            layer-wise learning-rate decay scales each block's rate by its depth. Without them, a recipe
            that asks for either is refused.
        augments: optional ``(options) -> bool``: whether ``make_encoder(training=True)`` draws random
            augmentation for these options. Unset, tlhub assumes it may when ``make_encoder`` takes
            ``training``. Only a deterministic training encoder lets ``head`` train on cached features.
        features: optional ``(model, batch) -> tensor (examples, width)``: what the head reads, computed by
            the layers outside it; with ``head_logits`` it lets the ``head`` strategy compute it once per
            example and train the head on the cached vectors. ``model`` is the built model (new head,
            ``extend_model`` applied) in eval mode; ``batch`` is what the evaluation encoder made.
        head_logits: optional ``(model, features) -> logits``: the head alone, on ``features``' output;
            ``head_logits(model, features(model, batch))`` equals ``model(**batch).logits``.
        baseline: optional ``(columns, config, processor, options, seed) -> estimator``: a cheap classical model
            (scikit-learn) that ``tlhub compare`` fits beside the deep ones on the same examples.
            ``estimator.fit(values, labels)`` and ``estimator.predict_proba(values)`` take the raw column
            values as ``make_encoder``'s ``encode`` receives them (after ``check_data``) and class ids.
        max_input_columns: how many input columns a recipe may name (text takes sentence pairs).
        options: a pydantic model for ``model.options`` in a recipe, or ``None`` if it takes none.
        description: one line for ``tlhub plugins``.

    tlhub calls every function with keyword arguments; a function names the ones it needs.
    """

    name: str
    input_type: str
    model_types: tuple[str, ...]
    auto_model: Any
    pipeline_task: str
    head_modules: ModuleNames
    lora_targets: ModuleNames
    load_processor: Callable[..., Any]
    new_processor: Callable[..., Any]
    check_data: Callable[..., Any]
    make_encoder: Callable[..., Any]
    adapt_config: Callable[..., None] | None = None
    logits_output: str = "logits"
    check_plan: Callable[..., list[str]] | None = None
    extend_model: Callable[..., list[str]] | None = None
    fixed_modules: ModuleNames = ()
    layers: Callable[..., tuple[str | tuple[str, ...], ...]] | tuple[str | tuple[str, ...], ...] = ()
    augments: Callable[..., bool] | None = None
    features: Callable[..., Any] | None = None
    head_logits: Callable[..., Any] | None = None
    baseline: Callable[..., Any] | None = None
    max_input_columns: int = 1
    options: type[BaseModel] | None = None
    description: str = ""
    plugin: str = field(default="", compare=False)

    def call(self, function: str, **arguments: Any) -> Any:
        """Call one of the plugin's functions with the keyword arguments it names (``CALLS`` lists them)."""
        implementation = getattr(self, function)
        accepted = _accepted(implementation)
        return implementation(**{k: v for k, v in arguments.items() if accepted is None or k in accepted})

    def collate(
        self,
        processor: Any,
        config: Any,
        options: Any,
        columns: list[str],
        label: str | None = None,
        training: bool = False,
    ) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
        """``examples -> batch``: the plugin's encoder (``make_encoder``) over the input ``columns`` (tuples of
        values for several), and the class ids of the ``label`` column as ``labels`` (an encoder that names
        ``labels`` receives them and may return its own: class probabilities for mixup or cutmix)."""
        import torch

        encode = self.call("make_encoder", processor=processor, config=config, options=options, training=training)
        takes_labels = label is not None and accepts(encode, "labels")

        def collate(examples: list[dict[str, Any]]) -> dict[str, Any]:
            inputs = [e[columns[0]] if len(columns) == 1 else tuple(e[c] for c in columns) for e in examples]
            if label is None:
                return dict(encode(inputs))
            labels = torch.tensor([e[label] for e in examples])
            batch = dict(encode(inputs, labels=labels) if takes_labels else encode(inputs))
            batch.setdefault("labels", labels)
            return batch

        return collate

    @property
    def model_class(self) -> Any:
        """The transformers auto class (``auto_model`` resolved when it is a name)."""
        if isinstance(self.auto_model, str):
            import transformers

            return getattr(transformers, self.auto_model)
        return self.auto_model

    def from_config(self, config: Any, trust_remote_code: bool = False, **kwargs: Any) -> Any:
        """A model of ``config`` with random values: through the auto class, or the model class itself.
        ``kwargs`` go to transformers (``attn_implementation``)."""
        model_class = self.model_class
        if hasattr(model_class, "from_config"):  # an auto class
            return model_class.from_config(config, trust_remote_code=trust_remote_code, **kwargs)
        return model_class._from_config(config, **kwargs)  # transformers' constructor from a config

    def head(self, config: Any) -> tuple[str, ...]:  # a PretrainedConfig (model.config of an nn.Module)
        """The head's module names in a model of ``config``."""
        return self.head_modules(config) if callable(self.head_modules) else self.head_modules

    def fixed(self, config: Any) -> tuple[str, ...]:
        """The modules that never train in a model of ``config``."""
        return self.fixed_modules(config) if callable(self.fixed_modules) else self.fixed_modules

    def targets(self, config: Any) -> tuple[str, ...]:
        """The default LoRA targets in a model of ``config``."""
        return self.lora_targets(config) if callable(self.lora_targets) else self.lora_targets

    def blocks(self, config: Any) -> list[tuple[str, ...]]:
        """The backbone's blocks in a model of ``config``, input side first, each as a tuple of module names."""
        layers = self.layers(config) if callable(self.layers) else self.layers
        return [(block,) if isinstance(block, str) else tuple(block) for block in layers]

    def augmenting(self, options: Any) -> bool:
        """Whether the training encoder may draw random augmentation under ``options``."""
        if self.augments is not None:
            return bool(self.call("augments", options=options))
        return accepts(self.make_encoder, "training")


def registration_problems(modality: object, input_types: dict[str, InputType]) -> list[str]:
    """Why a registered object is not a usable :class:`Modality` (empty when it is)."""
    if not isinstance(modality, Modality):
        return [f"registered {modality!r}; expected a tlhub.Modality"]
    problems = []
    if modality.input_type not in input_types:
        problems.append(
            f"modality '{modality.name}' has input type '{modality.input_type}' (registered: "
            f"{', '.join(sorted(input_types)) or 'none'}; a plugin adds one with register_input_types)"
        )
    for name in CALLS:
        function = getattr(modality, name)
        if function is not None and not callable(function):
            problems.append(f"modality '{modality.name}': {name} is {function!r}, not a function")
    if not modality.model_types:
        problems.append(f"modality '{modality.name}' names no model_types")
    if not isinstance(modality.logits_output, str) or not modality.logits_output.isidentifier():
        problems.append(
            f"modality '{modality.name}': logits_output is {modality.logits_output!r}; it names the model output's "
            "field of class scores, such as 'logits'"
        )
    return problems


def feature_input_type(feature: object, input_types: dict[str, InputType]) -> str | None:
    """The input type whose ``datasets`` feature types include ``feature``, or ``None``."""
    return next((t.name for t in input_types.values() if t.accepts(feature)), None)


def config_input_type(config: PretrainedConfig, input_types: dict[str, InputType]) -> str | None:
    """The input type a checkpoint was built for, read from its config alone (no weights load).

    transformers names the first argument of a model's ``forward`` after its input (``main_input_name``):
    ``pixel_values`` for vision, ``input_values`` for audio, ``input_ids`` for text; each input type
    names its own.
    """
    from transformers import AutoModel

    try:
        model_class = AutoModel._model_mapping[type(config)]
    except KeyError:
        return None
    main_input = getattr(model_class, "main_input_name", "")
    return next((t.name for t in input_types.values() if main_input in t.main_inputs), None)


def check_input_types(
    modality: Modality,
    checkpoint: str,
    config: PretrainedConfig,
    column: str,
    feature: object,
    modalities: dict[str, Modality],
    input_types: dict[str, InputType],
) -> None:
    """Refuse a run whose plugin, checkpoint and data column disagree on the input type.

    Raises ``InputTypeError`` with one sentence naming the disagreement and what would fit.
    """
    data_type = feature_input_type(feature, input_types)
    ckpt_type = config_input_type(config, input_types)

    def words(input_type: str) -> str:
        return input_types[input_type].words

    def fitting(input_type: str) -> str:
        names = [m.name for m in modalities.values() if m.input_type == input_type]
        families = sorted({t for m in modalities.values() if m.input_type == input_type for t in m.model_types})
        if not names:
            return f"no installed plugin handles {words(input_type)}"
        return f"use plugin {', '.join(names)} with a checkpoint of type {', '.join(families)}"

    if ckpt_type is not None and data_type is not None and ckpt_type != data_type:
        raise InputTypeError(
            f"checkpoint {checkpoint} (model_type '{config.model_type}') was pretrained on "
            f"{words(ckpt_type)}, but data column '{column}' holds {words(data_type)}: a model only "
            f"transfers to the input type it was pretrained on; {fitting(data_type)}."
        )
    if data_type is None:
        known = ", ".join(f"{t.name} ({' or '.join(t.features)})" for t in input_types.values())
        raise InputTypeError(
            f"data column '{column}' holds {feature!r}, which is no registered input type ({known}); "
            f"plugin '{modality.name}' needs a column of {words(modality.input_type)}."
        )
    if data_type != modality.input_type:
        raise InputTypeError(
            f"model.plugin '{modality.name}' reads {words(modality.input_type)}, but data column "
            f"'{column}' holds {words(data_type)}; {fitting(data_type)}."
        )
    if config.model_type not in modality.model_types:
        kind = f"pretrained on {words(ckpt_type)}" if ckpt_type else "of an unknown input type"
        raise InputTypeError(
            f"checkpoint {checkpoint} has model_type '{config.model_type}' ({kind}), which plugin "
            f"'{modality.name}' does not build (it builds: {', '.join(modality.model_types)})."
        )
