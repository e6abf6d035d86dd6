# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
What the `hf-eagle31` commands share: the arguments several verbs take, each with its check (`checked`), `--json`
reports, and the loaders of the commands that run a target with drafters (`eval`, `bench`, `drift`, `demo`, `info`).
Part of the command layer: the library never imports it.
"""

import argparse
import dataclasses
import json
import math
import os
import shutil

import torch

from ..data.suites import LONG_SOURCES, STANDARD_SOURCES, TEXT_FORMATS, load_chat_template
from ..errors import EXIT_USAGE, InputError
from ..evaluation.calibration import DRIFT_THRESHOLD, Calibration, forward_workload
from ..evaluation.policies import DEFAULT_CONFIDENCE_THRESHOLD, DEFAULT_COPY_TOKENS, DRAFTING_POLICIES, drafting_policy
from ..evaluation.prompts import read_prompt_file, suite_prompts
from ..evaluation.timing import compile_target_generation
from ..loading import DEFAULT_DRAFTER, check_drafter_config, native_bf16
from ..modeling import DRAFTER_CLASSES
from ..modeling.checkpoint_formats import NORM_OUTPUT_SEMANTICS, SEMANTICS_KEY, is_foreign_config
from ..modeling.configuration_common import FOREIGN_FORMAT_KEYS, mtp_target_message
from ..small_batch import enable
from ..small_batch import wanted as small_batch_wanted
from ..targets import DEFAULT_TARGET, TARGETS, _cached_copy, load_target


# ---------------------------------------------------------------------------------------------- the argument contract
# Every argument of every verb declares its contract where it is added, so the dispatcher checks all of it before the
# verb loads anything (a typo never costs minutes of compute or a finished run) and keeps no list of argument names:
#
# - the value: an argparse `type=` (`Integer`, `Number`: a malformed or out-of-range value is argparse's own one-line
#   `error:`), `choices=`, or `declare(action, check)` for a well-formed value that cannot work (an existing file
#   given as an output folder, a local model path that does not exist, a dataset folder given as a model);
# - where it applies: `declare(..., applies=When(...))` (the modes and companions it has an effect with) and
#   `excludes=When(...)` (combinations it contradicts); given anywhere else it is refused in one line, never ignored;
# - its bound: `declare(..., at_most=Bound(...))`, the largest value the data allows (an answer is no longer than
#   --max-new-tokens, a top-k no larger than the draft vocabulary, ...), read from config.json / the dataset's
#   metadata (`FACTS`) without loading weights; or the values the inputs allow: `within=Within(...)` (the keys of a
#   config.json, the policies given).
#
# `tests/test_cli_contract.py` walks every parser, feeds each declared argument the values users get wrong and
# checks each ends in one line naming it (or works); an argument without a declaration fails its coverage check.
# What needs a loaded model is checked in the library, which serves Python callers too.


class OneLineErrors:
    """`argparse.ArgumentParser` mixin: a bad argument is one line on stderr, `PROG: error: MESSAGE`, exit 2 (no
    usage block: `--help` shows it), like every other bad input."""

    hint = ""  # appended to the line (the top-level parser: where the commands are listed)

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {' '.join(str(message).split())}{self.hint}\n")


class CommandParser(OneLineErrors, argparse.ArgumentParser):
    """The parser of a verb (and of `hf-eagle31` itself)."""


class Integer:
    """argparse `type=`: an integer in [low, high] (None: unbounded on that side). `low`/`high` are read by the
    contract test."""

    def __init__(self, low=1, high=None):
        self.low, self.high = low, high
        self.__name__ = "integer"  # argparse's name for the type in its messages

    @property
    def rule(self) -> str:
        if self.high is None:
            return f">= {self.low}"
        return f"in [{self.low}, {self.high}]" if self.low is not None else f"<= {self.high}"

    def __call__(self, text):
        try:
            value = int(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid integer {text!r}: pass an integer {self.rule}") from None
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise argparse.ArgumentTypeError(f"must be {self.rule}, got {value}")
        return value


class IntegerList(Integer):
    """argparse `type=`: a comma list of integers, each in [low, high] (e.g. `--batch-size 1,4,8,16`)."""

    def __call__(self, text):
        items = str(text).split(",")
        values = [Integer.__call__(self, item) for item in items]
        return values


class Number:
    """argparse `type=`: a finite number in a range; `low_open` / `high_open` exclude the end itself (`note` says
    what a special value means, e.g. "0 = greedy"). `low`/`high`/`*_open` are read by the contract test."""

    def __init__(self, low=None, high=None, low_open=False, high_open=False, note=""):
        self.low, self.high, self.low_open, self.high_open, self.note = low, high, low_open, high_open, note
        self.__name__ = "number"

    @property
    def rule(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        note = f" ({self.note})" if self.note else ""
        return "a finite number" + (" " + " and ".join(parts) if parts else "") + note

    def accepts(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def __call__(self, text):
        try:
            value = float(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid number {text!r}: pass {self.rule}") from None
        if not self.accepts(value):
            raise argparse.ArgumentTypeError(f"must be {self.rule}, got {text}")
        return value


positive_int = Integer(1)  # counts and sizes where 0 or a negative number means nothing sensible
nonnegative_int = Integer(0)
temperature_value = Number(0, note="0 = greedy")
unit_interval = Number(0, 1, high_open=True, note="0 = off")
SEED = Integer(0, 2**32 - 1)  # numpy's seed range: a larger seed fails only when training starts


class Is:
    """A `When` condition on a value: `test(value)`, phrased `phrase` in messages ("only with --x PHRASE");
    `sample` is a value that satisfies it (the contract test passes it to reach the mode)."""

    def __init__(self, test, phrase, sample):
        self.test, self.phrase, self.sample = test, phrase, sample

    def __call__(self, value) -> bool:
        return value is not None and bool(self.test(value))

    def __str__(self):
        return self.phrase


def Above(low):  # noqa: N802  (reads as a condition: When(temperature=Above(0)))
    """`Is`: a number > `low`."""
    return Is(lambda value: value > low, f"> {low:g}", low + 1)


class When:
    """
    A condition on the parsed arguments and on the facts (`FACTS`): every `name=wanted` holds. `wanted` is True /
    False / None (a flag given or not, a value set or not), a value or a tuple of values, or a predicate (`Above`).
    `why` completes the refusal's message. `a & b`: both.
    """

    def __init__(self, why="", **conditions):
        self.terms = [(name, wanted, why) for name, wanted in conditions.items()]

    def __and__(self, other):
        both = When()
        both.terms = self.terms + other.terms
        return both

    @property
    def names(self):
        return [name for name, _, _ in self.terms]

    @staticmethod
    def _holds(actual, wanted) -> bool:
        if callable(wanted):
            return wanted(actual)
        if isinstance(wanted, bool) or wanted is None:
            return bool(actual) == bool(wanted)
        return actual in (wanted if isinstance(wanted, tuple) else (wanted,))

    def unmet(self, ctx):
        """The first `(name, actual, wanted, why)` that does not hold, or None when the condition holds."""
        for name, wanted, why in self.terms:
            actual = getattr(ctx, name)
            if not self._holds(actual, wanted):
                return name, actual, wanted, why
        return None


class Bound:
    """The largest value an argument may take, implied by the data: `limit(ctx)` (None: unknown here, e.g. a Hub
    model not downloaded: the library checks it later) and `what` it is, for the message. `defaults`: the default
    value is held to it too (a bound of the data itself, e.g. the target's context); a bound set by another
    argument (--max-new-tokens) holds only what was given, so a default never refuses what the user did set."""

    def __init__(self, limit, what, defaults=True):
        self.limit, self.what, self.defaults = limit, what, defaults


class Within:
    """The values an argument may take, implied by the inputs: `values(ctx)` (None: unknown here), `what` they are
    for the message; `sample` is one the contract test's inputs have."""

    def __init__(self, values, what, sample):
        self.values, self.what, self.sample = values, what, sample


@dataclasses.dataclass
class Contract:
    """What `declare` attaches to an argparse action (`action.contract`)."""

    check: object = None  # check(value, flag): raises InputError for a well-formed value that cannot work
    applies: When | None = None
    excludes: tuple = ()
    at_most: Bound | None = None
    within: Within | None = None


def declare(action, check=None, *, applies=None, excludes=(), at_most=None, within=None, flag=None):
    """Declares the contract of the argument `action` (what `add_argument` returned) beside its type and choices:
    `check(value, flag)` on each parsed value that is not None (each item of a list), where it `applies`, what it
    `excludes`, its data bound `at_most` or the values the data allows `within`. `flag` names it in messages (default:
    its first long option). Returns `action`."""
    excludes = (excludes,) if isinstance(excludes, When) else tuple(excludes)
    action.contract = Contract(check, applies, excludes, at_most, within)
    long = [s for s in action.option_strings if s.startswith("--")]
    action.check_flag = flag or (long[0] if long else action.metavar or action.dest)
    return action


def checked(action, check, flag=None):
    """`declare(action, check, flag=flag)`: an argument whose contract is a value check."""
    return declare(action, check, flag=flag)


def restrict(parser, when, *flags):
    """Narrows where the arguments named by `flags` apply to where `when` also holds (shared arguments that one
    mode of a verb does not read)."""
    for action in parser._actions:
        if set(action.option_strings) & set(flags):
            contract = action.contract
            contract.applies = when if contract.applies is None else contract.applies & when


def add_check(parser, check):
    """Declares `check(ctx)` on `parser`: a rule over several arguments that `When` cannot say (run after the
    per-argument contracts, before the verb)."""
    parser.contract_checks = [*getattr(parser, "contract_checks", []), check]


def add_fact(parser, name, compute):
    """Declares a fact of this verb's inputs, `compute(ctx)`, that `When` / `Bound` may name (see `FACTS`)."""
    parser.facts = {**getattr(parser, "facts", {}), name: compute}


class Context:
    """The parsed arguments plus the facts the contracts name (`FACTS` and the parser's own), each computed on first
    use; `given` is the set of dests that were on the command line."""

    def __init__(self, parser, args, given=frozenset()):
        self.parser, self.args, self.given = parser, args, given
        self._facts, self._known = {**FACTS, **getattr(parser, "facts", {})}, {}

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if hasattr(self.args, name):
            return getattr(self.args, name)
        if name not in self._known:
            if name not in self._facts:
                raise AttributeError(f"no argument or fact {name!r}")
            self._known[name] = self._facts[name](self)
        return self._known[name]

    def flag(self, dest) -> str:
        """How messages name the argument stored in `dest`."""
        for action in self.parser._actions:
            if action.dest == dest:
                return getattr(action, "check_flag", None) or (action.option_strings or [dest])[0]
        return dest


class _Unset(list):
    """What an argument not on the command line holds in `given_arguments`' second parse (a list: append actions
    copy and extend it)."""


def given_arguments(parser, argv) -> frozenset:
    """The dests of the arguments on the command line `argv` (not their defaults), abbreviations and `--x=v`
    included: argparse keeps a namespace's existing attributes for arguments that are not given."""
    namespace = argparse.Namespace(
        **{a.dest: _Unset() for a in parser._actions if a.dest is not argparse.SUPPRESS and a.dest != "help"}
    )
    parser.parse_args(argv, namespace=namespace)
    return frozenset(dest for dest, value in vars(namespace).items() if not (type(value) is _Unset and not value))


def _shown(value) -> str:
    return "'" + value + "'" if isinstance(value, str) and (not value or " " in value) else f"{value}"


def _condition_phrase(ctx, name, value) -> str:
    """`--flag` (a flag given), `--flag VALUE`, or for a fact its value."""
    if not hasattr(ctx.args, name):
        return f"{name.replace('_', ' ')} {_shown(value)}"
    return ctx.flag(name) if value is True else f"{ctx.flag(name)} {_shown(value)}"


def _where(ctx, name, actual, wanted, why) -> str:
    """Where an argument was given without effect: "without --flag", "with --flag VALUE (only with ...)", or for a
    fact the declaration's `why`."""
    why = f": {why}" if why else ""
    if not hasattr(ctx.args, name):
        return f"here{why}"
    if wanted is True:
        return f"without {ctx.flag(name)}{why}"
    where = "with " + _condition_phrase(ctx, name, actual)
    if not isinstance(wanted, bool) and wanted is not None:
        shown = "/".join(map(str, wanted)) if isinstance(wanted, tuple) else str(wanted)
        where += f" (only with {ctx.flag(name)} {shown})"
    return where + why


def _items(values) -> list:
    """The values of an argument one by one (a list argument's items; `nargs="+"` of a list type: flattened)."""
    items = values if isinstance(values, list) else [values]
    return [v for item in items for v in (item if isinstance(item, list) else [item])]


def _check_values(contract, flag, values):
    for value in _items(values):
        try:
            contract.check(value, flag)
        except InputError as error:  # the library's own message (e.g. read_prompt_file's): name the flag
            if flag in str(error):
                raise
            raise InputError(f"{flag}: {error}") from error


def check_contract(parser, args, argv=None):
    """
    Runs the declared contracts on the parsed `args` (`argv`: the command line, to tell given arguments from
    defaults), in order: the value checks of the arguments that always apply (the inputs the facts are read from),
    then where each given argument applies and what it excludes ("drop it" before "fix its value"), then the other
    arguments' value checks, each value's bound, and the parser's own rules (`add_check`). Raises the first
    `InputError`.
    """
    ctx = Context(parser, args, given_arguments(parser, argv) if argv is not None else frozenset())
    contracts = [(a, a.contract, a.check_flag) for a in parser._actions if getattr(a, "contract", None) is not None]
    for action, contract, flag in contracts:
        values = getattr(args, action.dest, None)
        if contract.check is not None and contract.applies is None and values is not None:
            _check_values(contract, flag, values)
    applicable = set()
    for action, contract, flag in contracts:
        # (evaluated only where it matters: a fact may read a file)
        needed = action.dest in ctx.given or contract.at_most is not None or contract.check is not None
        unmet = contract.applies.unmet(ctx) if contract.applies is not None and needed else None
        if unmet is None:
            applicable.add(action.dest)
        elif action.dest in ctx.given:
            raise InputError(f"{flag} has no effect {_where(ctx, *unmet)}; drop it.")
        if action.dest in ctx.given:
            for excluded in contract.excludes:
                if excluded.unmet(ctx) is None:
                    others = " ".join(_condition_phrase(ctx, name, getattr(ctx, name)) for name in excluded.names)
                    why = "".join(f": {why}" for _, _, why in excluded.terms[:1] if why)
                    raise InputError(f"{flag} cannot be combined with {others}{why}.")
    for action, contract, flag in contracts:
        values = getattr(args, action.dest, None)
        if contract.check is not None and contract.applies is not None and values is not None:
            if action.dest in applicable:
                _check_values(contract, flag, values)
    for action, contract, flag in contracts:
        values = getattr(args, action.dest, None)
        if contract.at_most is None or values is None or action.dest not in applicable:
            continue
        if not (contract.at_most.defaults or action.dest in ctx.given):
            continue
        limit = contract.at_most.limit(ctx)
        for value in _items(values):
            if limit is not None and value > limit:
                raise InputError(f"{flag} {value}: must be <= {limit:g} ({contract.at_most.what}).")
    for action, contract, flag in contracts:
        values = getattr(args, action.dest, None)
        if contract.within is None or values is None or action.dest not in applicable:
            continue
        allowed = contract.within.values(ctx)
        for value in _items(values):
            if allowed is not None and value not in allowed:
                shown = ", ".join(map(str, list(allowed)[:8])) + (", ..." if len(allowed) > 8 else "")
                raise InputError(f"{flag} {value}: must be {contract.within.what} ({shown or 'none'}).")
    for check in getattr(parser, "contract_checks", []):
        check(ctx)
    return ctx


# ---------------------------------------------------------------------------------------------- value checks
# `check(value, flag)` functions for `declare`: each refuses, in one line naming the flag and the fix, a well-formed
# value that cannot work, reading at most a config.json or a small file.


def check_text(value, flag):
    """A text that must say something (a prompt): not empty or blank."""
    if not str(value).strip():
        raise InputError(f"{flag} is empty: pass some text.")


def _path(value, flag, what) -> str:
    """`value` as a path (~ expanded), refused when empty."""
    if not str(value).strip():
        raise InputError(f"{flag} is empty: pass {what}.")
    return os.path.expanduser(str(value))


def _nearest_existing(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def check_output_path(path, flag, directory=True):
    """Raises a one-line InputError when `path` cannot be written (without creating anything)."""
    if path is None or (not directory and str(path) == "-"):  # "-": stdout
        return
    path = _path(path, flag, "a folder path" if directory else "a file path")
    if os.path.exists(path):
        if directory and not os.path.isdir(path):
            raise InputError(f"{flag} {path} is a file, not a directory: pass a directory path.")
        if not directory and os.path.isdir(path):
            raise InputError(
                f"{flag} {path} is a directory: pass a file path (e.g. {os.path.join(path, 'results.json')})."
            )
        if _read_only(path):
            raise InputError(f"{flag} {path} is on a read-only file system: pass a path on a writable one.")
        if not os.access(path, os.W_OK):
            raise InputError(f"{flag} {path} is not writable: pass a path you can write to.")
        return
    parent = _nearest_existing(path)
    if not os.path.isdir(parent):
        raise InputError(f"{flag} {path} cannot be created: {parent} is a file, not a directory.")
    if _read_only(parent):
        raise InputError(f"{flag} {path} cannot be created: {parent} is on a read-only file system.")
    if not os.access(parent, os.W_OK):
        raise InputError(f"{flag} {path} cannot be created: {parent} is not writable.")


def _read_only(path) -> bool:
    """Whether `path` lies on a file system mounted read-only (root's writes fail there too, unlike permissions)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_output_file(path, flag):
    check_output_path(path, flag, directory=False)


def check_answer_cache(value, flag):
    """`eval --answer-cache`: a folder to keep the answers in, or 'none' (in memory only)."""
    if str(value).strip().lower() != "none":
        check_output_path(value, flag)


def looks_like_local_path(name):
    """True for strings no Hub id looks like (absolute/relative/home paths, several slashes, file suffixes)."""
    name = str(name)
    return (
        name.startswith(("/", ".", "~"))
        or "\\" in name
        or name.count("/") > 1
        or name.endswith("/")
        or name.endswith((".json", ".jsonl", ".safetensors", ".bin", ".gguf", ".jinja"))
    )


def read_json_file(path) -> dict | None:
    """A small JSON object file (config.json, ...), or None when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _folder_kind(folder) -> str:
    """What a folder without the expected files holds, in words."""
    names = set(os.listdir(folder))
    if "dataset_info.json" in names or "state.json" in names:
        return "a prepared dataset"
    if "trainer_state.json" in names:
        return "a training checkpoint"
    if "config.json" in names:
        return "a model folder"
    return "an empty folder" if not names else "not a model, drafter or dataset folder"


def _is_drafter_config(config: dict) -> bool:
    return (
        "draft_vocab_size" in config
        or str(config.get("model_type", "")).endswith("_drafter")
        or is_foreign_config(config)
        or any(k in config for k in FOREIGN_FORMAT_KEYS)
    )


def _not_a_drafter(flag, name, config, fix):
    """The refusal of a model folder given as a drafter: the modeling code's own line for a target that carries MTP
    layers (what they are and why no drafter holds them), else what the folder is."""
    specific = mtp_target_message(config, name)
    if specific:
        return InputError(f"{flag}: {specific}")
    architectures = ", ".join(config.get("architectures") or []) or config.get("model_type")
    return InputError(f"{flag} {name} is a model ({architectures}), not a drafter checkpoint: {fix}.")


def _local_folder(name, flag, what):
    """The local folder `name` points at (its config.json read), None for a Hub id; refuses a missing local path,
    a file and a folder without config.json."""
    text = str(name)
    path = _path(name, flag, what)
    if not os.path.exists(path):
        if looks_like_local_path(text):
            raise InputError(f"{flag} {name} does not exist: pass {what}.")
        return None, None  # a Hub id: transformers resolves it
    if not os.path.isdir(path):
        raise InputError(f"{flag} {name} is a file, not a folder: pass {what}.")
    config = read_json_file(os.path.join(path, "config.json"))
    if config is None:
        kind = "a folder with an unreadable config.json" if os.path.isfile(os.path.join(path, "config.json")) else None
        raise InputError(f"{flag} {name} is {kind or _folder_kind(path)}, not {what.split(' (')[0]}: pass {what}.")
    return path, config


def check_model_path(name, flag):
    """A target model (`--target`): the embedded name, a Hub id, a .gguf file or a model folder with config.json that
    is not a drafter checkpoint."""
    if name is None or str(name) in TARGETS:
        return
    what = f"a model folder, a .gguf file or a Hub id namespace/name (default: {DEFAULT_TARGET})"
    if str(name).endswith(".gguf"):
        if not os.path.isfile(_path(name, flag, what)):
            raise InputError(f"{flag} {name} does not exist: pass an existing .gguf file.")
        return
    _, config = _local_folder(name, flag, what)
    if config is not None and _is_drafter_config(config):
        raise InputError(
            f"{flag} {name} is a drafter checkpoint ({config.get('model_type')}), not a target model: pass it as the "
            "drafter, and the model it drafts for here."
        )


def check_drafter_path(name, flag):
    """A drafter checkpoint: a Hub id or a folder with config.json that is not a plain model (what config.json
    says about the format is checked with --trust-remote-code: `check_drafter_configs`)."""
    if name is None:
        return
    _, config = _local_folder(name, flag, "a drafter checkpoint folder (or a Hub id namespace/name)")
    if config is not None and not _is_drafter_config(config) and "auto_map" not in config:
        raise _not_a_drafter(flag, name, config, "pass a drafter folder (the model it drafts for goes to --target)")


def check_drafter_source(name, flag):
    """`convert SRC`: a drafter checkpoint in any format (hf-eagle31, EAGLE, vLLM, speculators) or a Hub id."""
    _, config = _local_folder(name, flag, "a drafter checkpoint folder in any format (or a Hub id namespace/name)")
    if config is None:
        return
    architectures = config.get("architectures") or []
    if not (_is_drafter_config(config) or any("Eagle" in a or "Speculator" in a for a in architectures)):
        raise _not_a_drafter(flag, name, config, "pass a drafter folder (hf-eagle31, EAGLE, vLLM or speculators)")


def check_dataset_path(path, flag):
    """A dataset written by `prepare-data` (`--data`)."""
    what = "the --out folder of `hf-eagle31 prepare-data`"
    path = _path(path, flag, what)
    if not os.path.exists(path):
        raise InputError(f"{flag} {path} does not exist: pass {what}.")
    if not os.path.isdir(path):
        raise InputError(f"{flag} {path} is a file, not a folder: pass {what}.")
    names = os.listdir(path)
    if "dataset_info.json" not in names and "state.json" not in names:
        raise InputError(f"{flag} {path} is {_folder_kind(path)}, not a prepared dataset: pass {what}.")


def check_prompt_file(path, flag):
    """A JSON-lines prompt file (`--prompts`), read whole (prompt files are small): a bad line fails here."""
    path = _path(path, flag, "a .jsonl file of prompts")
    if os.path.isdir(path):
        raise InputError(f"{flag} {path} is a folder: pass a .jsonl file with one {{'prompt': ...}} per line.")
    if not read_prompt_file(path):
        raise InputError(f"{flag} {path} holds no prompts: write one {{'prompt': ...}} per line.")


def check_chat_template(value, flag, text_formats=True):
    """A mistyped template path is an error, never template text; a template that never reads `messages` would
    render every prompt the same. `text_formats`: the names of `TEXT_FORMATS` are accepted too."""
    if os.path.isdir(os.path.expanduser(str(value))):
        raise InputError(f"{flag} {value} is a folder: pass a .jinja file or a Jinja string.")
    text = load_chat_template(value, text_formats=text_formats)
    if text_formats and text in TEXT_FORMATS:
        return
    import jinja2
    import jinja2.meta

    try:
        variables = jinja2.meta.find_undeclared_variables(jinja2.Environment().parse(text))
    except jinja2.TemplateSyntaxError as error:
        raise InputError(f"{flag} {value}: not a Jinja template ({error.message}, line {error.lineno}).") from None
    if "messages" not in variables:
        raise InputError(f"{flag} {value}: the template never reads `messages`: pass a chat template (a .jinja file).")


def check_jinja_chat_template(value, flag):
    """`check_chat_template` without the text formats: a Jinja chat template (file or string) only."""
    check_chat_template(value, flag, text_formats=False)


def check_conversation_source(value, flag):
    """`prepare-data --source`: 'sharegpt', a .json/.jsonl file, a saved dataset or data folder, or a datasets
    name."""
    text = str(value)
    what = "'sharegpt', a .json/.jsonl file of conversations, a dataset folder or a datasets name"
    path = _path(value, flag, what)
    if text == "sharegpt":
        return
    if os.path.isfile(path):
        if not path.endswith((".json", ".jsonl")):
            raise InputError(f"{flag} {value}: unsupported file type; pass {what}.")
    elif os.path.isdir(path):
        data = (".json", ".jsonl", ".parquet", ".csv", ".arrow")
        names = os.listdir(path)
        # a model, drafter or checkpoint folder holds .json files too, but no conversations
        model = any(n in ("config.json", "trainer_state.json") or n.endswith((".safetensors", ".bin")) for n in names)
        if "state.json" not in names and (model or not any(n.endswith(data) for n in names)):
            raise InputError(f"{flag} {value} is {_folder_kind(path)} without conversations: pass {what}.")
    elif looks_like_local_path(text):
        raise InputError(f"{flag} {value} does not exist: pass {what}.")


def check_device(value, flag):
    """`--device`: a torch device that exists here."""
    try:
        device = torch.device(str(value).strip())
    except (RuntimeError, ValueError):
        raise InputError(f"{flag} {value!r}: not a device; pass cpu or cuda (cuda:N).") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"{flag} {value}: no CUDA device here; pass cpu.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(f"{flag} {value}: there are {torch.cuda.device_count()} CUDA device(s) here.")
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"{flag} {value}: pass cpu or cuda.")


def check_policies(value, flag):
    """`--policies a,b`: every name a drafting policy (`drafting_policy`'s message, with the flag)."""
    names = [n.strip() for n in str(value).split(",") if n.strip()]
    if not names:
        raise InputError(f"{flag} is empty: pass drafting policies ({', '.join(DRAFTING_POLICIES)}).")
    for name in names:
        try:
            drafting_policy(name)
        except InputError as error:
            raise InputError(f"{flag}: {error}") from None


# ---------------------------------------------------------------------------------------------- facts
# What the declared bounds and conditions know about the inputs, read without loading any weights. A fact is None
# where it is not known here (a Hub model not downloaded, the embedded target not built yet): its bound is then
# checked by the library when the model is loaded.


def local_model_config(name_or_path) -> dict | None:
    """The (text) config.json of a local model folder or of the embedded target's cached copy, else None."""
    name = DEFAULT_TARGET if name_or_path is None else str(name_or_path)
    folder = _cached_copy(name) if name in TARGETS else os.path.expanduser(name)
    config = read_json_file(os.path.join(folder, "config.json")) if folder and os.path.isdir(folder) else None
    if config is not None and isinstance(config.get("text_config"), dict):
        config = config["text_config"]
    return config


def _drafter_configs(ctx) -> list:
    """config.json of every local drafter (`--drafter`, demo's default: the shipped drafter)."""
    names = getattr(ctx.args, "drafter", None)
    if names is None and ctx.parser.prog.endswith(" demo"):
        names = [str(DEFAULT_DRAFTER)]
    names = names if isinstance(names, list) else [] if names is None else [names]
    configs = [local_model_config(n) for n in names if os.path.isdir(os.path.expanduser(str(n)))]
    return [c for c in configs if c is not None]


def _draft_vocab_size(ctx):
    sizes = [c.get("draft_vocab_size") or c.get("vocab_size") for c in ctx.drafter_configs]
    sizes = [s for s in sizes if isinstance(s, int)]
    return min(sizes) if sizes else None


FACTS = {
    "target_config": lambda ctx: local_model_config(getattr(ctx.args, "target", None)),
    "context_length": lambda ctx: (ctx.target_config or {}).get("max_position_embeddings"),
    "vocab_size": lambda ctx: (ctx.target_config or {}).get("vocab_size"),
    "hidden_size": lambda ctx: (ctx.target_config or {}).get("hidden_size"),
    "num_hidden_layers": lambda ctx: (ctx.target_config or {}).get("num_hidden_layers"),
    "drafter_configs": _drafter_configs,
    "draft_vocab_size": _draft_vocab_size,
}

# Bounds several verbs share.
# (a default longer than a small target's context is left to the library: prepare-data's 2048-token truncation
# is a no-op for shorter data)
WITHIN_CONTEXT = Bound(lambda ctx: ctx.context_length, "the target's context (max_position_embeddings)", defaults=False)
WITHIN_ANSWER = Bound(
    lambda ctx: getattr(ctx.args, "max_new_tokens", None),
    "--max-new-tokens (no draft is longer than the answer)",
    defaults=False,
)


def check_drafter_configs(ctx):
    """Each local drafter's config.json against what this release loads (`loading.check_drafter_config`: a foreign
    format to convert, an unknown drafter type, a model that is not a drafter), with --trust-remote-code."""
    names = getattr(ctx.args, "drafter", None)
    for name in names if isinstance(names, list) else [] if names is None else [names]:
        path = os.path.expanduser(str(name))
        config = read_json_file(os.path.join(path, "config.json")) if os.path.isdir(path) else None
        if config is not None:
            check_drafter_config(config, name, getattr(ctx.args, "trust_remote_code", False))


# ---------------------------------------------------------------------------------------------- argument adders


def add(parser, *names, check=None, applies=None, excludes=(), at_most=None, within=None, flag=None, **kwargs):
    """`parser.add_argument(*names, **kwargs)` with its contract declared (`declare`)."""
    action = parser.add_argument(*names, **kwargs)
    return declare(action, check, applies=applies, excludes=excludes, at_most=at_most, within=within, flag=flag)


def add_count_argument(parser, *names, **kwargs):
    """An integer >= 1 (`positive_int`), with its contract (`add`)."""
    return add(parser, *names, type=positive_int, **kwargs)


def add_output_dir_argument(parser, *names, flag=None, **kwargs):
    """An output folder, refused before any compute when it is a file or cannot be created / written."""
    return add(parser, *names, check=check_output_path, flag=flag, **kwargs)


def add_model_argument(parser, *names, flag=None, **kwargs):
    """A target model (folder, .gguf or Hub id), refused when it is a local path that does not exist or a folder of
    another kind."""
    return add(parser, *names, check=check_model_path, flag=flag, **kwargs)


def add_drafter_argument(parser, *names, **kwargs):
    """A drafter checkpoint (folder or Hub id); its config.json is checked with --trust-remote-code."""
    action = add(parser, *names, check=check_drafter_path, **kwargs)
    if check_drafter_configs not in getattr(parser, "contract_checks", []):
        add_check(parser, check_drafter_configs)
    return action


def write_json_report(path, report, announce=True):
    """Writes a command's report as indented JSON (creating the folder) and, with `announce`, prints `wrote PATH`.
    `-` writes it to stdout."""
    if str(path) == "-":
        print(json.dumps(report, indent=1))
        return path
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    if announce:
        print(f"wrote {path}")
    return path


# ---------------------------------------------------------------------------------------------- arguments


def add_target_argument(parser, help="target model: Hub id, folder or .gguf (default: embedded SmolLM2-135M-Instruct)"):
    add_model_argument(parser, "--target", default=None, help=help)


def needs_own_code(names) -> bool:
    """Whether any of the drafters `names` (None: none) may run code of its own: a Hub id (not read here), or a
    local checkpoint that is not an hf-eagle31 drafter (`--trust-remote-code` has an effect only on those)."""
    for name in names if isinstance(names, list) else [] if names is None else [names]:
        path = os.path.expanduser(str(name))
        config = read_json_file(os.path.join(path, "config.json")) if os.path.isdir(path) else None
        if config is None or config.get("model_type") not in DRAFTER_CLASSES:
            return True
    return False


def norm_output_undecided(name, source_format=None) -> bool:
    """Whether `--norm-output-semantics` decides anything for the drafter checkpoint `name` (read as `source_format`,
    default: detected): a SpecForge / EAGLE `midlayer` checkpoint whose config.json says norm_output: true without
    recording its meaning (`modeling.checkpoint_formats.norm_output_on_import`). A Hub id: True (read later)."""
    path = os.path.expanduser(str(name))
    if not os.path.isdir(path):
        return True
    config = read_json_file(os.path.join(path, "config.json")) or {}
    switch = config.get("norm_output", (config.get("eagle_config") or {}).get("norm_output", False))
    if not switch or config.get(SEMANTICS_KEY) is not None:
        return False
    if source_format is None:
        if not is_foreign_config(config) or "speculators_model_type" in config:
            return False
        from ..convert.checkpoint import detect_format  # EAGLE (midlayer.*) vs vLLM: by weight names

        source_format = detect_format(path)
    return source_format == "eagle"


def _drafter_names(ctx) -> list:
    names = getattr(ctx.args, "drafter", None)
    return names if isinstance(names, list) else [] if names is None else [names]


FACTS["norm_output_undecided"] = lambda ctx: any(norm_output_undecided(n) for n in _drafter_names(ctx))


REMOTE_CODE = When("hf-eagle31 drafters load with this package's classes and run no code of their own", own_code=True)
FACTS["own_code"] = lambda ctx: needs_own_code(getattr(ctx.args, "drafter", None))


def add_trust_remote_code_argument(parser, applies=REMOTE_CODE):
    add(
        parser,
        "--trust-remote-code",
        action="store_true",
        applies=applies,
        help="let a --drafter that is not an hf-eagle31 checkpoint run its own code (hf-eagle31 "
        "drafters load with this package's classes and never need it)",
    )
    # EAGLE / SpecForge / vLLM / speculators drafters load converted in memory (`convert`'s rules), so the one
    # choice a SpecForge checkpoint can need is asked for here too (`loading.load_drafter`).
    add(
        parser,
        "--norm-output-semantics",
        choices=NORM_OUTPUT_SEMANTICS,
        default=None,
        applies=When(
            "it only says what norm_output: true means in a SpecForge (midlayer) drafter that does not record it",
            norm_output_undecided=True,
        ),
        help="what norm_output: true means in a SpecForge (midlayer) --drafter that does not record it: "
        "post-norm-feed (SpecForge from PR #879) or pre-norm-feed (before it); see `hf-eagle31 convert --help`",
    )


def add_drafter_dtype_argument(parser, default="same"):
    add(
        parser,
        "--drafter-dtype",
        default=default,
        choices=["same", "auto", "float32", "bfloat16"],
        help=f"drafter dtype (default: {default}; same = the target's, auto = bf16 where bf16 "
        "matmuls are native). The target verifies every token, so a bf16 drafter beside an "
        "fp32 target keeps greedy output exact and halves the drafter's weight traffic",
    )


def add_compile_argument(parser):
    add(
        parser,
        "--compile-drafter",
        action="store_true",
        help="run the drafter's forward through torch.compile(dynamic=True) (compiles on first use, "
        "seconds per shape family; see benchmarks/chain_step_cost.py for what it saves)",
    )
    add(
        parser,
        "--compile-target",
        action="store_true",
        help="every method (plain, prompt lookup, drafter) decodes with a static target cache and the "
        "target's forward compiled by generate (a StaticCache per call + compile_config; "
        "minutes of compilation on a CPU, excluded by the warm-up)",
    )


def _require_compiler(device, flag):
    if device.type == "cpu" and not any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "c++", "clang++")):
        raise InputError(
            f"{flag} needs a C++ compiler on the PATH for torch.compile on the CPU: install g++ (or set "
            "CXX), or drop the flag."
        )


