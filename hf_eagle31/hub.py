"""
Model cards and Hub uploads for drafters.

`render_model_card(drafter, eval_results=...)` fills `hub_cards/drafter_card.md` from the drafter's config and a
measured eval JSON (`{"results": [{"drafter", "suite", "tau", "tokens_per_s", "acceptance_per_depth"}, ...]}`, what
`hf-eagle31 eval` writes) under YAML metadata the Hub indexes (library_name, base_model = the target, tags, license).

`save_drafter(drafter, dir, model_card=...)` is `drafter.save_pretrained(dir)` plus README.md rendered with
`model_card_for` (`model_card={...}` passes the options below, a string is written as is, `model_card=False` skips
it); `push_drafter_to_hub(drafter, repo, ...)` uploads that folder in one commit. The modeling files (remote code)
never import this module: `drafter.save_pretrained` / `drafter.push_to_hub` are transformers' own (the latter
keeps the card already on the Hub, or writes transformers' generic one).
"""

import json
import math
import os
import tempfile
from importlib import resources
from pathlib import Path
from string import Template

import yaml
from transformers.utils import hub as transformers_hub

from .errors import InputError
from .modeling import SWITCH_NAMES, variant_of
from .utils import format_number


CARD_TEMPLATE = Path(str(resources.files("hf_eagle31.hub_cards") / "drafter_card.md"))  # repo: hub_cards/
DEFAULT_LICENSE = "apache-2.0"
RESULT_FIELDS = {"drafter": str, "suite": str, "tau": (int, float), "acceptance_per_depth": list}


