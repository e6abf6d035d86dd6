"""Bad input never loses work or gives a silent wrong answer (issue 14): every CLI failure is one line naming the fix,
nothing is dropped uncounted, no earlier output is destroyed, training survives odd batches and partial checkpoints.
Each test fails without its fix."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch
from transformers import AutoModel

from hf_eagle31.cli import main
from hf_eagle31.data.conversations import load_conversations
from hf_eagle31.modeling.drafter_common import DrafterPreTrainedModel
from hf_eagle31.training import (
    DrafterArguments,
    EagleTrainer,
    apply_lora,
    build_drafter,
    check_training_outputs,
    merge_lora,
    resolve_resume_checkpoint,
    train_drafter,
    unwrap_drafter,
)

from conftest import cli_flags, make_drafter, save_tiny_setup, tiny_target, tiny_training_args


ROOT = Path(__file__).resolve().parents[1]
ERROR_LINE = re.compile(r"^hf-eagle31 [\w-]+: error: \S.*$")


def conversations_file(path, n=8, user_only=()):
    with open(path, "w") as f:
        for i in range(n):
            messages = [{"role": "user", "content": " ".join(f"w{(i + j) % 30}" for j in range(5))}]
            if i not in user_only:
                messages.append({"role": "assistant", "content": " ".join(f"w{(2 * i + j) % 30}" for j in range(8))})
            f.write(json.dumps({"messages": messages}) + "\n")
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A saved tiny target (+ chat tokenizer), one drafter for it, prompts, and data prepared from conversations."""
    root = tmp_path_factory.mktemp("bad-input")
    _, _, target_dir, drafter_dirs, prompts = save_tiny_setup(root)
    conversations_file(root / "conversations.jsonl")
    assert prepare_data(str(target_dir), str(root / "conversations.jsonl"), str(root / "data")) == 0
    return {"root": root, "target": target_dir, "drafter": drafter_dirs[0], "prompts": prompts, "data": root / "data"}


def prepare_data(target, source, out, *extra):
    """`hf-eagle31 prepare-data` without regeneration (+ `extra` arguments); its exit code."""
    return main(["prepare-data", *cli_flags(target=target, source=source, out=out), "--no-regenerate", *extra])


def error_line(capsys):
    """The stderr of a failed CLI call: exactly one `hf-eagle31 <verb>: error: ...` line after any progress output."""
    lines = [line for line in capsys.readouterr().err.splitlines() if ": error:" in line or "Traceback" in line]
    assert len(lines) == 1 and ERROR_LINE.match(lines[0]), lines
    return lines[0]


def train_args(tmp_path, **kw):
    return tiny_training_args(tmp_path, **kw)


def rows(n=6, length=10, masked=()):
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(n):
        ids = torch.randint(0, 64, (length,), generator=g).tolist()
        out.append({"input_ids": ids, "loss_mask": [0] * length if i in masked else [0, 0, 0] + [1] * (length - 3)})
    return datasets.Dataset.from_list(out)


# ------------------------------------------------------------------------------------------------ CLI error handler


def test_cli_expected_error_is_one_line_debug_shows_traceback(tmp_path, capsys, monkeypatch):
    argv = ["prepare-data", "--source", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "d")]
    assert main(argv) == 2
    assert "missing.jsonl does not exist" in error_line(capsys)
    with pytest.raises(ValueError, match="does not exist"):
        main(["--debug", *argv])
    monkeypatch.setenv("HF_EAGLE31_DEBUG", "1")
    with pytest.raises(ValueError, match="does not exist"):
        main(argv)
    monkeypatch.delenv("HF_EAGLE31_DEBUG")

    def bug(args):
        raise RuntimeError("a bug")  # unexpected errors keep their traceback

    monkeypatch.setattr("hf_eagle31.commands.fetch.run", bug)
    with pytest.raises(RuntimeError):
        main(["fetch"])