def apply_compile_argument(args, drafter, target):
    """`--compile-drafter`: `drafter.forward = torch.compile(drafter.forward, dynamic=True)`; `--compile-target`:
    `compile_target_generation(target)`. Returns `{"drafter": bool, "target": bool}` (what was compiled). Refused
    in one line where torch.compile's CPU backend has no C++ compiler to call."""
    done = {
        "drafter": bool(getattr(args, "compile_drafter", False)),
        "target": bool(getattr(args, "compile_target", False)),
    }
    if done["drafter"]:
        _require_compiler(drafter.device, "--compile-drafter")
        drafter.forward = torch.compile(drafter.forward, dynamic=True)
    if done["target"]:
        _require_compiler(target.device, "--compile-target")
        compile_target_generation(target)
    return done


def add_json_argument(parser):
    add(parser, "--json", default=None, check=check_output_file, help="write the results as JSON here (- : to stdout)")


def add_chat_template_argument(parser, help, check=None, **contract):
    add(parser, "--chat-template", default=None, check=check or check_chat_template, help=help, **contract)


def _minus(a, b):
    return None if a is None or b is None else a - b


def add_common_arguments(parser, multiple_drafters=False):
    """The target, drafter(s), prompts, chat template and dtype options of `eval`, `bench` and `drift`."""
    add_target_argument(parser)
    if multiple_drafters:
        add_drafter_argument(
            parser,
            "--drafter",
            action="append",
            required=True,
            help="drafter checkpoint (folder or Hub id); repeat to compare drafters side by side",
        )
    else:
        add_drafter_argument(parser, "--drafter", required=True, help="drafter checkpoint (folder or Hub id)")
    add_trust_remote_code_argument(parser)
    add(
        parser,
        "--prompts",
        default=None,
        check=check_prompt_file,
        help="JSON-lines prompts: 'prompt', 'turns' or 'messages' per line",
    )
    suites = When("a --prompts file replaces the suites", prompts=None)
    add(
        parser,
        "--suite",
        default="standard",
        choices=["standard", "perturbed", "long", "all", "heldout"],
        applies=suites,
        help="prompt suite used when no --prompts file is given (default standard)",
    )
    add(
        parser,
        "--sources",
        nargs="+",
        default=None,
        choices=list(dict.fromkeys(STANDARD_SOURCES + LONG_SOURCES)),
        applies=suites & When("the heldout suite has one source", suite=("standard", "perturbed", "long", "all")),
        help="restrict the suites to these sources (e.g. mtbench gsm8k; long: pg-essays hotpotqa)",
    )
    add_count_argument(
        parser,
        "--long-lengths",
        nargs="+",
        default=None,
        applies=suites & When("only the long suite has lengths", suite=("long", "all")),
        at_most=Bound(
            lambda ctx: _minus(ctx.context_length, getattr(ctx.args, "max_new_tokens", 0)),
            "the target's context (max_position_embeddings) minus --max-new-tokens",
            defaults=False,
        ),
        help="prompt lengths in tokens for the long suite (default 2048 4096 7168)",
    )
    add_count_argument(
        parser,
        "--num-prompts",
        default=None,
        help="first N prompts of --prompts; with a suite, N per source (per source and length for long)",
    )
    add_chat_template_argument(
        parser, help="a .jinja file (or 'plain' / 'alpaca' text format) replacing the tokenizer's chat template"
    )
    add(parser, "--system-prompt", default=None, help="system prompt for every prompt")
    add(parser, "--dtype", default="float32", choices=["float32", "bfloat16"], help="target/drafter dtype")
    add_drafter_dtype_argument(parser)
    add_device_argument(parser)
    add_small_batch_argument(parser)


