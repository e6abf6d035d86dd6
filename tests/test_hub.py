"""Model cards (YAML metadata + measured numbers), `save_drafter` and the drafter's one-commit Hub upload (network
mocked); modeling/ (remote code) never imports hf_eagle31."""

import ast
import inspect
import json
import re
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import yaml
from huggingface_hub import ModelCard

from hf_eagle31.hub import load_eval_results, parse_card_metadata, push_drafter, render_model_card, save_drafter

from conftest import make_drafter, tiny_target


EVAL = {
    "results": [
        {
            "drafter": "eagle3.1",
            "suite": "mt-bench",
            "tau": 3.4172,
            "tokens_per_s": 41.28,
            "acceptance_per_depth": [0.8123, 0.6542, 0.5011],
        },
        {
            "drafter": "eagle3",
            "suite": "mt-bench",
            "tau": 2.9051,
            "tokens_per_s": 35.77,
            "acceptance_per_depth": [0.7764, 0.5408, 0.3919, 0.2513],
        },
    ]
}


@pytest.fixture
def drafter():
    return make_drafter(tiny_target(), "eagle3.1", draft_vocab_size=48)


@pytest.fixture
def eval_json(tmp_path):
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(EVAL))
    return path


def test_card_has_valid_metadata_and_the_measured_numbers(drafter, eval_json):
    card = render_model_card(
        drafter,
        eval_results=eval_json,
        base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
        repo_id="me/smollm2-eagle31",
        drafter_name="eagle3.1",
    )
    metadata = parse_card_metadata(card)
    assert metadata == yaml.safe_load(card.split("---\n")[1])
    assert metadata["library_name"] == "transformers" and metadata["license"] == "apache-2.0"
    assert metadata["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert {"speculative-decoding", "eagle3", "eagle3.1"} <= set(metadata["tags"])
    assert ModelCard(card).data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"  # what the Hub parses
    # the numbers, rounded as displayed, in a table row per result; missing depths shown as a dash
    assert "| **eagle3.1** | mt-bench | 3.42 | 0.81 | 0.65 | 0.50 | – |" in card
    assert "| eagle3 | mt-bench | 2.91 | 0.78 | 0.54 | 0.39 | 0.25 |" in card
    assert "41.3" not in card  # eval tok/s are not speed claims (bench measures speed)
    assert "assistant_model=drafter" in card and '"method": "eagle3"' in card and "EAGLE3" in card
    assert "me/smollm2-eagle31" in card and "[2, 4, 5]" in card and "${" not in card


def test_card_shows_draft_length_and_training_notes_when_given(drafter):
    rows = [dict(EVAL["results"][0], num_assistant_tokens=7)]
    card = render_model_card(drafter, eval_results=rows, training="Trained with `hf-eagle31 train`.")
    assert "| drafter | suite | K |" in card and "| mt-bench | 7 |" in card
    assert "## Training\n\nTrained with `hf-eagle31 train`." in card


def test_card_without_results_says_so_and_eagle3_is_tagged_as_such(tmp_path):
    drafter = make_drafter(tiny_target(), "eagle3")
    card = render_model_card(drafter)
    assert "eagle3.1" not in parse_card_metadata(card)["tags"] and "base_model" not in parse_card_metadata(card)
    assert "No evaluation results" in card and "| drafter |" not in card


def test_card_names_the_drafter_depth():
    target = tiny_target()
    assert "one decoder layer over the token embedding" in render_model_card(make_drafter(target, "eagle3.1"))
    deep = render_model_card(make_drafter(target, "eagle3.1", num_hidden_layers=3))
    assert "three captured target states, then 2 standard pre-norm decoder layers" in deep


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"results": []}, "at least one"),
        ({"results": [{**EVAL["results"][0], "tau": "fast"}]}, "tau"),
        ({"results": [{**EVAL["results"][0], "acceptance_per_depth": [1.5]}]}, r"\[0, 1\]"),
        ({"results": [{**EVAL["results"][0], "tau": 0.5}]}, ">= 1"),
    ],
)
def test_malformed_eval_results_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        load_eval_results(bad)


def test_save_drafter_writes_the_card(tmp_path, drafter, eval_json):
    save_drafter(drafter, tmp_path / "d", model_card={"eval_results": eval_json, "base_model": "org/target"})
    card = (tmp_path / "d" / "README.md").read_text()
    assert parse_card_metadata(card)["base_model"] == "org/target" and "3.42" in card
    save_drafter(drafter, tmp_path / "plain")  # default: a card, without numbers
    assert "No evaluation results" in (tmp_path / "plain" / "README.md").read_text()
    save_drafter(drafter, tmp_path / "none", model_card=False)
    assert not (tmp_path / "none" / "README.md").exists()
    save_drafter(drafter, tmp_path / "text", model_card="# my card\n")
    assert (tmp_path / "text" / "README.md").read_text() == "# my card\n"
    # a drafter loaded as remote code (its own copy of the classes) renders the same card
    from transformers import AutoModel

    remote = AutoModel.from_pretrained(tmp_path / "d", trust_remote_code=True)
    assert type(remote) is not type(drafter)
    save_drafter(remote, tmp_path / "again", model_card={"eval_results": eval_json, "base_model": "org/target"})
    assert (tmp_path / "again" / "README.md").read_text() == card