def test_cli_error_in_a_real_process_has_no_traceback(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hf_eagle31.cli",
            "prepare-data",
            "--source",
            str(tmp_path / "x.jsonl"),
            "--out",
            str(tmp_path / "d"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert ERROR_LINE.match(result.stderr.strip()), result.stderr


# ------------------------------------------------------------------------------------------------ 1: --init-from


def test_remote_code_drafter_trains_and_takes_lora(tmp_path):
    target = tiny_target()
    make_drafter(target, "eagle3.1", draft_vocab_size=48).save_pretrained(tmp_path / "drafter")
    remote = AutoModel.from_pretrained(str(tmp_path / "drafter"), trust_remote_code=True)
    assert not isinstance(remote, DrafterPreTrainedModel)  # the checkpoint's copy of the classes
    assert unwrap_drafter(remote) is remote
    EagleTrainer(
        model=remote, args=train_args(tmp_path / "a", max_steps=1), target=target, ttt_steps=2, train_dataset=rows()
    ).train()
    peft = apply_lora(remote, r=2, alpha=4)
    assert unwrap_drafter(peft) is remote
    EagleTrainer(
        model=peft,
        args=train_args(tmp_path / "b", max_steps=1, learning_rate=1e-2),
        target=target,
        ttt_steps=2,
        train_dataset=rows(),
    ).train()
    assert unwrap_drafter(merge_lora(peft)) is not None


def test_lora_example_script_runs_end_to_end(tiny, tmp_path, capsys):
    """examples/train_lora_new_template.sh: prepare data with a new template, LoRA on a trained drafter, merge."""
    template = tmp_path / "new.jinja"
    template.write_text(
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\nw1 {{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\nw1 {% endif %}"
    )
    data = tmp_path / "data"
    assert (
        prepare_data(
            str(tiny["target"]), str(tiny["root"] / "conversations.jsonl"), str(data), "--chat-template", str(template)
        )
        == 0
    )
    script = (ROOT / "examples" / "train_lora_new_template.sh").read_text()
    command = " ".join(
        line.rstrip("\\").strip()
        for line in script[script.index("hf-eagle31 train") :].splitlines()
        if line.strip() and not line.startswith("#")
    )
    out = tmp_path / "lora"
    values = {"BASE": str(tiny["drafter"]), "DATA": str(data), "OUT": str(out)}
    argv = [re.sub(r"\$(\w+)", lambda m: values[m.group(1)], a) for a in shlex.split(command)][1:]
    epochs = argv.index("--num_train_epochs")  # --max_steps below sets the length: epochs would have no effect
    del argv[epochs : epochs + 2]
    argv += ["--target", str(tiny["target"]), "--max_steps", "2", "--use_cpu", "--disable_tqdm", "true"]
    assert main(argv) == 0
    assert (out / "adapter_model.safetensors").is_file()
    merged = AutoModel.from_pretrained(str(out / "merged"), trust_remote_code=True)
    base = AutoModel.from_pretrained(str(tiny["drafter"]), trust_remote_code=True)
    assert not torch.equal(merged.fc.weight, base.fc.weight)  # the adapter was trained and folded in
    # 5: a second run into the same --out is refused (the adapter would be replaced) ...
    assert main(argv) == 2
    assert "already holds a trained drafter" in error_line(capsys) and (out / "adapter_model.safetensors").is_file()
    # ... and with --overwrite it still never touches the earlier run's checkpoints
    assert main(argv + ["--overwrite"]) == 2
    assert "checkpoints of an earlier run" in error_line(capsys) and (out / "checkpoint-2").is_dir()


def test_init_from_refuses_foreign_checkpoints_without_trust_remote_code(tiny, tmp_path, capsys):
    foreign = tmp_path / "foreign"
    tiny_target().save_pretrained(foreign)  # a llama checkpoint, not a drafter
    argv = [
        "train",
        "--data",
        str(tiny["data"]),
        "--target",
        str(tiny["target"]),
        "--init-from",
        str(foreign),
        "--out",
        str(tmp_path / "o"),
        "--use_cpu",
    ]
    assert main(argv) == 2
    line = error_line(capsys)  # a plain model: --trust-remote-code would build a LlamaModel, never a drafter
    assert "--init-from" in line and "not a drafter" in line and "--trust-remote-code" not in line


# ------------------------------------------------------------------------------------------------ 2: nothing dropped


def test_json_array_with_a_bad_record_mid_file_is_an_error_not_a_cut(tmp_path):
    records = [
        json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]})
        for i in range(12)
    ]
    records[4] = '{"messages": [{"role": "user", "content": "q4"} {"role": "assistant"}]}'  # missing comma
    (tmp_path / "bad.json").write_text("[\n" + ",\n".join(records) + "\n]\n")
    with pytest.raises(ValueError, match=r"bad.json:6:\d+: invalid JSON"):
        load_conversations(str(tmp_path / "bad.json"))
    # a file cut mid-record (ShareGPT's wheel is) keeps the complete records and counts the cut one
    good = "[\n" + ",\n".join(records[:4] + records[5:]) + "\n]\n"
    (tmp_path / "cut.json").write_text(good[: good.rindex('"a"')])
    skipped = {}
    assert len(load_conversations(str(tmp_path / "cut.json"), skipped=skipped)) == 10
    assert skipped == {"truncated_at_end_of_file": 1}


def test_prepare_data_counts_user_only_conversations(tiny, tmp_path):
    source = conversations_file(tmp_path / "c.jsonl", n=6, user_only=(1, 4))
    assert prepare_data(str(tiny["target"]), str(source), str(tmp_path / "d")) == 0
    report = json.loads((tmp_path / "d" / "prepare_report.json").read_text())
    assert report["kept"] == 4 and report["source_skipped"] == {"no_assistant_turn": 2}
    # with regeneration they are prompts the target answers: kept
    assert len(load_conversations(str(source), require_assistant=False)) == 6


def test_regeneration_without_a_pad_token(tmp_path):
    from hf_eagle31.data import regenerate_conversations

    from conftest import tiny_chat_tokenizer

    tokenizer = tiny_chat_tokenizer()
    assert tokenizer.pad_token is None  # Llama-3 style
    target = tiny_target(eos_token_id=tokenizer.eos_token_id)
    convs = [[{"role": "user", "content": "w1 w2 w3"}], [{"role": "user", "content": "w4"}]]
    out = regenerate_conversations(
        target, tokenizer, convs, str(tmp_path / "r"), batch_size=2, max_new_tokens=3, show_progress=False
    )
    assert all(c[-1]["role"] == "assistant" for c in out) and tokenizer.pad_token is None
    with pytest.raises(ValueError, match="batch_size=0"):
        regenerate_conversations(target, tokenizer, convs, str(tmp_path / "r0"), batch_size=0)


# ------------------------------------------------------------------------------------------------ 3: chat template


def test_mistyped_chat_template_path_is_an_error(tiny, tmp_path, capsys):
    from hf_eagle31.evaluation import read_chat_template

    with pytest.raises(ValueError, match="no such file"):
        read_chat_template(str(tmp_path / "tempalte.jinja"))
    assert read_chat_template("plain") == "plain" and read_chat_template("{{ x }}") == "{{ x }}"
    for verb in ("eval", "drift"):
        argv = [
            verb,
            "--target",
            str(tiny["target"]),
            "--drafter",
            str(tiny["drafter"]),
            "--prompts",
            str(tiny["prompts"]),
            "--chat-template",
            str(tmp_path / "tempalte.jinja"),
        ]
        argv += ["--out", str(tmp_path / "drift")] if verb == "drift" else []
        assert main(argv) == 2
        assert "no such file" in error_line(capsys)


# ------------------------------------------------------------------------------------------------ 4: training data


def test_batch_without_a_draftable_position_trains_on(tmp_path):
    target = tiny_target()
    drafter = build_drafter(target.config, "eagle3.1", draft_vocab_size=64).load_target_embeddings(target)
    data = rows(n=4, masked=(1, 3))  # batches of one: every other batch has no assistant token
    trainer = EagleTrainer(
        model=drafter,
        args=train_args(tmp_path, per_device_train_batch_size=1, max_steps=4),
        target=target,
        ttt_steps=2,
        train_dataset=data,
    )
    trainer.train()
    assert trainer.state.global_step == 4


def test_training_data_without_assistant_tokens_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no.*assistant|assistant.*nothing to learn"):
        train_drafter(
            rows(n=3, masked=(0, 1, 2)),
            DrafterArguments(out=str(tmp_path / "o")),
            None,
            train_args(tmp_path),
            target=tiny_target(),
        )
    with pytest.raises(ValueError, match="--draft-vocab-size 0"):
        train_drafter(
            rows(),
            DrafterArguments(out=str(tmp_path / "o"), draft_vocab_size=0),
            None,
            train_args(tmp_path),
            target=tiny_target(),
        )


# ------------------------------------------------------------------------------------------------ 5, 6: checkpoints


def test_existing_outputs_are_never_destroyed(tmp_path):
    out = tmp_path / "out"
    (out / "checkpoint-3").mkdir(parents=True)
    (out / "checkpoint-3" / "trainer_state.json").write_text("{}")
    with pytest.raises(ValueError, match="checkpoints of an earlier run.*--resume_from_checkpoint latest"):
        check_training_outputs(str(out), overwrite=True)
    check_training_outputs(str(out), resume="latest")  # continuing that run is fine
    check_training_outputs(str(out), saves_checkpoints=False)  # nothing would be rotated or overwritten
    (out / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="already holds a trained drafter.*--overwrite"):
        check_training_outputs(str(out), saves_checkpoints=False)


def test_resume_skips_a_partial_checkpoint(tmp_path, caplog):
    target = tiny_target()
    drafter = build_drafter(target.config, "eagle3", draft_vocab_size=64).load_target_embeddings(target)
    args = train_args(tmp_path, max_steps=2, save_strategy="steps", save_steps=1)
    EagleTrainer(model=drafter, args=args, target=target, ttt_steps=1, train_dataset=rows()).train()
    os.remove(tmp_path / "checkpoint-2" / "trainer_state.json")  # killed while saving checkpoint-2
    for asked in ("latest", str(tmp_path / "checkpoint-2")):
        assert resolve_resume_checkpoint(asked, str(tmp_path)) == str(tmp_path / "checkpoint-1")
    args = train_args(tmp_path, max_steps=3, save_strategy="steps", save_steps=1, resume_from_checkpoint="latest")
    trainer = EagleTrainer(model=drafter, args=args, target=target, ttt_steps=1, train_dataset=rows())
    with caplog.at_level("WARNING"):
        trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    assert "checkpoint-2" in caplog.text and trainer.state.global_step == 3
    assert json.loads((tmp_path / "checkpoint-2" / "trainer_state.json").read_text())["global_step"] == 2  # redone
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no complete checkpoint"):
        resolve_resume_checkpoint(True, str(tmp_path / "empty"))


# ------------------------------------------------------------------------------------------------ more cases


@pytest.mark.parametrize(
    "case",
    [
        "num-prompts-0",
        "num-prompts-negative",
        "num-assistant-tokens-0",
        "turns-string",
        "json-unwritable",
        "missing-local-drafter",
        "non-utf8-source",
        "batch-size-0",
        "draft-vocab-size-0",
        "convert-layer-99",
        "convert-repeated-layers",
        "truncated-weights",
    ],
)
def test_cli_bad_input_is_one_clear_line(case, tiny, tmp_path, capsys):
    common = ["--target", str(tiny["target"]), "--drafter", str(tiny["drafter"])]
    eval_argv = ["eval", *common, "--prompts", str(tiny["prompts"])]
    expected = {
        "num-prompts-0": (eval_argv + ["--num-prompts", "0"], "--num-prompts: must be >= 1, got 0"),
        "num-prompts-negative": (eval_argv + ["--num-prompts", "-1"], "must be >= 1"),
        "num-assistant-tokens-0": (
            ["bench", *common, "--prompts", str(tiny["prompts"]), "--num-assistant-tokens", "0"],
            "must be >= 1",
        ),
        "turns-string": (["eval", *common, "--prompts", str(tmp_path / "turns.jsonl")], "'turns' list"),
        "json-unwritable": (eval_argv + ["--json", str(tiny["prompts"]) + "/results.json"], "cannot be created"),
        "missing-local-drafter": (
            [
                "eval",
                "--target",
                str(tiny["target"]),
                "--drafter",
                "./no-such-drafter",
                "--prompts",
                str(tiny["prompts"]),
            ],
            "does not exist",
        ),
        "non-utf8-source": (
            [
                "prepare-data",
                "--target",
                str(tiny["target"]),
                "--source",
                str(tmp_path / "l1.jsonl"),
                "--no-regenerate",
                "--out",
                str(tmp_path / "d"),
            ],
            "not UTF-8",
        ),
        "draft-vocab-size-0": (
            ["train", "--data", str(tiny["data"]), "--out", str(tmp_path / "o"), "--draft-vocab-size", "0"],
            "must be >= 1",
        ),
        "batch-size-0": (
            ["prepare-data", "--source", "x.jsonl", "--out", str(tmp_path / "d"), "--batch-size", "0"],
            "must be >= 1",
        ),
        "convert-layer-99": (
            ["convert", str(tiny["drafter"]), str(tmp_path / "c"), "--to", "vllm", "--target-layer-ids", "2,4,99"],
            "out of range",
        ),
        "convert-repeated-layers": (
            ["convert", str(tiny["drafter"]), str(tmp_path / "c"), "--to", "vllm", "--target-layer-ids", "4", "4", "4"],
            "repeats a layer",
        ),
        "truncated-weights": (
            [
                "train",
                "--data",
                str(tiny["data"]),
                "--target",
                str(tiny["target"]),
                "--init-from",
                str(tmp_path / "cut"),
                "--out",
                str(tmp_path / "o"),
                "--use_cpu",
            ],
            "cut.*truncated",
        ),
    }
    (tmp_path / "turns.jsonl").write_text(json.dumps({"turns": "w1 w2"}) + "\n")
    (tmp_path / "l1.jsonl").write_bytes('{"messages": [{"role": "user", "content": "caf\u00e9"}]}\n'.encode("latin-1"))
    if case == "truncated-weights":
        import shutil

        shutil.copytree(tiny["drafter"], tmp_path / "cut")
        weights = tmp_path / "cut" / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:100])
    argv, message = expected[case]
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse: one `error:` line too
        code = exit.code
    assert code == 2
    assert re.search(message, error_line(capsys))
    assert not (tmp_path / "c").exists() and not (tmp_path / "o" / "config.json").exists()


