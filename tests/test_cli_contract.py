"""The command-line contract (issue 33), generated from the parsers themselves: every argument of every verb is walked
(`command_parser(verb)._actions`), fed the values users get wrong (0, negative, nan, inf, huge, a word for a number,
an empty string, a missing path, a file for a folder and the reverse, a folder of the wrong kind) and the values its
contract accepts, given where it has no effect and together with what it excludes. Each run of `main()` must end
with exit 2 and ONE stderr line naming the argument, or succeed and hand the verb the value (the verbs' `run` is
replaced by a recorder: nothing loads, so the whole contract is checked before any work, as it must be).

What is valid comes from this file's own reading of each declared contract (`Integer` / `Number` ranges, `choices`,
the path kinds of the check functions below), not from the checks themselves; an argument without a declared
contract, or with a type or check this file has no reading of, fails `test_every_argument_declares_its_contract`.
"""

import argparse
import dataclasses
import enum
import functools
import json
import math
import re

import datasets
import pytest
from transformers import TrainingArguments
from transformers.hf_argparser import string_to_bool

from hf_eagle31 import commands
from hf_eagle31.cli import main

from conftest import CHATML, save_tiny_setup


ERROR_LINE = re.compile(r"^hf-eagle31 [\w-]+: error: \S.*$")
HUGE = "99999999999"
NUMBERS = {"zero": "0", "negative": "-5", "nan": "nan", "inf": "inf", "huge": HUGE, "word": "abc", "empty": "",
           "one": "1", "half": "0.5"}  # fmt: skip
PATHS = ("missing", "file", "folder", "dataset", "model", "drafter", "prompts", "template", "conversations",
         "checkpoint")  # fmt: skip
PATH_LIKE = ("missing", "file", "folder", "dataset", "model", "drafter", "checkpoint")  # existing-or-not paths
OK, REFUSED, EITHER = "ok", "refused", "either"


# ------------------------------------------------------------------------------------------------ the inputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Every kind of value the fuzzer passes, as paths under one folder: the tiny target and drafter, a prepared
    dataset, prompts, a chat template, conversations, a complete checkpoint, a text file, an empty folder."""
    root = tmp_path_factory.mktemp("contract")
    _, _, target_dir, drafter_dirs, prompts = save_tiny_setup(root)
    ids = [[(3 * i + j) % 60 + 3 for j in range(12)] for i in range(8)]
    datasets.Dataset.from_dict({"input_ids": ids, "loss_mask": [[0] * 4 + [1] * 8] * 8}).save_to_disk(root / "data")
    (root / "notes.txt").write_text("not json {\n")
    (root / "empty").mkdir()
    (root / "chat.jinja").write_text(CHATML)
    messages = [{"role": "user", "content": "w1 w2"}, {"role": "assistant", "content": "w3 w4"}]
    (root / "conversations.jsonl").write_text(json.dumps({"messages": messages}) + "\n")
    checkpoint = root / "run" / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 2, "max_steps": 4}))
    (checkpoint / "model.safetensors").write_bytes((drafter_dirs[0] / "model.safetensors").read_bytes())
    damaged = root / "run" / "checkpoint-1"  # complete (its state was written last) but its weights are gone
    damaged.mkdir()
    (damaged / "trainer_state.json").write_text(json.dumps({"global_step": 1, "max_steps": 4}))
    paths = {
        "missing": root / "missing" / "x",
        "file": root / "notes.txt",
        "folder": root / "empty",
        "dataset": root / "data",
        "model": target_dir,
        "drafter": drafter_dirs[0],
        "prompts": prompts,
        "template": root / "chat.jinja",
        "conversations": root / "conversations.jsonl",
        "checkpoint": checkpoint,
        "damaged": damaged,
    }
    return {**NUMBERS, **{name: str(path) for name, path in paths.items()}}


@pytest.fixture
def recorded(monkeypatch, tmp_path):
    """Every verb's `run` replaced by a recorder of the arguments it was handed (exit 0); the working directory is
    an empty folder (relative names exist nowhere)."""
    monkeypatch.chdir(tmp_path)
    calls = []
    for module in {module for module, _ in commands.SUBCOMMANDS.values()}:
        monkeypatch.setattr(f"{module}.run", lambda args: calls.append(args) or 0)
    return calls


# ------------------------------------------------------------------------------------------------ the core assertion


def run_cli(argv, capfd):
    """`main(argv)`: (exit code, the stderr lines); a traceback (an exception out of main) is a contract failure."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    except Exception as error:  # noqa: BLE001  (anything out of main is a traceback for a user)
        raise AssertionError(f"{argv}: a traceback instead of one line: {type(error).__name__}: {error}") from error
    return code, [line for line in capfd.readouterr().err.splitlines() if line.strip()]