def test_save_pretrained_is_transformers_own_and_writes_no_card(tmp_path, drafter):
    drafter.save_pretrained(tmp_path / "d")
    assert {"config.json", "generation_config.json", "model.safetensors", "modeling_eagle3.py"} <= {
        p.name for p in (tmp_path / "d").iterdir()
    }
    assert not (tmp_path / "d" / "README.md").exists()


def test_card_says_whether_embeddings_are_stored(tmp_path, drafter):
    save_drafter(drafter, tmp_path / "small", include_embeddings=False)
    assert "not stored: taken from the target" in (tmp_path / "small" / "README.md").read_text()
    assert drafter.config.embeddings_in_checkpoint  # restored after the save


def test_modeling_never_imports_hf_eagle31():
    """modeling/ travels as remote code with every checkpoint: it imports torch, transformers and itself only."""
    modeling = Path(__file__).resolve().parents[1] / "modeling"
    files = sorted(modeling.glob("*.py"))
    assert files
    for path in files:
        source = path.read_text(encoding="utf-8")
        for number, line in enumerate(source.splitlines(), 1):  # grep: no import of the package, in any form
            assert not re.search(
                r"^\s*(from\s+hf_eagle31\b|import\s+hf_eagle31\b)|import_module\(\s*['\"]hf_eagle31", line
            ), f"{path.name}:{number}: {line}"
        for node in ast.walk(ast.parse(source)):  # and none hidden in a multi-name or parent-relative import
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "hf_eagle31" for a in node.names), f"{path.name}:{node.lineno}"
            elif isinstance(node, ast.ImportFrom):
                assert node.level <= 1, f"{path.name}:{node.lineno}: imports from outside modeling/"
                assert node.level == 1 or (node.module or "").split(".")[0] != "hf_eagle31", (
                    f"{path.name}:{node.lineno}"
                )


def test_the_drafter_keeps_transformers_save_and_push(drafter):
    from transformers import PreTrainedModel

    assert type(drafter).push_to_hub is PreTrainedModel.push_to_hub  # no override, no swallowed arguments
    assert "model_card" not in inspect.signature(type(drafter).save_pretrained).parameters


def test_push_to_hub_uploads_code_weights_and_card_in_one_commit(drafter, eval_json):
    commits = []

    class FakeApi:
        def create_repo(self, repo_id, **kwargs):
            return SimpleNamespace(repo_id=repo_id)

        def create_commit(self, repo_id, operations, **kwargs):
            files = {op.path_in_repo: op.path_or_fileobj for op in operations}
            readme = open(files["README.md"], encoding="utf-8").read() if "README.md" in files else ""
            commits.append((repo_id, sorted(files), readme))
            return "commit-url"

    with mock.patch("transformers.utils.hub.hf_api", return_value=FakeApi()):
        assert push_drafter(drafter, "me/tiny-eagle31", eval_results=eval_json, base_model="org/target") == "commit-url"
    assert len(commits) == 1
    repo_id, files, readme = commits[0]
    assert repo_id == "me/tiny-eagle31"
    assert {
        "config.json",
        "model.safetensors",
        "README.md",
        "modeling_eagle3.py",
        "configuration_eagle3.py",
        "drafter_common.py",
        "candidate_generator.py",
    } <= set(files)
    assert "3.42" in readme and parse_card_metadata(readme)["base_model"] == "org/target"
    assert "me/tiny-eagle31" in readme  # the snippets name the repo the card lives in


def test_transformers_push_to_hub_uploads_the_drafter_without_our_card(drafter):
    """`drafter.push_to_hub` is transformers' own: code, weights, config and generation_config, its generic card."""
    commits = []

    class FakeApi:
        def create_repo(self, repo_id, **kwargs):
            return SimpleNamespace(repo_id=repo_id)

        def create_commit(self, repo_id, operations, **kwargs):
            commits.append((repo_id, sorted(op.path_in_repo for op in operations), kwargs.get("commit_message")))
            return "commit-url"

    generic = ModelCard("---\nlibrary_name: transformers\n---\n\n# generic\n")
    with (
        mock.patch("transformers.utils.hub.hf_api", return_value=FakeApi()),
        mock.patch("transformers.utils.hub.create_and_tag_model_card", return_value=generic),
    ):
        assert drafter.push_to_hub("me/tiny", commit_message="first") == "commit-url"
    ((repo_id, files, message),) = commits
    assert repo_id == "me/tiny" and message == "first"
    assert {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "modeling_eagle3.py",
        "candidate_generator.py",
        "README.md",
    } <= set(files)
