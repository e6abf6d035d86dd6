# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
The EAGLE format (`midlayer.*`, one decoder layer): SafeAILab EAGLE-3 and SpecForge's exports, read by SGLang and
vLLM too. Aux layers are not stored (implied `(2, L//2, L-3)`); switches sit at the top level of config.json.

Its consumers disagree on EAGLE-3.1: SafeAILab EAGLE loads with `strict=False`, drops `fc_norm.*` and runs plain
EAGLE-3, so a drafter with any switch on needs `--eagle-consumer specforge` (SpecForge / SGLang / vLLM, which read
the switches) to be written; and `norm_output: true` has two meanings (see `specforge`).
"""

from ..errors import InputError
from ..modeling.checkpoint_formats import EAGLE_ARCHITECTURE
from . import specforge
from .neutral import SWITCHES, TARGET_LAYERS_KEY, DrafterCheckpoint, dtype_name, llama_fields, switches_on


ARCHITECTURE = EAGLE_ARCHITECTURE  # SafeAILab EAGLE-3 and SpecForge; vLLM and SGLang map it to Eagle3
# Reading (`midlayer.*` and SGLang's old `aux_norm_*` names, the two meanings of `norm_output`, `norm_before_residual`
# read two ways): `modeling/checkpoint_formats.py` (`read_eagle`), shared with `Eagle3Drafter.from_pretrained`.


def check_consumer(cfg, consumer):
    """Refuses a drafter that SafeAILab EAGLE would load as a different model, unless the consumer reads it; and
    `norm_before_residual`, which no `midlayer` producer's class reads (SpecForge and SafeAILab ignore it)."""
    if cfg.norm_before_residual:
        raise InputError(
            "this drafter has norm_before_residual=True, which SpecForge's and SafeAILab's LlamaForCausalLMEagle3 "
            "ignore in the EAGLE format (they would run a different drafter; only vLLM reads it there): use --to vllm "
            "or --to speculators, whose readers honour it."
        )
    on = switches_on(cfg)
    if on and consumer != "specforge":
        raise InputError(
            f"this drafter has {', '.join(f'{n}=True' for n in on)}: SafeAILab EAGLE loads the EAGLE format with "
            "strict=False, drops fc_norm.* and drafts as plain EAGLE-3; use --to vllm or --to speculators, or pass "
            "--eagle-consumer specforge to write it for SpecForge / SGLang / vLLM, which read these switches."
        )


def write_config(ckpt: DrafterCheckpoint) -> dict:
    """config.json as SafeAILab / SpecForge publish: only what differs from plain EAGLE-3 (SpecForge's 3.1 adds the
    switches); `norm_output` with its meaning recorded."""
    cfg = ckpt.config
    config = {"architectures": [ARCHITECTURE], "model_type": "llama"}
    config.update(llama_fields(cfg, dtype_name(ckpt.state_dict)))
    config["draft_vocab_size"] = cfg.draft_vocab_size
    if cfg.target_hidden_size != cfg.hidden_size:
        config["target_hidden_size"] = cfg.target_hidden_size
    config.update({name: True for name in SWITCHES if name != "norm_output" and getattr(cfg, name)})
    config.update(specforge.norm_output_on_export(cfg.norm_output))
    if cfg.target_num_hidden_layers is not None:
        config[TARGET_LAYERS_KEY] = cfg.target_num_hidden_layers
    return config


def write(ckpt: DrafterCheckpoint, consumer=None):
    """(state dict, config) of the EAGLE format, or a one-line refusal when it cannot hold this drafter."""
    cfg = ckpt.config
    if cfg.num_hidden_layers != 1:
        raise InputError(
            f"the EAGLE format holds one decoder layer (`midlayer.*`); this drafter has {cfg.num_hidden_layers}: "
            "use --to vllm or --to speculators (`layers.N.*`, any depth)."
        )
    # The ids are EAGLE's default for exactly one layer count, L = ids[2] + 3 (when the target's is unknown).
    layers = cfg.target_num_hidden_layers or cfg.target_layer_ids[-1] + 3
    default = [2, layers // 2, layers - 3]
    if list(cfg.target_layer_ids) != default:
        raise InputError(
            f"target_layer_ids={cfg.target_layer_ids} is not EAGLE's implied default {default}: the EAGLE format "
            "cannot store aux layers, so this drafter would read the wrong layers. Use --to vllm (same weights, "
            "records the layers) or --to speculators."
        )
    check_consumer(cfg, consumer)
    state = {
        ("midlayer." + k[len("layers.0.") :] if k.startswith("layers.0.") else k): v for k, v in ckpt.state_dict.items()
    }
    return state, write_config(ckpt)