def assert_contract(argv, expect, names, capfd, calls=None, check=None, others=()):
    """
    The contract of one command line: `expect` REFUSED: exit 2 and exactly one stderr line,
    `hf-eagle31 VERB: error: ...`, that names the argument (one of `names`); OK: exit 0, a quiet stderr, and the verb
    received the arguments (`check(args)`); EITHER: one of both. `others`: names of arguments of the rest of the
    command line whose refusal is right too (a mode switch leaves them without effect).
    """
    before = len(calls) if calls is not None else 0
    code, err = run_cli(argv, capfd)
    if expect == EITHER or (expect == OK and code == 2 and others and any(n in "".join(err) for n in others)):
        names = [*names, *others]
        expect = OK if code == 0 else REFUSED
    if expect == REFUSED:
        assert code == 2, f"{argv}: exit {code}, expected 2 (refused); stderr {err}"
        assert len(err) == 1 and ERROR_LINE.match(err[0]), f"{argv}: not one error line: {err}"
        assert any(name in err[0] for name in names), f"{argv}: the error does not name {names}: {err[0]}"
        return err[0]
    assert code == 0, f"{argv}: exit {code}, expected to work: {err}"
    assert not err, f"{argv}: worked but wrote to stderr: {err}"
    assert calls is not None and len(calls) == before + 1, f"{argv}: the verb did not run"
    if check is not None:
        check(calls[-1])
    return None


# ------------------------------------------------------------------------------------ the reading of contracts


def _common():
    from hf_eagle31.commands import common

    return common


def _train():
    from hf_eagle31.commands import train

    return train


def path_verdicts():
    """What each path / name check accepts among the fuzzed values (`inputs`): OK, REFUSED, or EITHER where it
    depends on this machine or on other arguments (an existing output folder: allowed by some verbs, refused by
    others without --overwrite). Values not listed: REFUSED. `samples`: values that reach the verb."""
    from hf_eagle31.commands import fetch

    common, train = _common(), _train()
    numbers_as_names = {name: OK for name in ("zero", "negative", "nan", "inf", "huge", "word", "one", "half")}
    output_dir = {**numbers_as_names, "missing": OK, "folder": OK, "dataset": EITHER, "model": EITHER,
                  "drafter": EITHER, "checkpoint": EITHER}  # fmt: skip
    return {
        common.check_output_path: (output_dir, ["missing"]),
        common.check_answer_cache: (output_dir, ["missing"]),
        common.check_output_file: (
            {**numbers_as_names, "missing": OK, "file": OK, "prompts": OK, "template": OK, "conversations": OK},
            ["missing"],
        ),  # fmt: skip
        common.check_model_path: ({**numbers_as_names, "model": OK}, ["model"]),
        common.check_drafter_path: ({**numbers_as_names, "drafter": OK}, ["drafter"]),
        common.check_drafter_source: ({**numbers_as_names, "drafter": OK}, ["drafter"]),
        common.check_dataset_path: ({"dataset": OK}, ["dataset"]),
        common.check_prompt_file: ({"prompts": OK, "conversations": OK}, ["prompts"]),  # messages are prompts too
        common.check_chat_template: ({"template": OK}, ["template"]),
        common.check_jinja_chat_template: ({"template": OK}, ["template"]),
        common.check_conversation_source: (
            {**numbers_as_names, "dataset": OK, "prompts": OK, "conversations": OK},
            ["conversations"],
        ),  # fmt: skip
        common.check_text: ({name: OK for name in [*NUMBERS, *PATHS] if name != "empty"}, ["word"]),
        common.check_device: ({}, []),  # cpu / cuda: given below
        common.check_policies: ({}, []),
        fetch.check_source_name: ({}, []),
        train._check_resume: ({"checkpoint": OK}, ["checkpoint"]),
        train._check_fsdp: ({}, []),
        train._check_optim: ({}, []),
        train._check_optim_args: ({}, []),
        train._check_report_to: ({}, []),
        train._check_torch_compile_backend: ({}, []),
        train._json_file_or_object: ({}, []),
        train._check_accelerator_config: ({}, []),
        train._check_deepspeed: ({}, []),
    }