def add_device_argument(parser, help="cpu or cuda (default: cuda when available)", **contract):
    add(parser, "--device", default=None, check=check_device, help=help, **contract)


def add_small_batch_argument(parser):
    add(
        parser,
        "--small-batch-linears",
        default="auto",
        choices=["auto", "on", "off"],
        help="route the target's fp32 CPU linear layers through the product that makes a K+1-token "
        "verification cost about a 1-token forward (hf_eagle31.small_batch; auto: on for an "
        "fp32 target on the CPU)",
    )


def apply_small_batch_argument(args, target):
    """Enables `small_batch` on `target` as `--small-batch-linears` asks; returns whether it is on."""
    if small_batch_wanted(getattr(args, "small_batch_linears", "off"), target):
        return enable(target) > 0
    return False


# ---------------------------------------------------------------------------------------------- loaders


def policies_from_args(args):
    """`{name: generate options}` from `--policies a,b --confidence-threshold T --copy-tokens N` (empty: none)."""
    names = [n.strip() for n in args.policies.split(",") if n.strip()] if args.policies else []
    return {name: drafting_policy(name, args.confidence_threshold, args.copy_tokens) for name in names}


def _policy_names(ctx) -> list:
    """The drafting policies `--policies` and `--policy` name."""
    values = (getattr(ctx.args, "policies", None), getattr(ctx.args, "policy", None))
    return [n.strip() for value in values if value for n in str(value).split(",") if n.strip()]