def load_eval_results(source) -> list[dict]:
    """
    Reads and validates eval results: a path to the eval JSON, its parsed dict, or the list under "results".
    Raises a ValueError naming the first malformed entry, so a card never shows half-read numbers.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InputError(f"eval results file {path} does not exist: pass the JSON written by `hf-eagle31 eval`.")
        source = json.loads(path.read_text())
    results = source.get("results") if isinstance(source, dict) else source
    if not isinstance(results, list) or not results:
        raise InputError(
            'eval results must be {"results": [...]} with at least one entry, as `hf-eagle31 eval` writes.'
        )
    for i, row in enumerate(results):
        for name, kind in RESULT_FIELDS.items():
            value = row.get(name) if isinstance(row, dict) else None
            if not isinstance(value, kind) or isinstance(value, bool):
                raise InputError(
                    f"eval result #{i} has {name}={value!r}; every entry needs drafter (str), suite (str), tau "
                    "(a number) and acceptance_per_depth (list of rates)."
                )
        if not all(r is None or (isinstance(r, (int, float)) and 0 <= r <= 1) for r in row["acceptance_per_depth"]):
            raise InputError(f"eval result #{i} has acceptance rates outside [0, 1]: {row['acceptance_per_depth']}.")
        if not (math.isfinite(row["tau"]) and row["tau"] >= 1):
            raise InputError(f"eval result #{i} has tau={row['tau']}: tau counts tokens per target forward, so >= 1.")
    return results


def _variant(config) -> tuple[str, list[str]]:
    variant = variant_of(config)  # the registry in modeling/configuration_common.py
    return variant.label, list(variant.tags)


def norm_output_meaning(config) -> str:
    """What the drafter's `norm_output` means, in words (card, `info`, `convert`): which state the next chain step is
    fed, and which tools mean the same by the flag."""
    is_eagle = config.model_type != "mtp_drafter"
    if getattr(config, "norm_output", False):
        text = (
            "post-norm feed (`norm_output=True`): each chain step is fed the final-norm output, the state the head "
            "reads"
        )
        if is_eagle:
            text += (
                " (EAGLE-3.1; what vLLM, SGLang, speculators and SpecForge from PR #879 mean by `norm_output: true`)"
            )
        return text
    text = "pre-norm feed (`norm_output=False`): each chain step is fed the last layer's output before the final norm"
    if is_eagle:
        text += (
            "; lm_head reads the normalised one (the EAGLE-3 chain; what SpecForge before PR #879 meant by "
            "`norm_output: true`)"
        )
    return text


def card_metadata(config, base_model=None, license=DEFAULT_LICENSE, tags=()) -> dict:
    """The YAML front matter: what the Hub uses to list the drafter under its target and under speculative decoding."""
    _, variant_tags = _variant(config)
    metadata = {"library_name": "transformers", "license": license}
    if base_model:
        metadata["base_model"] = base_model
    metadata["pipeline_tag"] = "text-generation"
    metadata["tags"] = list(dict.fromkeys(["speculative-decoding", *variant_tags, "hf-eagle31", *tags]))
    return metadata


def results_table(results, highlight=None) -> str:
    """Markdown table of measured results; the drafter named `highlight` is set in bold."""
    depth = max(len(r["acceptance_per_depth"]) for r in results)
    depth_cols = " | ".join(f"acc@{d}" for d in range(1, depth + 1))
    with_k = any(r.get("num_assistant_tokens") is not None for r in results)  # eval JSONs of several K
    k_col = " K |" if with_k else ""
    # No tokens/s column: eval measures τ and acceptance (deterministic); speed claims come from `hf-eagle31 bench`
    # with its calibration check, side by side with plain decoding.
    lines = [
        f"| drafter | suite |{k_col} τ (tokens / target forward) | {depth_cols} |",
        "|" + "---|" * (3 + with_k + depth),
    ]
    for r in results:
        name = f"**{r['drafter']}**" if highlight and r["drafter"] == highlight else r["drafter"]
        rates = list(r["acceptance_per_depth"]) + [None] * (depth - len(r["acceptance_per_depth"]))
        k = [str(r.get("num_assistant_tokens") or "–")] if with_k else []
        cells = [name, r["suite"], *k, *(format_number(x, missing="–") for x in (r["tau"], *rates))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_model_card(
    model_or_config,
    eval_results=None,
    base_model=None,
    repo_id=None,
    license=DEFAULT_LICENSE,
    tags=(),
    num_assistant_tokens=None,
    drafter_name=None,
    template=None,
    training=None,
) -> str:
    """
    Renders README.md for a drafter (model or config).

    eval_results: eval JSON path / dict / list (see `load_eval_results`), or None to say that none were measured.
    base_model: the target's Hub id (default: `config.target_name_or_path` when recorded).
    repo_id: the drafter's Hub id, used in the snippets. drafter_name: which results rows to highlight.
    training: markdown describing how the drafter was trained (data, steps, command), shown under "Training".
    """
    config = getattr(model_or_config, "config", model_or_config)
    base_model = base_model or getattr(config, "target_name_or_path", None)
    variant, _ = _variant(config)
    if num_assistant_tokens is None:
        generation_config = getattr(model_or_config, "generation_config", None)
        num_assistant_tokens = getattr(generation_config, "num_assistant_tokens", None) or 6
    results = load_eval_results(eval_results) if eval_results is not None else None
    if results:
        results_text = results_table(results, highlight=drafter_name) + (
            "\n\nτ = mean tokens produced per target forward (accepted drafts + the target's bonus token); acc@d = "
            "share of speculation steps whose d-th drafted token was accepted. Measured with `hf-eagle31 eval`."
        )
    else:
        results_text = "No evaluation results were attached to this upload; measure them with `hf-eagle31 eval`."
    is_eagle = config.model_type != "mtp_drafter"
    switch_names = SWITCH_NAMES[config.model_type]
    switches = ", ".join(f"`{n}={bool(getattr(config, n, False))}`" for n in switch_names)
    architecture = (
        "one decoder layer over the token embedding and `fc` of three captured target states"
        if is_eagle
        else "DeepSeek-V3-style MTP block over the token embedding and the target's last hidden state"
    )
    depth = getattr(config, "num_hidden_layers", 1)
    if depth > 1:  # the drafter's own depth (the first layer reads token and hidden state)
        architecture += f", then {depth - 1} standard pre-norm decoder layer{'s' if depth > 2 else ''}"
    embeddings = (
        "stored in this checkpoint (the target's own)"
        if config.embeddings_in_checkpoint
        else "not stored: taken from the target at load time"
    )
    sglang_note = (
        "SGLang reads `eagle_config.eagle_aux_hidden_state_layer_ids` as *outputs* of layer *i* (one less than the "
        "ids above) and always keeps the un-normalised residual, so use it only with the default target layers and "
        "`norm_before_residual=False`."
    )
    if not is_eagle:
        sglang_note = "MTP heads are served from the target's own checkpoint by vLLM and SGLang; use transformers."
    base_text = base_model or "TARGET_MODEL"
    values = dict(
        title=f"{repo_id or 'Drafter'}: {variant} drafter" + (f" for {base_model}" if base_model else ""),
        variant=variant,
        base_model_text=base_text,
        base_model_link=f"https://huggingface.co/{base_model}" if base_model else "#",
        repo_id=repo_id or "PATH_TO_THIS_DRAFTER",
        architecture=architecture,
        target_layer_ids=list(config.target_layer_ids or []),
        hidden_size=config.hidden_size,
        draft_vocab_size=config.draft_vocab_size,
        vocab_size=config.vocab_size,
        switches=switches,
        chain_feed=norm_output_meaning(config),
        embeddings=embeddings,
        results=results_text,
        training=f"\n## Training\n\n{training.strip()}\n" if training else "",
        num_assistant_tokens=num_assistant_tokens,
        num_draft_tokens_sglang=num_assistant_tokens + 1,
        sglang_note=sglang_note,
        fc_norm_keys=", `fc_norm.{0,1,2}.weight`" if getattr(config, "fc_norm", False) else "",
    )
    path = Path(template) if template is not None else CARD_TEMPLATE
    if not path.is_file():
        raise InputError(f"model card template {path} is missing: reinstall hf-eagle31 or pass template=PATH.")
    body = Template(path.read_text(encoding="utf-8")).substitute(values)
    front = yaml.safe_dump(card_metadata(config, base_model, license, tags), sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n\n{body}"


def parse_card_metadata(card: str) -> dict:
    """The YAML front matter of a rendered card, parsed with `yaml.safe_load` (raises ValueError when malformed)."""
    if not card.startswith("---\n"):
        raise InputError("the model card does not start with a YAML front matter block ('---').")
    end = card.index("\n---\n", 4)
    metadata = yaml.safe_load(card[4:end])
    if not isinstance(metadata, dict):
        raise InputError("the model card's front matter is not a YAML mapping.")
    return metadata


def model_card_for(model, **options):
    """README.md text for a drafter instance (its `eval_results` attribute is used when none are passed)."""
    if "eval_results" not in options and getattr(model, "eval_results", None) is not None:
        options["eval_results"] = model.eval_results
    return render_model_card(model, **options)


def save_drafter(drafter, save_directory, model_card=None, include_embeddings=None, **save_kwargs):
    """
    `drafter.save_pretrained(save_directory, include_embeddings=..., **save_kwargs)` plus README.md. `model_card`:
    README.md text, a dict of options for `render_model_card` (via `model_card_for`), None (= {}), or False (none).
    Returns what `save_pretrained` returns.
    """
    result = drafter.save_pretrained(save_directory, include_embeddings=include_embeddings, **save_kwargs)
    if save_kwargs.get("is_main_process", True):
        write_model_card(drafter, save_directory, model_card, include_embeddings=include_embeddings)
    return result


def write_model_card(drafter, save_directory, model_card=None, include_embeddings=None):
    """
    Writes README.md for a drafter saved in `save_directory` (`model_card` as in `save_drafter`; False writes
    nothing). `include_embeddings`: what the save stored, when it differs from the config's default.
    """
    if model_card is False:
        return
    if not isinstance(model_card, str):
        # the card describes the checkpoint as written (embeddings stored or not)
        config = drafter.config
        previous = config.embeddings_in_checkpoint
        if include_embeddings is not None:
            config.embeddings_in_checkpoint = bool(include_embeddings)
        try:
            model_card = model_card_for(drafter, **(model_card or {}))
        finally:
            config.embeddings_in_checkpoint = previous
    with open(os.path.join(save_directory, "README.md"), "w", encoding="utf-8") as f:
        f.write(model_card)


def push_drafter_to_hub(
    drafter,
    repo_id,
    *,
    commit_message=None,
    commit_description=None,
    private=None,
    token=None,
    revision=None,
    create_pr=False,
    max_shard_size="50GB",
    model_card=None,
    include_embeddings=None,
):
    """
    Uploads code, weights, config and the model card (`model_card` as in `save_drafter`; its `repo_id` defaults to
    this repo) in one commit. (`drafter.push_to_hub` would keep the Hub's card or write a generic one.)
    """
    repo_id = transformers_hub.hf_api().create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
    options = dict(model_card or {}) if not isinstance(model_card, (str, bool)) else model_card
    if isinstance(options, dict):
        options.setdefault("repo_id", repo_id)
    with tempfile.TemporaryDirectory() as work_dir:
        save_drafter(
            drafter, work_dir, model_card=options, max_shard_size=max_shard_size, include_embeddings=include_embeddings
        )
        return drafter._upload_modified_files(
            work_dir,
            repo_id,
            files_timestamps={},
            commit_message=commit_message or "Upload drafter",
            token=token,
            create_pr=create_pr,
            revision=revision,
            commit_description=commit_description,
        )


def push_drafter(drafter, repo_id, eval_results=None, base_model=None, private=None, token=None, **card_options):
    """Uploads a drafter (code + weights + config + model card with `eval_results`) to `repo_id` in one commit."""
    options = dict(card_options, eval_results=eval_results, base_model=base_model)
    return push_drafter_to_hub(drafter, repo_id, private=private, token=token, model_card=options)


__all__ = [
    "CARD_TEMPLATE",
    "card_metadata",
    "load_eval_results",
    "model_card_for",
    "parse_card_metadata",
    "push_drafter",
    "push_drafter_to_hub",
    "render_model_card",
    "results_table",
    "save_drafter",
    "write_model_card",
]