EXTRA_SAMPLES = {  # valid values of checks whose valid values are names, not paths
    "check_device": ["cpu"],
    "check_policies": ["constant"],
    "check_source_name": ["mtbench"],
    "_check_fsdp": ["full_shard"],
    "_check_optim_args": ["a=1,b=2"],
    "_check_report_to": ["none"],
    "_check_torch_compile_backend": ["inductor"],
    "_json_file_or_object": ['{"a": 1}'],
    "_check_accelerator_config": ['{"split_batches": true}'],
}


def number_verdict(kind, text):
    """Integer / Number: whether `text` is in the declared range (this file's own parse)."""
    common = _common()
    try:
        value = int(text) if isinstance(kind, common.Integer) else float(text)
    except ValueError:
        return REFUSED
    if isinstance(kind, common.Integer):
        ok = (kind.low is None or value >= kind.low) and (kind.high is None or value <= kind.high)
    else:
        ok = math.isfinite(value)
        if kind.low is not None:
            ok = ok and (value > kind.low if kind.low_open else value >= kind.low)
        if kind.high is not None:
            ok = ok and (value < kind.high if kind.high_open else value <= kind.high)
    return OK if ok else REFUSED


def type_verdict(action, text):
    """What the argument's type makes of `text` (None: its type has no reading here)."""
    common, train = _common(), _train()
    kind = action.type
    if isinstance(kind, (common.Integer, common.Number)):
        return number_verdict(kind, text)
    if kind is string_to_bool:
        return OK if text.lower() in ("yes", "true", "t", "y", "1", "no", "false", "f", "n", "0") else REFUSED
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return OK if text in [m.value for m in kind] else REFUSED
    if kind is train._json_object:
        try:
            return OK if isinstance(json.loads(text), dict) else REFUSED
        except ValueError:
            return REFUSED
    if kind is train._not_settable:
        return REFUSED
    if getattr(kind, "__name__", "") == "_layer_ids":
        parts = [p for p in text.split(",") if p.strip()]
        return OK if parts and all(re.fullmatch(r"\s*\d+\s*", p) for p in parts) else REFUSED
    if kind is None or kind is str or action.choices is not None:
        return OK
    return None