FACTS.update(
    {
        "policy_names": _policy_names,
        # a confidence policy without its own @<threshold> takes --confidence-threshold
        "threshold_taken": lambda ctx: any(
            "confidence" in name.partition("@")[0] and not name.partition("@")[1] for name in ctx.policy_names
        ),
        "copy_taken": lambda ctx: any("copy" in name.partition("@")[0] for name in ctx.policy_names),
    }
)


def add_policy_arguments(parser):
    add(
        parser,
        "--policies",
        default=None,
        check=check_policies,
        help=f"comma-separated drafting policies to compare beside each drafter as shipped "
        f"({', '.join(DRAFTING_POLICIES)}; a confidence policy may set its own threshold: "
        "confidence@0.2)",
    )
    add(
        parser,
        "--confidence-threshold",
        type=unit_interval,
        default=DEFAULT_CONFIDENCE_THRESHOLD,
        applies=When(
            "it is the threshold of the confidence policies of --policies/--policy without their own @<threshold>",
            threshold_taken=True,
        ),
        help="assistant_confidence_threshold of the confidence policies without their own @<threshold> "
        f"(default {DEFAULT_CONFIDENCE_THRESHOLD}, the shipped drafters' value)",
    )
    add_count_argument(
        parser,
        "--copy-tokens",
        default=DEFAULT_COPY_TOKENS,
        applies=When("it is the copied span of the copy policies of --policies/--policy", copy_taken=True),
        help=f"prompt_lookup_num_tokens of the copy policies: longest copied span (default {DEFAULT_COPY_TOKENS})",
    )


