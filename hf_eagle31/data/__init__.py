# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Text in, tokens out: the benchmark and conversation files (`conversations`), the evaluation prompt suites
(`suites`), and training data (`prepare`: conversations -> tokenized, self-distilled rows with a loss mask).
The package namespace is `prepare`'s (what `hf_eagle31.data` was in 0.1).
"""

from .prepare import (
    REGENERATED_DIR,
    REPORT_NAME,
    PrepareReport,
    assistant_char_spans,
    check_chat_template,
    keep_first_turns,
    load_prepared,
    normalize_conversation,
    prepare_dataset,
    regenerate_conversations,
    tokenize_conversation,
    tokenize_conversations,
    with_loss_on_every_token,
)


__all__ = [
    "PrepareReport",
    "normalize_conversation",
    "keep_first_turns",
    "check_chat_template",
    "assistant_char_spans",
    "tokenize_conversation",
    "tokenize_conversations",
    "regenerate_conversations",
    "prepare_dataset",
    "load_prepared",
    "with_loss_on_every_token",
    "REPORT_NAME",
    "REGENERATED_DIR",
]