def reading(action):
    """`(values, verdict(value name, text))` for the argument, or None when this file cannot read its contract."""
    contract = action.contract
    paths = path_verdicts()
    if action.nargs == 0:  # a flag: given or not
        return None if contract.check is not None else ([], None)
    needs_package = getattr(contract.check, "needs_package", None)
    if contract.check is not None and contract.check not in paths and contract.check is not _train()._check_max_steps:
        if needs_package is None:
            return None
    if action.type is not None and type_verdict(action, "1") is None:
        return None
    choices = [str(c.value if isinstance(c, enum.Enum) else c) for c in action.choices] if action.choices else None
    extra = EXTRA_SAMPLES.get(getattr(contract.check, "__name__", ""), []) + (choices[:1] if choices else [])
    if getattr(contract, "within", None) is not None:
        extra = [contract.within.sample]  # the inputs' own (a key of the drafter's config.json, the policy given)
    numeric = isinstance(action.type, (_common().Integer, _common().Number))
    names = list(NUMBERS) + ([] if numeric else list(PATHS)) + [f"={v}" for v in extra]

    def verdict(name, text):
        if choices is not None and text not in choices:
            return REFUSED
        by_type = type_verdict(action, text) if action.type is not None else OK
        if by_type != OK:
            return by_type
        if getattr(contract, "within", None) is not None and not name.startswith("="):
            return REFUSED  # none of the fuzzed values is among the values the inputs allow
        if contract.check is _train()._check_max_steps:
            return REFUSED if int(text) == 0 else OK  # -1: the epochs decide; 0 steps: nothing
        if needs_package is not None:
            return EITHER if string_to_bool(text) else OK  # refused where the package is not installed
        if contract.check is _train()._check_optim:
            return EITHER  # a valid choice; some need a package this machine may lack
        if contract.check is not None:
            if name.startswith("="):
                return OK
            if contract.check in (_train()._check_fsdp, _train()._check_optim_args, _common().check_policies) or (
                contract.check.__name__ == "check_source_name"
            ):
                return REFUSED
            if contract.check in (_train()._check_report_to, _train()._check_torch_compile_backend):
                return REFUSED
            if contract.check in (_train()._json_file_or_object, _train()._check_deepspeed):
                return EITHER if name == "file" else REFUSED
            if contract.check is _train()._check_accelerator_config:
                return EITHER if name == "file" else REFUSED
            if contract.check is _common().check_device:
                return REFUSED
            return paths[contract.check][0].get(name, REFUSED)
        if contract.at_most is not None and text == HUGE:
            return REFUSED
        return OK

    return names, verdict


@functools.cache
def flag_names(action):
    """How a message may name the argument (`--no_x` stores into `x`: it may be named as `--x`)."""
    twins = [a for verb in commands.SUBCOMMANDS for a in arguments(verb) if a.dest == action.dest and a is not action]
    shared = [s for a in twins if a.container is action.container for s in a.option_strings]
    return [*action.option_strings, getattr(action, "check_flag", action.dest), *shared]


def flag_was_set(action, args):
    """The verb received the flag's value (store_true: True, store_false: False, --x of --x/--no-x: True)."""
    want = True if isinstance(action, argparse.BooleanOptionalAction) else action.const
    assert getattr(args, action.dest) == want, (action.dest, getattr(args, action.dest), want)


def converted(action, text):
    return action.type(text) if callable(action.type) else text


# ------------------------------------------------------------------------------------------------ command lines


def sample_value(action, inputs):
    """A value the argument's contract accepts (None: none of the fuzzed ones)."""
    got = reading(action)
    if got is None or action.nargs == 0:
        return None
    names, verdict = got
    for name in [n for n in names if n.startswith("=")] + [n for n in (*PATHS, *NUMBERS) if n in names]:
        text = name[1:] if name.startswith("=") else inputs[name]
        if verdict(name, text) == OK:
            return text
    return None


def fragment(action, text=None):
    """The command-line words that give `action` the value `text` (a flag: itself)."""
    if not action.option_strings:
        return [text]
    if action.nargs == 0 or (text is None and action.nargs == "?" and action.const is not None):
        return [action.option_strings[0]]
    return [action.option_strings[0], text]


def satisfy(parser, when, inputs, seen=()):
    """`{action: words}` that make the `When` hold (with what those words need in turn), or None when a term is a
    fact of the inputs or the machine, not an argument."""
    by_dest = {a.dest: a for a in parser._actions}
    words = {}
    for name, wanted, _ in when.terms:
        action = by_dest.get(name)
        if action is None:
            return None
        if wanted is False or wanted is None or name in seen:
            continue
        if wanted is True:
            text = None if action.nargs in (0, "?") else sample_value(action, inputs)
            if action.nargs not in (0, "?") and text is None:
                return None
        elif callable(wanted):
            text = str(wanted.sample)
        else:
            text = str(wanted[0] if isinstance(wanted, tuple) else wanted)
        words[action] = fragment(action, text)
        contract = getattr(action, "contract", None)
        if contract is not None and contract.applies is not None:
            more = satisfy(parser, contract.applies, inputs, (*seen, name))
            if more is None:
                return None
            words.update(more)
    return words