# ------------------------------------------------------------------------------------------------ configs and loading


def one_line_error(call, match):
    """The ValueError `call()` raises: one line, matching `match`."""
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert "\n" not in str(info.value), str(info.value)
    return str(info.value)


def test_unknown_config_keys_are_named_with_the_closest_valid_one(tmp_path):
    from hf_eagle31 import Eagle3Config, Eagle3Drafter, MtpConfig

    target = tiny_target()
    one_line_error(
        lambda: Eagle3Config.from_target(target.config, norm_ouput=True),
        r"Eagle3Config has no setting `norm_ouput` \(did you mean `norm_output`\?\)",
    )
    one_line_error(lambda: MtpConfig(norm_ouput=True), r"`norm_ouput` \(did you mean `norm_output`\?\)")
    one_line_error(lambda: MtpConfig.from_target(target.config, fc_norm=True), "MtpConfig has no setting `fc_norm`")
    # in a config.json: named with the checkpoint, also through the checkpoint's own (remote) code
    make_drafter(target, "eagle3.1", draft_vocab_size=48).save_pretrained(tmp_path / "d")
    config = json.loads((tmp_path / "d" / "config.json").read_text())
    # what transformers and hf-eagle31 write besides the constructor arguments still loads
    config.update(
        use_cache=False,
        torch_dtype="float32",
        _name_or_path="x",
        target_name_or_path="org/t",
        embed_requires_grad=False,
        rope_theta=10000.0,
    )
    (tmp_path / "d" / "config.json").write_text(json.dumps(config))
    assert Eagle3Drafter.from_pretrained(tmp_path / "d").config.target_name_or_path == "org/t"
    (tmp_path / "d" / "config.json").write_text(json.dumps({**config, "norm_ouput": True}))
    for load in (Eagle3Drafter.from_pretrained, lambda p: AutoModel.from_pretrained(p, trust_remote_code=True)):
        message = one_line_error(lambda: load(tmp_path / "d"), "did you mean `norm_output`")
        assert str(tmp_path / "d") in message


