# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
The `auto` drafting policy (`draft_tree="auto"`): each cycle drafts the shape that maximises expected accepted tokens
per second on this machine, from measured costs and calibrated acceptance, including no draft at all.

    gate      (`DraftGate`)   draft this cycle, or take a plain target step (the drafter's forwards are saved: the
                              plain steps' features are kept and fed in one forward when drafting resumes)
    grow      (drafter)       depth 1 = the root's top-k; then, while `should_grow` says one more depth pays under the
                              cost model, feed the w best frontier nodes (by path value) as one batched forward
    copy      (ContextIndex)  continuations of several earlier occurrences of the context's suffix, as long as the
                              match goes on, merged in as branches (`add_copy_branches`)
    plan      (`plan_tree`)   the ancestor-closed node set maximising (1 + sum of path values) / (D + V(N + 1, c));
                              N = 0 is a plain step; a kept chain is verified without a 4D mask
    verify / accept           as for any tree (`TreeCandidateGenerator`: exact greedy and exact sampling, since the
                              shape depends only on the draft side and on past cycles)
    learn                     `CostModel.observe_verify(N + 1, c, seconds)` and `observe_draft(width, seconds)` for
                              every forward; `AcceptanceModel` / `CopyAcceptanceModel` from the judged nodes of the
                              accepted path; coverage from the drafted children of each accepted node

Node values: a drafted node's conditional acceptance is `AcceptanceModel.predict(q, depth)` (q its own drafter
probability), a copied node's `CopyAcceptanceModel.predict(match, position, agreement)`, a node proposed by both the
larger; its value is the product along its path (`path_values`).

The costs live for the process per target, device and dtype (`CostModel.for_key`), the acceptance models per drafter
and target key (they describe this drafter against this target), so a second `generate` call starts from what the
first learned. V(1) is measured by two plain steps the first time a cost model has none (one-off per process and key;
a stale one is measured again): a plain step is the bar every plan must beat.