def command(verb, base, extra):
    """`verb` + the base's words with `extra`'s actions given their words instead (positionals stay in place)."""
    words = {**base, **extra}
    return [verb] + [w for action, part in words.items() for w in part]


def base_words(parser, inputs, tmp_path):
    """The smallest valid command line of the verb, `{action: words}`: its required arguments (and those its rules
    name when missing, e.g. train's --out), `--target` the tiny model (the bounds are read from it), each with a
    value its contract accepts; output folders new ones."""
    from hf_eagle31.commands.common import check_contract, check_output_path
    from hf_eagle31.errors import InputError

    words = {}
    for action in parser._actions:
        positional = not action.option_strings and action.nargs in (None, "+")
        if not (action.required or positional or action.dest == "target") or isinstance(action, argparse._HelpAction):
            continue
        if action.dest == "target":
            text = inputs["model"]
        elif action.contract.check is check_output_path:
            text = str(tmp_path / f"new-{action.dest}")
        else:
            text = sample_value(action, inputs)
        words[action] = fragment(action, text)
    for _ in range(5):  # a rule that needs another argument names it: add it (a new folder)
        argv = command("", words, {})[1:]
        try:
            check_contract(parser, parser.parse_args(argv), argv)
            return words
        except InputError as error:
            named = [a for a in parser._actions if a.option_strings and str(error).startswith(a.option_strings[0])]
            named += [a for a in parser._actions if a.option_strings and f"{a.option_strings[0]} " in str(error)]
            if not named:
                raise
            action = named[0]
            new = action.contract.check is check_output_path
            words[action] = fragment(
                action, str(tmp_path / f"new-{action.dest}") if new else sample_value(action, inputs)
            )
    raise AssertionError(f"no valid base command line: {words}")


def arguments(verb):
    """Every argument of `verb` (what the tests walk)."""
    return [a for a in commands.command_parser(verb)._actions if not isinstance(a, argparse._HelpAction)]


def breaking(action, wanted, inputs):
    """The words that make `action` not satisfy `wanted`: [] (leave it out), its flag / a value, or None."""
    flag_like = action.nargs == 0 or (action.nargs == "?" and action.const is not None)
    if wanted is True:
        negative = [s for s in action.option_strings if s.startswith("--no-")]  # BooleanOptionalAction, default on
        return negative[:1] if action.default and negative else []
    if wanted is False or wanted is None:
        return fragment(action) if flag_like else fragment(action, sample_value(action, inputs))
    candidates = [str(c.value if isinstance(c, enum.Enum) else c) for c in action.choices or []]
    candidates += [inputs[n] for n in NUMBERS if n != "huge"]
    for text in candidates:
        if reading(action)[1]("", text) != OK:
            continue
        value = converted(action, text)
        if not (wanted(value) if callable(wanted) else value in (wanted if isinstance(wanted, tuple) else (wanted,))):
            return fragment(action, text)
    return None


# ------------------------------------------------------------------------------------------------ the tests


def undeclared(parsers):
    """`(arguments read, arguments, [the ones without a contract this file can read])` of `{verb: parser}`."""
    transformers_options = {f.name for f in dataclasses.fields(TrainingArguments)} - _train().OURS
    read, total, missing = 0, 0, []
    for verb, parser in parsers.items():
        for action in [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]:
            total += 1
            if getattr(action, "contract", None) is not None and reading(action) is not None:
                read += 1
            else:
                owner = (
                    "TrainingArguments option" if verb == "train" and action.dest in transformers_options else "ours"
                )
                missing.append(f"{verb} {action.option_strings[:1] or action.dest} ({owner})")
    return read, total, missing