def load_target_for_cli(args):
    """`(model, tokenizer)` for `--target` (None = the embedded SmolLM2-135M-Instruct) in `--dtype`, with
    `--small-batch-linears` applied."""
    dtype = getattr(torch, args.dtype)
    device = getattr(args, "device", None) or ("cuda" if torch.cuda.is_available() else "cpu")
    target, tokenizer = load_target(args.target, dtype=dtype, device=device)
    apply_small_batch_argument(args, target)
    return target, tokenizer


def drafter_dtype(args, device="cpu"):
    """`--drafter-dtype` as a torch dtype (None = the target's; "auto" = bf16 where bf16 matmuls are native)."""
    value = getattr(args, "drafter_dtype", "same")
    if value == "auto":
        return torch.bfloat16 if native_bf16(device) else None
    return None if value in (None, "same") else getattr(torch, value)


def drafter_options(args, device="cpu") -> dict:
    """How a verb's drafters load: its --trust-remote-code, --drafter-dtype and --norm-output-semantics, as keyword
    arguments of `loading.load_drafter` / `load_drafters`."""
    return {
        "trust_remote_code": getattr(args, "trust_remote_code", False),
        "dtype": drafter_dtype(args, device),
        "norm_output_semantics": getattr(args, "norm_output_semantics", None),
    }


