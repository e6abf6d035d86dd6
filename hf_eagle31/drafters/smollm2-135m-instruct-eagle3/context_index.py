# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Copy branches from the context (SuffixDecoding-style): an incremental index over the sequence's token ids (prompt +
generated) that finds the longest earlier match of its suffix and proposes what followed it, from several earlier
occurrences, as long as the context goes on.

Index: for each n in `ngram_sizes` (1, 2, 4, ..., 32) a dict from the hash of an n-gram to the end positions of its
occurrences, in order (polynomial prefix hashes: an n-gram's hash costs O(1) for any n). `extend(tokens)` adds one
entry per size per new token (O(new tokens); a long agent log is never rescanned). A hash collision only adds a
candidate; match lengths are then measured on the tokens.

Query (`continuations`), for a sequence x_0..x_{T-1}:
  1. n* = the largest indexed size whose suffix n-gram occurred before (an occurrence ending at e < T - 1). Every
     earlier position matching >= n* tokens is in that size's list, so the longest match is among its entries.
  2. occurrences, best first: the last `max_candidates` entries of size n*'s list, each with its exact match length
         l_e = max { l <= max_match : x_{e-l+1..e} = x_{T-l..T-1} }
     sorted by (l_e, e) (longest first, then most recent); then the new entries of the next smaller size (they match
     fewer tokens than n*, else they would be in n*'s list), and so on down to the largest size <= `min_match`,
     until `max_occurrences` are found. Each proposes its continuation x_{e+1 .. e+max_tokens} (up to the end of the
     sequence: as long as the context supports it).
  3. support[k][i] = how many occurrences agree with continuation k on its first i + 1 tokens (from the common-prefix
     lengths of the continuations in lexicographic order); agreement[k][i] = support[k][i] / support[k][i - 1] (support[k][-1] = K), the share of
     the occurrences that got here and continue the same way: a frequency weight for `CopyAcceptanceModel`.
  4. up to `max_branches` distinct continuations, in rank order, skipping one that is a prefix of a chosen one (it
     adds no node).

`add_copy_branches` merges the continuations into a draft tree (grow_tree's format), sharing prefixes with the
drafter's nodes and with each other, and returns per-node copy features for the acceptance model.

Host cost: Python lists and dicts, no tensor op (tens of tokens per cycle: a list slice comparison costs less than a
torch op's dispatch; benchmarks/planner_cost.py). Token ids are target ids. This file travels with every Hub
checkpoint (remote code): it imports the standard library only.
"""

from typing import NamedTuple


NGRAM_SIZES = (1, 2, 4, 8, 16, 32)
# Polynomial hashing modulo a Mersenne prime: an n-gram's hash is a difference of two prefix hashes, O(1) per size
# per token whatever n. A collision only adds a candidate, whose match length is then measured on the tokens.
_MODULUS = (1 << 61) - 1
_BASE = 1_000_000_007


def _as_list(x) -> list:
    return x.tolist() if hasattr(x, "tolist") else list(x)


class Continuation(NamedTuple):
    """One proposed copy (Python lists: planning runs on the host; `torch.tensor(c.tokens)` is what
    `tree_drafting.add_copy_branch` takes). tokens (L,) target ids; support (L,) occurrences agreeing up to each
    token; agreement (L,) support[i] / support[i - 1]; match_length l of its best occurrence; start: the position of
    its first token in the sequence; occurrences K considered."""

    tokens: list
    support: list
    agreement: list
    match_length: int
    start: int
    occurrences: int


class ContextIndex:
    """
    Incremental n-gram index over a growing sequence of token ids (see the module docstring).

    ContextIndex(tokens=None)            tokens: (T,) ids, a tensor or a list (the prompt)
    extend(tokens)                       append new ids (the accepted tokens of a cycle)
    longest_match() -> (length, end)     the longest earlier suffix match (0, -1 if none)
    continuations(max_tokens, ...)       up to `max_branches` Continuations, best first
    """

    def __init__(self, tokens=None, ngram_sizes=NGRAM_SIZES, max_match: int = 64):
        sizes = tuple(sorted({int(n) for n in ngram_sizes}))
        if not sizes or sizes[0] < 1 or max_match < 1:
            raise ValueError(f"ContextIndex(ngram_sizes={ngram_sizes}, max_match={max_match}): use sizes >= 1.")
        self.sizes, self.max_match = sizes, int(max_match)
        self.ids: list[int] = []
        self.prefix = [0]  # polynomial prefix hashes: prefix[i] = hash of ids[:i]
        self.powers = {n: pow(_BASE, n, _MODULUS) for n in sizes}
        self.positions = {n: {} for n in sizes}  # n -> {hash of an n-gram: [end positions]}
        if tokens is not None:
            self.extend(tokens)

    def __len__(self) -> int:
        return len(self.ids)

    def _hash(self, end: int, n: int) -> int:
        """Hash of the n-gram ending at position `end` (a difference of prefix hashes: O(1) for any n)."""
        prefix = self.prefix
        return (prefix[end + 1] - prefix[end + 1 - n] * self.powers[n]) % _MODULUS

    def extend(self, tokens) -> None:
        ids, prefix = self.ids, self.prefix
        start = len(ids)
        for t in _as_list(tokens):
            ids.append(int(t))
            prefix.append((prefix[-1] * _BASE + int(t) + 1) % _MODULUS)
        tables = [(n, self.positions[n], self.powers[n]) for n in self.sizes]
        for p in range(start, len(ids)):
            for n, table, power in tables:
                if n > p + 1:
                    break
                key = (prefix[p + 1] - prefix[p + 1 - n] * power) % _MODULUS
                hits = table.get(key)
                if hits is None:
                    table[key] = [p]
                else:
                    hits.append(p)

    def _earlier(self, n):
        """Earlier end positions of the suffix n-gram (the suffix itself excluded), oldest first."""
        end = len(self.ids) - 1
        hits = self.positions[n].get(self._hash(end, n), ())
        return hits[:-1] if hits and hits[-1] == end else hits

    def _match_length(self, e: int, at_least: int) -> int:
        """Exact length of the match ending at e (capped at max_match), given that the hashes say it is >= at_least
        (a 61-bit collision is never worth a check: a wrong copy is only a rejected draft). Extended 16 tokens at a
        time by slice comparisons, then by halving the chunk that differs."""
        ids, t, cap = self.ids, len(self.ids), min(self.max_match, e + 1)
        length = min(at_least, cap)
        step = 16
        while length < cap and step:
            step = min(step, cap - length)
            if ids[e - length - step + 1 : e - length + 1] == ids[t - length - step : t - length]:
                length += step
            else:
                step //= 2
        return length

    def _occurrences(self, min_match, max_candidates, max_occurrences):
        """[(match length, end)] best first: the longest matches, then the most recent. Sizes are visited from the
        largest hit down; a size's new entries match fewer tokens than the larger size's (else they would be in its
        list), so the walk stops once `max_occurrences` are found at sizes >= min_match."""
        t, found, seen = len(self.ids), [], set()
        floor = max([n for n in self.sizes if n <= min_match], default=self.sizes[0])
        hits_by_size = []
        for n in self.sizes:
            if n < floor:
                continue
            if n >= t or n > self.max_match:  # (above max_match every length is capped: no longer an order)
                break
            hits = self._earlier(n)
            if not hits:
                break  # a size without an earlier hit has none at any larger size
            hits_by_size.append((n, hits))
        for n, hits in reversed(hits_by_size):
            level = []
            for e in hits[-max_candidates:]:
                if e not in seen:
                    seen.add(e)
                    length = self._match_length(e, n)
                    if length >= min_match:
                        level.append((length, e))
            found += sorted(level, reverse=True)
            if len(found) >= max_occurrences:
                break
        return found[:max_occurrences]

    def longest_match(self, max_candidates: int = 256) -> tuple[int, int]:
        """(length, end position) of the longest earlier match of the suffix (capped at max_match), the most recent
        on ties; (0, -1) without one. Exact while the largest hit size has at most `max_candidates` occurrences."""
        found = self._occurrences(1, max_candidates, 1)
        return found[0] if found else (0, -1)

    def continuations(
        self, max_tokens: int, max_branches: int = 4, max_occurrences: int = 8, min_match: int = 1,
        max_candidates: int = 16,
    ) -> list[Continuation]:
        """Up to `max_branches` distinct continuations of the suffix's earlier occurrences, best first, each at most
        `max_tokens` long (the room left); [] without a match of at least `min_match` tokens."""
        if len(self.ids) < 2 or max_tokens < 1 or max_branches < 1:
            return []
        found = self._occurrences(min_match, max_candidates, max_occurrences)
        ids, k = self.ids, len(found)
        conts = [ids[e + 1 : e + 1 + max_tokens] for _, e in found]
        # common-prefix lengths from the lexicographic order: lcp(a, b) is the minimum of the adjacent lcps between
        # them (k - 1 list comparisons instead of k^2 / 2)
        order = sorted(range(k), key=conts.__getitem__)
        rank = [0] * k
        for r, a in enumerate(order):
            rank[a] = r
        adjacent = [_common_prefix(conts[order[r]], conts[order[r + 1]]) for r in range(k - 1)]
        out, chosen = [], []
        for a in range(k):
            size, r = len(conts[a]), rank[a]
            lcp = [0] * k
            lcp[a], running = size, size
            for s in range(r - 1, -1, -1):
                running = min(running, adjacent[s])
                lcp[order[s]] = running
            running = size
            for s in range(r, k - 1):
                running = min(running, adjacent[s])
                lcp[order[s + 1]] = running
            if any(lcp[j] == size for j in chosen):  # a prefix of a chosen one: adds no node
                continue
            chosen.append(a)
            # support[i] = #{occurrences agreeing on the first i + 1 tokens} = #{b: lcp[b] > i}: piecewise constant,
            # built segment by segment from the sorted common-prefix lengths (the largest is this one's own size)
            support, agreement, done = [], [], 0
            for j, length in enumerate(sorted(lcp)):
                if length > done:
                    agreement.append((k - j) / (support[-1] if support else k))
                    agreement += [1.0] * (length - done - 1)
                    support += [k - j] * (length - done)
                    done = length
            out.append(Continuation(conts[a], support, agreement, found[a][0], found[a][1] + 1, k))
            if len(chosen) == max_branches:
                break
        return out


def _common_prefix(a: list, b: list) -> int:
    """Length of the common prefix of two lists (slice comparisons 16 at a time, then one by one)."""
    limit, n = min(len(a), len(b)), 0
    while n + 16 <= limit and a[n : n + 16] == b[n : n + 16]:
        n += 16
    while n < limit and a[n] == b[n]:
        n += 1
    return n


class CopyTree(NamedTuple):
    """A draft tree with copy branches merged in: grow_tree's format plus copy features, as Python lists (the
    planner's input; the kept nodes become tensors for verification). tokens, parents (into [root] + nodes),
    depths (n,); drafted: the first `drafted` nodes are the drafter's; copy_match (n,) match length of the
    continuation that proposes the node (0 = not copied); copy_position (n,) 1-based position in it; copy_agreement
    (n,) its agreement there; added: nodes the copies added."""

    tokens: list
    parents: list
    depths: list
    drafted: int
    copy_match: list
    copy_position: list
    copy_agreement: list
    added: int


def add_copy_branches(tokens, parents, depths, continuations) -> CopyTree:
    """
    Merges `continuations` (Continuations, best first) into the tree (tokens, parents, depths: tensors or lists) as
    chains from the root, sharing prefixes with existing nodes; a node proposed by several keeps the first (best)
    one's features. New nodes are appended (parents before children), so the result keeps grow_tree's order.
    """
    tokens, parents, depths = _as_list(tokens), _as_list(parents), _as_list(depths)
    drafted = len(tokens)
    children = {(p, t): i + 1 for i, (p, t) in enumerate(zip(parents, tokens))}
    match, position, agreement = [0] * drafted, [0] * drafted, [0.0] * drafted
    for cont in continuations:
        copy, shares, m = _as_list(cont.tokens), _as_list(cont.agreement), cont.match_length
        node = 0
        for i, token in enumerate(copy):
            child = children.get((node, token))
            if child is None:  # the rest of this copy is new: append it as one chain
                first, size = len(tokens) + 1, len(copy) - i
                new_parents = [node] + list(range(first, first + size - 1))
                tokens += copy[i:]
                parents += new_parents
                depths += range(i + 1, i + 1 + size)
                match += [m] * size
                position += range(i + 1, i + 1 + size)
                agreement += shares[i:]
                children.update(zip(zip(new_parents, copy[i:]), range(first, first + size)))
                break
            if not match[child - 1]:
                match[child - 1], position[child - 1], agreement[child - 1] = m, i + 1, shares[i]
            node = child
    return CopyTree(tokens, parents, depths, drafted, match, position, agreement, len(tokens) - drafted)