def test_every_argument_declares_its_contract():
    """Coverage: every argument of every verb has a declared contract this file can read (289 of 289 when this was
    written: 167 of ours and 122 of transformers' TrainingArguments options in `train`). A new argument without one
    fails here; a TrainingArguments option a new transformers release adds needs its row in `OPTIONS`
    (hf_eagle31/commands/train.py): where it applies and what it accepts."""
    read, total, missing = undeclared({verb: commands.command_parser(verb) for verb in commands.SUBCOMMANDS})
    assert not missing, f"contract coverage {read}/{total}: without a contract this test can read: {missing}"
    assert total >= 289  # the walk reached every verb's parser
    parser = _common().CommandParser(prog="hf-eagle31 new")
    _common().add(parser, "--declared", type=_common().positive_int)
    parser.add_argument("--forgotten", type=int)  # what a new argument added the old way looks like
    assert undeclared({"new": parser}) == (1, 2, ["new ['--forgotten'] (ours)"])


@pytest.mark.parametrize("verb", list(commands.SUBCOMMANDS))
def test_every_value_of_every_argument(verb, inputs, recorded, capfd, tmp_path):
    """Each argument of `verb` on the verb's smallest valid command line (plus the companions its contract says it
    needs), with each fuzzed value: one line naming it, or the verb gets the value."""
    parser = commands.command_parser(verb)
    base = base_words(parser, inputs, tmp_path)
    assert_contract(command(verb, base, {}), OK, [], capfd, recorded)
    # arguments of the base a mode switch may leave without effect (their refusal names them)
    switched = [n for a in base if a.contract.applies is not None for n in flag_names(a)]
    for action in arguments(verb):
        if getattr(action, "contract", None) is None:
            continue  # (test_every_argument_declares_its_contract names it)
        applies = action.contract.applies
        if action.nargs == 0:  # a flag: given, where it applies, the verb gets its value
            if applies is None:
                assert_contract(
                    command(verb, base, {action: fragment(action)}),
                    OK,
                    [],
                    capfd,
                    recorded,
                    functools.partial(flag_was_set, action),
                    switched,
                )
            continue
        names, verdict = reading(action)
        companions = satisfy(parser, applies, inputs) if applies is not None else {}
        for name in names:
            text = name[1:] if name.startswith("=") else inputs[name]
            expect = verdict(name, text)
            if companions is None and expect == OK:
                expect = EITHER  # where it applies is a fact of the inputs or of this machine
            argv = command(verb, base, {**(companions or {}), action: fragment(action, text)})

            def received(args, action=action, text=text):
                value, want = getattr(args, action.dest), converted(action, text)
                assert value == want or (isinstance(value, list) and want in value), (action.dest, value, want)

            also = switched + [n for a in companions or {} for n in flag_names(a)]
            assert_contract(argv, expect, flag_names(action), capfd, recorded, received, also)


def settled(verb, base, extra, action, expect, capfd, calls, others=()):
    """`assert_contract` of the command line, after dropping the other arguments the mode switch leaves without
    effect: they are refused first (they come first on the parser), naming themselves, one at a time."""
    words, extra = dict(base), dict(extra)
    for _ in range(len(words) + len(extra)):
        code, err = run_cli(command(verb, words, extra), capfd)
        message = err[0].split(": error: ")[-1] if err else ""
        named = [a for a in {**words, **extra} if a is not action and message.startswith(
            tuple(f"{n} has no effect" for n in flag_names(a)))]  # fmt: skip
        if code != 2 or not named:
            break
        words.pop(named[0], None)
        extra.pop(named[0], None)
    assert_contract(command(verb, words, extra), expect, flag_names(action), capfd, calls, others=others)


def refused_naming_it(verb, base, extra, action, capfd, calls):
    settled(verb, base, extra, action, REFUSED, capfd, calls)