def prompts_from_args(args, tokenizer, default_suite="standard"):
    """The prompts of `--prompts FILE` (first `--num-prompts`), or of `--suite` / `--sources` / `--long-lengths`."""
    if getattr(args, "prompts", None):
        return read_prompt_file(args.prompts, args.num_prompts)
    return suite_prompts(
        getattr(args, "suite", None) or default_suite,
        tokenizer,
        args.num_prompts,
        getattr(args, "long_lengths", None),
        args.chat_template,
        getattr(args, "sources", None),
    )


def add_calibration_arguments(parser):
    """`--repeats`, `--strict` and `--max-drift`, shared by `bench` and `eval`."""
    add_count_argument(
        parser,
        "--repeats",
        default=3,
        help="passes over the prompts; speeds are the median over passes, with min/max (default 3)",
    )
    add(
        parser,
        "--strict",
        action="store_true",
        help="exit non-zero instead of flagging numbers when the calibration drifted or the machine "
        "was busy at the start",
    )
    add(
        parser,
        "--max-drift",
        type=Number(0, low_open=True),
        default=DRIFT_THRESHOLD,
        help=f"calibration drift that flags a run (default {DRIFT_THRESHOLD}: 15%%)",
    )


def calibration_from_args(args, target) -> Calibration:
    """The calibration of a `bench` / `eval` run: a fixed forward of `target`, with `--max-drift`."""
    return Calibration(forward_workload(target), drift_threshold=args.max_drift, device=target.device)