def test_target_layer_ids_are_distinct_non_negative_ints(tmp_path):
    from hf_eagle31 import Eagle3Config, Eagle3Drafter

    config = tiny_target().config
    one_line_error(lambda: Eagle3Config.from_target(config, target_layer_ids="2,4,5"), r"is a string: pass \[2, 4, 5\]")
    one_line_error(lambda: Eagle3Config.from_target(config, target_layer_ids=[4, 4, 4]), "repeats layer 4")
    one_line_error(lambda: Eagle3Config.from_target(config, target_layer_ids=[-1, 2, 4]), "negative")
    one_line_error(lambda: Eagle3Config.from_target(config, target_layer_ids=[2.5, 3, 4]), "not a list of ints")
    make_drafter(tiny_target()).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**saved, "target_layer_ids": "2,4,5"}))
    one_line_error(lambda: Eagle3Drafter.from_pretrained(tmp_path), r"pass \[2, 4, 5\]")


@pytest.mark.parametrize("size", [0, -3, 65])
def test_draft_vocab_size_is_between_1_and_the_vocab_size(size):
    from hf_eagle31 import Eagle3Config, MtpConfig

    config = tiny_target().config
    for cls in (Eagle3Config, MtpConfig):
        one_line_error(
            lambda: cls.from_target(config, draft_vocab_size=size),
            rf"draft_vocab_size={size} is not in \[1, vocab_size=64\]",
        )
    one_line_error(lambda: Eagle3Config(vocab_size=64, draft_vocab_size=size), "draft_vocab_size")