@pytest.mark.parametrize("verb", list(commands.SUBCOMMANDS))
def test_every_argument_is_refused_where_it_has_no_effect(verb, inputs, recorded, capfd, tmp_path):
    """Applicability: each argument given with a valid value but with one term of its `applies` broken (the mode
    or companion it needs missing, or the one it cannot work with present) is refused naming it, and works where it
    applies; each combination it `excludes` is refused naming it."""
    parser = commands.command_parser(verb)
    base = base_words(parser, inputs, tmp_path)
    by_dest = {a.dest: a for a in parser._actions}
    for action in arguments(verb):
        if getattr(action, "contract", None) is None:
            continue  # (test_every_argument_declares_its_contract names it)
        value = None if action.nargs in (0, "?") and action.option_strings else sample_value(action, inputs)
        if action.nargs not in (0, "?") and value is None:
            continue
        own = fragment(action, value)
        contract = action.contract
        if contract.applies is not None:
            companions = satisfy(parser, contract.applies, inputs)
            if companions is not None:
                tolerated = [n for a in companions for n in flag_names(a)]  # e.g. an optimizer's missing package
                expect = OK if action.nargs == 0 else reading(action)[1]("=", value if value is not None else "true")
                settled(verb, base, {**companions, action: own}, action, expect, capfd, recorded, tolerated)
                for name, wanted, _ in contract.applies.terms:
                    other = by_dest[name]
                    broken = breaking(other, wanted, inputs)
                    if broken is None or (other.required and not broken):
                        continue
                    changed = {a: w for a, w in companions.items() if a is not other}
                    if broken:  # given a value that breaks the term: with what it needs itself
                        needs = other.contract.applies
                        changed.update((satisfy(parser, needs, inputs, (name,)) if needs is not None else {}) or {})
                        changed[other] = broken
                    words = {a: w for a, w in base.items() if a is not other}
                    refused_naming_it(verb, words, {**changed, action: own}, action, capfd, recorded)
        for excluded in contract.excludes:
            other = satisfy(parser, excluded, inputs, ())
            if other is not None:
                companions = satisfy(parser, contract.applies, inputs) if contract.applies is not None else {}
                refused_naming_it(verb, base, {**(companions or {}), **other, action: own}, action, capfd, recorded)


# ------------------------------------------------------------------------------------------------ pinned regressions

# Issue 33: bad values that once gave one line and exit 2, then a traceback after a refactor of the error filter (the
# first group), and members of the classes it names (the second); each fails on the code before the fix.
REGRESSIONS = {
    "train-batch-0": (["train", "--per_device_train_batch_size", "0"], "--per_device_train_batch_size"),
    "train-lr-nan": (["train", "--learning_rate", "nan"], "--learning_rate"),
    "train-bf16-fp16": (["train", "--bf16", "--fp16"], "--bf16"),
    "train-target-dataset": (["train", "--target", "{dataset}"], "--target"),
    "train-eval-fraction-empty-train-split": (["train", "--eval-fraction", "0.95"], "--eval-fraction"),
    "train-resume-without-weights": (["train", "--resume_from_checkpoint", "{damaged}"], "--resume_from_checkpoint"),
    "eval-max-new-tokens-negative": (["eval", "--max-new-tokens", "-5"], "--max-new-tokens"),
    "demo-max-new-tokens-0": (["demo", "--max-new-tokens", "0"], "--max-new-tokens"),
    "eval-sample-temperature-0": (["eval", "--do-sample", "--temperature", "0"], "--do-sample"),
    # the classes' other members the issue names
    "eval-max-depth-beyond-answer": (["eval", "--teacher-forced", "--max-depth", "100000"], "--max-depth"),
    "eval-top-k-beyond-vocabulary": (["eval", "--teacher-forced", "--top-k", "1", "100"], "--top-k"),
    "train-max-minutes-features-only": (
        ["train", "--offline-features", "{missing}", "--features-only", "--max-minutes", "5"],
        "--max-minutes",
    ),
    "train-estimate-memory-features-only": (
        ["train", "--offline-features", "{missing}", "--features-only", "--estimate-memory"],
        "--estimate-memory",
    ),
    "convert-eagle-consumer-to-vllm": (
        ["convert", "--to", "vllm", "--eagle-consumer", "specforge"],
        "--eagle-consumer",
    ),
    "convert-norm-semantics-on-our-source": (
        ["convert", "--to", "vllm", "--norm-output-semantics", "post-norm-feed"],
        "--norm-output-semantics",
    ),
    "eval-answer-cache-file": (["eval", "--teacher-forced", "--answer-cache", "{file}"], "--answer-cache"),
}
BASES = {  # the rest of each pinned command line: valid, so the pinned value is what is wrong
    "train": ["--data", "{dataset}", "--target", "{model}", "--out", "{new}"],
    "eval": ["--target", "{model}", "--drafter", "{drafter}", "--prompts", "{prompts}"],
    "demo": ["--target", "{model}", "--drafter", "{drafter}"],
    "convert": ["{drafter}", "{new}", "--target", "{model}"],
}