Timings include a device sync (`torch.cuda.synchronize` on CUDA; a CPU forward is synchronous). The verification is
timed from the end of `verify_inputs` to the start of `accept`, a plain step from `propose` to the next `update`.
This file travels with every Hub checkpoint (remote code): it imports torch and transformers only.
"""

import time

import torch

from .acceptance_model import AcceptanceModel, CopyAcceptanceModel, acceptance_events, path_values
from .candidate_generator import Draft
from .context_index import ContextIndex, add_copy_branches
from .cost_model import CostModel
from .draft_planner import DraftGate, plan_tree, should_grow
from .tree_drafting import TreeCandidateGenerator, keep_accepted_path


class _Cycle:
    """What a drafted cycle must remember until its `update`: the kept nodes' drafter probabilities, depths and copy
    features, and the drafted children of every kept node (for coverage)."""

    __slots__ = ("q", "depths", "drafted", "copy", "children", "context", "seconds")

    def __init__(self, q, depths, drafted, copy, children, context):
        self.q, self.depths, self.drafted, self.copy, self.children = q, depths, drafted, copy, children
        self.context, self.seconds = context, 0.0


class AdaptiveTreeGenerator(TreeCandidateGenerator):
    """Draft trees of a measured shape per cycle, or none (module docstring). `settings.tree` holds the bounds."""

    policy = "auto"

    def __init__(self, drafter, target, generation_config, input_ids, logits_processor=None, settings=None, **kw):
        super().__init__(drafter, target, generation_config, input_ids, logits_processor, settings, **kw)
        key = CostModel.key_of(target)
        self.cost = CostModel.for_key(key)
        models = drafter.__dict__.setdefault("_hf_eagle31_acceptance", {})
        if key not in models:
            models[key] = (AcceptanceModel(), CopyAcceptanceModel())
        self.acceptance, self.copy_acceptance = models[key]
        self.gate = DraftGate()
        self.index = None  # ContextIndex over the sequence, with copies
        self.cuda = target.device.type == "cuda" or self.device.type == "cuda"
        self.pending = []  # features of the plain steps not fed to the drafter yet: [{layer: (1, 1, H)}]
        self.feed_seconds = 0.0  # the last drafter feed (part of what a drafted cycle costs)
        self.clock = None
        self.cycle = None
        self.last_emitted = []
        self.grow_seconds = 0.0

    def now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    # ------------------------------------------------------------------ host copy of the context

    def begin(self, input_ids, prefill_outputs, offset):
        self.state.offset = self.state.num_fed = offset
        if self.settings.copy_tokens:
            self.index = ContextIndex(input_ids[0, offset:].tolist())  # once per call
        self.feed_seconds = self.feed(input_ids, prefill_outputs.hidden_states, count=True)

    def emitted(self, tokens):
        self.last_emitted = tokens
        if self.index is not None:
            self.index.extend(tokens)

    def feed(self, input_ids, features, count=False):
        """Feeds the drafter (timed: the feed of a cycle's accepted positions is part of a drafted cycle's cost);
        `count` adds the time to the stats (False inside `propose`, which is timed as a whole). Returns seconds."""
        width = input_ids.shape[1] - 1 - self.state.num_fed
        start = self.now()
        self.state.feed(input_ids, features)
        seconds = self.now() - start
        self.cost.observe_draft(width, seconds)
        if count:
            self.stats.drafter_time_s += seconds
        return seconds

    # ------------------------------------------------------------------ propose

    @torch.no_grad()
    def propose(self, input_ids):
        room = self.max_length - input_ids.shape[1] - 1
        if room >= 1 and self.cost.measured(1) and self.gate.should_draft():
            draft = self.timed(self._draft, input_ids, room)
            if draft is not None:
                return draft
        elif room >= 1:
            self.stats.shapes.append((0, 0, 0))
        self.cycle = None
        self.clock = self.now()  # a plain step: timed until the next `update`
        return None

    def _draft(self, input_ids, room):
        if self.pending:  # catch up with the plain steps' features in one forward
            layers = {i: torch.cat([f[i] for f in self.pending], dim=1) for i in self.layer_ids}
            self.pending = []
            self.feed(input_ids, layers)
            # The catch-up is what resuming costs once, not what a drafting cycle costs: the plan is priced with the
            # feed of a steady cycle (two positions: the bonus and one accepted token), so that a retry is judged by
            # the rate drafting would keep, not by its one-off entry fee.
            self.feed_seconds = self.cost.draft_time(2)
        context, bounds = input_ids.shape[1], self.tree
        max_nodes = min(bounds.total, self.cost.max_tokens - 1)
        explore = self.cost.exploring(max_nodes + 1)
        spent = self.feed_seconds
        tokens, parents, depths, q, children = self._grow(min(bounds.depth, room), context, spent, explore)
        spent = self.feed_seconds + self.grow_seconds
        drafted = len(tokens)
        copy = None
        if self.index is not None:
            continuations = self.index.continuations(min(self.settings.copy_tokens, room), max_branches=3)
            if continuations:
                copy = add_copy_branches(tokens, parents, depths, continuations)
                tokens, parents, depths = copy.tokens, copy.parents, copy.depths
        conditional = self.acceptance.predict(q, depths[:drafted])
        if copy is not None:
            copied = self.copy_acceptance.predict(copy.copy_match, copy.copy_position, copy.copy_agreement)
            conditional = [max(a, b) for a, b in zip(conditional + [0.0] * copy.added, copied)]
        values = path_values(conditional, parents)
        plan = plan_tree(values, parents, self.cost, context, spent, explore=explore, max_nodes=max_nodes)
        self.gate.update(plan)
        if plan.num_nodes == 0:
            self.stats.shapes.append((0, 0, 0))
            return None
        keep = plan.keep
        kept_tokens = [tokens[i] for i in keep]
        kept_depths = [depths[i] for i in keep]
        copied_nodes = 0
        copy_features = None
        if copy is not None:
            copy_features = [(copy.copy_match[i], copy.copy_position[i], copy.copy_agreement[i]) for i in keep]
            copied_nodes = sum(1 for m, _, _ in copy_features if m)
        self.stats.copied_cycles += int(copied_nodes > 0)
        self.stats.shapes.append((len(keep), max(kept_depths), copied_nodes))
        kept_children = [children.get(-1)] + [children.get(i) for i in keep]  # drafted children's tokens, or None
        self.cycle = _Cycle([q[i] if i < drafted else None for i in keep], kept_depths,
                            [i < drafted for i in keep], copy_features, kept_children, context)
        return Draft(torch.tensor(kept_tokens, device=self.device), None, plan.parents, kept_depths, kept_tokens)

    def _grow(self, max_depth, context, spent, explore):
        """
        Grows the drafter's tree depth by depth while one more depth pays. Returns host lists (tokens, parents into
        [root] + nodes, depths, q: each node's own drafter probability) and children: {node index (-1 = root): the
        set of its drafted children's tokens}.
        """
        state, d2t, k = self.state, self.drafter.d2t, self.tree.topk
        self.grow_seconds = 0.0
        start = self.now()
        state.crop()  # (entries of a drafted cycle that ended as a plain step)
        probs, ids = state.logits.float().softmax(-1)[0].topk(min(k, state.logits.shape[-1]))
        q, tokens = probs.tolist(), (ids + d2t[ids]).tolist()
        parents, depths = [0] * len(tokens), [1] * len(tokens)
        children = {-1: set(tokens)}
        values = self.acceptance.predict(q, depths)
        frontier = list(range(len(tokens)))
        prefix = state.cache.get_seq_length()
        fed = {}  # node index -> the drafter cache slot it was fed in (during this growth)
        last_rows, last_hidden = None, state.hidden  # the previous depth's fed nodes -> row of its next_hidden
        max_nodes = min(self.tree.total, self.cost.max_tokens - 1)
        self.grow_seconds += self.now() - start
        for depth in range(1, max_depth):
            plan = plan_tree(values, parents, self.cost, context, spent + self.grow_seconds, explore=explore,
                             max_nodes=max_nodes)
            width = should_grow([values[i] for i in frontier], plan, self.cost, context, spent + self.grow_seconds,
                                child_acceptance=self.acceptance.coverage(depth + 1), explore=explore, max_width=k)
            if width == 0:
                break
            start = self.now()
            chosen = sorted(frontier, key=values.__getitem__, reverse=True)[:width]
            if last_rows is None:  # depth 1: every node's parent is the root
                hidden = last_hidden.expand(-1, width, -1)  # (1, w, H)
            else:  # each node is fed its parent's next hidden state
                rows = torch.tensor([last_rows[parents[i] - 1] for i in chosen], device=last_hidden.device)
                hidden = last_hidden.index_select(1, rows)  # (1, w, H)
            # (w, prefix + fed + w) bool: the prefix, the node's ancestors fed during this growth, itself
            base = len(fed)
            mask = []
            for row, node in enumerate(chosen):
                line = [False] * (base + width)
                line[base + row] = True
                parent = parents[node] - 1
                while parent >= 0:
                    line[fed[parent]] = True
                    parent = parents[parent] - 1
                mask.append(line)
            mask = torch.cat([torch.ones(width, prefix, dtype=torch.bool), torch.tensor(mask)], dim=1)
            for row, node in enumerate(chosen):
                fed[node] = base + row
            step_tokens = torch.tensor([tokens[i] for i in chosen], device=self.device)[None]  # (1, w)
            out = state.step(step_tokens, hidden, depth=depth, attention_mask=mask.to(self.device))
            child_p, child_ids = out.logits[0].float().softmax(-1).topk(min(k, out.logits.shape[-1]), dim=-1)
            child_q, child_tokens = child_p.tolist(), (child_ids + d2t[child_ids]).tolist()  # (w, k) each
            last_rows, last_hidden = {node: row for row, node in enumerate(chosen)}, out.next_hidden
            frontier = []
            for row, node in enumerate(chosen):
                children[node] = set(child_tokens[row])
                for p, t in zip(child_q[row], child_tokens[row]):
                    tokens.append(t)
                    parents.append(node + 1)
                    depths.append(depth + 1)
                    q.append(p)
                    frontier.append(len(tokens) - 1)
            conditional = self.acceptance.predict([q[i] for i in frontier], [depth + 1] * len(frontier))
            values += [values[parents[i] - 1] * c for i, c in zip(frontier, conditional)]
            seconds = self.now() - start
            self.cost.observe_draft(width, seconds)
            self.grow_seconds += seconds
        return tokens, parents, depths, q, children

    # ------------------------------------------------------------------ verify, accept, update

    def verify_inputs(self, input_ids, draft, context):
        if all(p == i for i, p in enumerate(draft.parents)):  # a chain: causal, no 4D mask to build
            block = torch.cat([input_ids[:, -1:], draft.tokens.to(input_ids.device)[None]], dim=-1)
            inputs = {"input_ids": block, "position_ids": context.positions(block.shape[1]),
                      "attention_mask": context.mask_2d(block.shape[1])}
        else:
            inputs = super().verify_inputs(input_ids, draft, context)
        self.clock = self.now()
        return inputs

    def accept(self, input_ids, draft, logits, choose):
        if self.cycle is not None:
            self.cycle.seconds = self.now() - self.clock
        return super().accept(input_ids, draft, logits, choose)

    def update(self, input_ids, draft, accepted, path, outputs, cache):
        context = input_ids.shape[1] - len(self.last_emitted)  # the sequence the cycle verified after
        if draft is None:  # a plain step: timed, its features kept for the next drafted cycle
            self.cost.observe_verify(1, context, self.now() - self.clock)
            self.pending.append({i: outputs.hidden_states[i][:, -1:] for i in self.layer_ids})
            return
        cycle = self.cycle
        self.cost.observe_verify(draft.size + 1, context, cycle.seconds)
        self._learn(draft, cycle, path[: accepted + 1])
        keep = path[: accepted + 1]
        keep_accepted_path(cache, draft.size + 1, keep)
        index = torch.tensor(keep, device=outputs.logits.device)
        features = {i: outputs.hidden_states[i][:, index.to(outputs.hidden_states[i].device)] for i in self.layer_ids}
        self.feed_seconds = self.feed(input_ids, features, count=True)

    def _learn(self, draft, cycle, path):
        """Acceptance of the judged nodes (drafted and copied), and coverage of each accepted node's children."""
        judged, ok = acceptance_events(draft.parents, path)
        drafted = [(cycle.q[i], cycle.depths[i], a) for i, a in zip(judged, ok) if cycle.drafted[i]]
        if drafted:
            self.acceptance.observe(*zip(*drafted))
        if cycle.copy is not None:
            copied = [(*cycle.copy[i], a) for i, a in zip(judged, ok) if cycle.copy[i][0]]
            if copied:
                self.copy_acceptance.observe(*zip(*copied))
        # coverage: after each accepted node (the root first) the target chose `last_emitted[j]`; was it among the
        # node's drafted children (the whole grown set, not only the verified ones)?
        depth, covered = [], []
        for j, node in enumerate(path):
            kids = cycle.children[node]
            if kids is not None and j < len(self.last_emitted):
                depth.append(cycle.depths[node - 1] + 1 if node else 1)
                covered.append(self.last_emitted[j] in kids)
        if depth:
            self.acceptance.observe_coverage(depth, covered)