def test_from_target_overrides_fill_fields_the_target_lacks():
    from transformers import GPT2Config

    from hf_eagle31 import Eagle3Config, MtpConfig

    gpt2 = GPT2Config(vocab_size=100, n_embd=64, n_layer=12, n_head=4)
    one_line_error(lambda: Eagle3Config.from_target(gpt2), "has no `intermediate_size`.*set `intermediate_size=`")
    cfg = Eagle3Config.from_target(gpt2, intermediate_size=128)
    assert cfg.intermediate_size == 128 and cfg.hidden_size == 64 and cfg.target_layer_ids == [2, 6, 9]
    sizes = {
        "model_type": "custom",
        "hidden_size": 32,
        "num_attention_heads": 4,
        "vocab_size": 64,
        "intermediate_size": 64,
    }
    one_line_error(lambda: MtpConfig.from_target(sizes), "no `num_hidden_layers`.*`target_num_hidden_layers=`")
    assert MtpConfig.from_target(sizes, target_num_hidden_layers=8).target_layer_ids == [8]


def test_foreign_and_broken_checkpoints_are_refused_in_one_line(tmp_path):
    import shutil

    from hf_eagle31 import Eagle3Drafter, MtpDrafter
    from hf_eagle31.convert import convert_checkpoint

    target = tiny_target()
    ours = tmp_path / "ours"
    make_drafter(target, "eagle3.1", draft_vocab_size=48).save_pretrained(ours)
    for fmt in ("vllm", "speculators", "eagle"):
        # an EAGLE-3.1 export to the EAGLE layout is written for readers of its switches (SafeAILab would drop them)
        convert_checkpoint(ours, tmp_path / fmt, fmt, eagle_consumer="specforge" if fmt == "eagle" else None)
        Eagle3Drafter.from_pretrained(tmp_path / fmt)  # converted in memory (tests/test_convert.py)
        message = one_line_error(
            lambda: MtpDrafter.from_pretrained(tmp_path / fmt), "drafter .*load it with Eagle3Drafter.from_pretrained"
        )
        assert str(tmp_path / fmt) in message
    target.save_pretrained(tmp_path / "llama")
    one_line_error(lambda: Eagle3Drafter.from_pretrained(tmp_path / "llama"), "`llama`.*not an hf-eagle31 drafter")
    one_line_error(lambda: MtpDrafter.from_pretrained(ours), "load it with Eagle3Drafter")
    for name, cut in (("cut", lambda b: b[:100]), ("short", lambda b: b[:-1000]), ("garbage", lambda b: b"x" * 5000)):
        shutil.copytree(ours, tmp_path / name)
        weights = tmp_path / name / "model.safetensors"
        weights.write_bytes(cut(weights.read_bytes()))
        message = one_line_error(lambda: Eagle3Drafter.from_pretrained(tmp_path / name), "truncated or corrupt")
        assert str(tmp_path / name) in message
    shutil.copytree(ours, tmp_path / "no-config")
    (tmp_path / "no-config" / "config.json").unlink()
    one_line_error(lambda: Eagle3Drafter.from_pretrained(tmp_path / "no-config"), "no-config has no config.json")