def pinned(case, inputs, tmp_path):
    """The pinned command line of `case` (base first; a value given twice: the pinned one, last, wins)."""
    argv, flag = REGRESSIONS[case]
    values = {**inputs, "new": str(tmp_path / "new")}
    words = [argv[0], *BASES[argv[0]], *argv[1:]]
    # the pinned --target replaces the base's; --features-only trains nothing: no --out
    for drop in ["--target"] * ("--target" in argv[1:]) + ["--out"] * ("--features-only" in argv):
        i = words.index(drop)
        del words[i : i + 2]
    return [w.format(**values) for w in words], flag


@pytest.mark.parametrize("case", list(REGRESSIONS))
def test_issue_33_regressions_are_one_line(case, inputs, recorded, capfd, tmp_path):
    argv, flag = pinned(case, inputs, tmp_path)
    assert_contract(argv, REFUSED, [flag], capfd, recorded)


SABOTAGE = {
    # the dispatcher's filter loses InputError (what the refactor did: a plain ValueError rule applied to it)
    "filter": ("hf_eagle31.commands.is_input_error", lambda error: isinstance(error, (OSError, ModuleNotFoundError))),
    # the declared contracts are not run before the verb
    "checks": ("hf_eagle31.commands.check_arguments", lambda parser, args, argv=None: None),
    # argparse's usage block comes back before the error line
    "usage": ("hf_eagle31.commands.common.OneLineErrors.error", argparse.ArgumentParser.error),
    # the one-line rendering of a message is lost
    "one-line": ("hf_eagle31.commands.one_line", lambda error: f"{type(error).__name__}:\n{error}"),
}


@pytest.mark.parametrize("sabotage", list(SABOTAGE))
def test_a_broken_error_path_fails_the_contract(sabotage, inputs, recorded, capfd, tmp_path, monkeypatch):
    """The contract's core assertion catches a regression of the error path (commands/__init__.py, common.py,
    errors.py): each sabotage makes the pinned regressions it touches fail it. Argparse's own refusals (a bad type)
    go through the parsers' one-line `error`; the contract's through the dispatcher's filter."""
    by_argparse = {}
    for case in REGRESSIONS:
        argv, flag = pinned(case, inputs, tmp_path)
        by_argparse[case] = ": error: argument " in assert_contract(argv, REFUSED, [flag], capfd, recorded)
    monkeypatch.setattr(*SABOTAGE[sabotage])
    caught = set()
    for case in REGRESSIONS:
        argv, flag = pinned(case, inputs, tmp_path)
        try:
            assert_contract(argv, REFUSED, [flag], capfd, recorded)
        except AssertionError:
            caught.add(case)
    touched = {c for c, parsed in by_argparse.items() if parsed == (sabotage == "usage")}
    assert touched and caught == touched, (sabotage, sorted(touched - caught), sorted(caught - touched))