def test_drafter_for_another_vocabulary_gets_a_one_line_refusal():
    """transformers validates the assistant's vocabulary before the door (one line of its own); our line, naming the
    fix, comes from `check_target` and from the patch-free entry (ARCHITECTURE.md, "The door into transformers")."""
    from hf_eagle31.modeling import speculative_generate

    target = tiny_target()
    ids = torch.randint(0, 64, (1, 5))
    ours = "expects a target vocab size of 100 but the target has 64 .*another tokenizer"
    for other in (tiny_target(vocab_size=100), tiny_target(vocab_size=100, hidden_size=48)):
        drafter = make_drafter(other)
        one_line_error(
            lambda: target.generate(ids, max_new_tokens=3, do_sample=False, assistant_model=drafter), "tokenizer"
        )
        one_line_error(lambda: drafter.check_target(target.config), ours)
        one_line_error(
            lambda: target.generate(ids, max_new_tokens=3, custom_generate=speculative_generate, drafter=drafter), ours
        )
    drafter = make_drafter(target)  # and a matching drafter still drafts
    plain = target.generate(ids, max_new_tokens=4, do_sample=False)
    assert torch.equal(target.generate(ids, max_new_tokens=4, do_sample=False, assistant_model=drafter), plain)


def test_eval_and_info_load_foreign_drafters_and_refuse_non_drafters_in_one_line(tiny, tmp_path, capsys):
    from hf_eagle31.convert import convert_checkpoint

    convert_checkpoint(tiny["drafter"], tmp_path / "vllm", "vllm")
    tiny_target().save_pretrained(tmp_path / "llama")
    common = ["--target", str(tiny["target"])]
    for flags in ([], ["--trust-remote-code"]):  # no code of its own to trust: converted in memory either way
        assert main(["info", *common, "--drafter", str(tmp_path / "vllm"), "--max-new-tokens", "4", *flags]) == 0
        assert "Eagle3Drafter" in capsys.readouterr().out
    for verb, extra in (("eval", ["--prompts", str(tiny["prompts"])]), ("info", [])):
        assert main([verb, *common, "--drafter", str(tmp_path / "llama"), *extra]) == 2
        assert "not a drafter" in error_line(capsys)  # --trust-remote-code cannot make a LlamaModel draft
    assert main(["info", *common, "--drafter", str(tiny["drafter"]), "--max-new-tokens", "4"]) == 0


def test_generation_config_is_optional_but_never_silently_broken(tmp_path):
    """A checkpoint without generation_config.json keeps the defaults; a corrupted one is an error, not ignored."""
    from hf_eagle31 import Eagle3Drafter

    from conftest import make_drafter, tiny_target

    path = tmp_path / "drafter"
    drafter = make_drafter(tiny_target(), "eagle3.1")
    drafter.generation_config.num_assistant_tokens = 4
    drafter.save_pretrained(path)
    assert Eagle3Drafter.from_pretrained(path).generation_config.num_assistant_tokens == 4
    (path / "generation_config.json").write_text("{not json")
    with pytest.raises((OSError, ValueError), match="generation_config.json|valid JSON"):
        Eagle3Drafter.from_pretrained(path)
    (path / "generation_config.json").unlink()
    assert Eagle3Drafter.from_pretrained(path).generation_config.num_assistant_tokens == 6  # the default


def test_unknown_drafter_type_says_upgrade_in_loading_and_convert(tmp_path):
    """A drafter type of a newer release: `from_pretrained` and `convert` both say to upgrade (neither calls it a
    foreign layout to convert)."""
    import json

    from hf_eagle31 import Eagle3Drafter
    from hf_eagle31.cli import main

    target = tiny_target()
    make_drafter(target).save_pretrained(tmp_path / "d")
    config = json.loads((tmp_path / "d" / "config.json").read_text())
    config["model_type"] = "eagle4_drafter"
    (tmp_path / "d" / "config.json").write_text(json.dumps(config))
    one_line_error(
        lambda: Eagle3Drafter.from_pretrained(tmp_path / "d"), r"`eagle4_drafter` drafter.*upgrade hf-eagle31"
    )
    assert main(["convert", str(tmp_path / "d"), str(tmp_path / "out"), "--to", "vllm"]) == 2
