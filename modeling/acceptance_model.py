# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
How likely the target is to accept a draft node, calibrated online from what the target accepted.

Draft nodes (`AcceptanceModel`): p(q, d) = P(node accepted | its parent accepted, drafter probability q, depth d),
where q is the node's own (conditional) drafter probability, not the cumulative one along its path. The table has
bins over q (10 uniform bins) x depth buckets ({1}, {2}, {3}, {4-5}, {6+}); each cell (d, b) is a Beta posterior
    p[d, b] = (k * prior[d, b] + accepted[d, b]) / (k + seen[d, b])
with a small prior weight k (4 events), and a prior mean that is the drafter's own word times a pooled calibration
ratio shared by every cell:
    prior[d, b] = min(0.95, center_b * r),   r = (sum accepted + k_r) / (sum q + k_r)     (r = 1 with no data)
so with no data the model trusts the drafter, a drafter that is uniformly over-confident (q twice the truth) is
corrected everywhere after a few dozen events (r -> 1/2) before each cell has its own evidence, and a drafter that is
always wrong drives every prediction towards 0 within a few cycles (k_r = 1: one unit of q mass). Counts decay by
`forget` = 0.995 per `observe` call (one call per cycle: an event 140 cycles old weighs half, so the table follows a
change of content without forgetting each cell's evidence between its visits).
predict interpolates linearly in q between bin centers (within the depth bucket), so ranking inside a bin follows q.

Copy nodes (`CopyAcceptanceModel`): P(copied token i accepted | the previous one accepted, match length m, position i
in the copy (1-based), agreement a), a = the share of the context's occurrences that continue the same way at this
position (`ContextIndex.continuations`: support[i] / support[i - 1]); cells over m buckets {1}, {2}, {3-4}, {5-8},
{9-16}, {17+} x i buckets {1}, {2}, {3-4}, ..., {33+} x a bins [0, 1/3), [1/3, 2/3), [2/3, 1]; same Beta
posterior, pooled ratio and forgetting, with the prior
    prior(m, i, a) = m / (m + 1) * (0.5 + 0.5 a) * 0.98 ** (i - 1)
(0.5 for a single-token match at the first position with every occurrence agreeing; increasing in m and a,
decreasing in i), evaluated at each bucket's lower edge and each agreement bin's center.

A path's value: in greedy decoding a node is accepted iff all its ancestors are, so
    P(node accepted) = prod of p over its path                                         (`path_values`)
and the expected accepted length of an ancestor-closed node set is the sum of its nodes' values (`draft_planner`).

Shapes: q, depth, accepted are (n,) tensors or lists over the nodes of one cycle; tables are (D, B) / (M, I, A),
stored flat. Host cost: planning runs on the host over tens of nodes, where a Python loop over a list costs less than
one torch op's dispatch (~3-5 us each here; benchmarks/planner_cost.py), so inputs are read once with `.tolist()`
and results are Python lists. This file travels with every Hub checkpoint (remote code): it imports the standard
library only.
"""

DEPTH_EDGES = (1, 2, 3, 4, 6)  # bucket lower edges: {1}, {2}, {3}, {4-5}, {6+}
MATCH_EDGES = (1, 2, 3, 5, 9, 17)  # {1}, {2}, {3-4}, {5-8}, {9-16}, {17+}
POSITION_EDGES = (1, 2, 3, 5, 9, 17, 33)  # {1}, {2}, {3-4}, {5-8}, {9-16}, {17-32}, {33+}
AGREEMENT_BINS = 3
# No prior, however calibrated, promises more than this: a pooled ratio > 1 (an under-confident drafter, or copies
# accepted more often than the prior's shape says) must not push an unseen cell to certainty; only its data can.
PRIOR_CAP = 0.95


def _as_list(x) -> list:
    return x.tolist() if hasattr(x, "tolist") else list(x)


def _lookup(edges, size=257):
    """value -> bucket index for bucket lower edges (a list over 0..size-1; larger values use the last bucket)."""
    return [max([i for i, edge in enumerate(edges) if edge <= v], default=0) for v in range(size)]


class _BetaCells:
    """Beta posteriors over a flat set of cells with a pooled calibration ratio (none if ratio_weight is None) and
    forgetting."""

    def __init__(self, prior, prior_weight, ratio_weight, forget):
        self.base = [min(max(float(p), 1e-4), 1 - 1e-4) for p in prior]  # the prior mean before calibration
        self.k, self.forget = float(prior_weight), float(forget)
        self.k_r = None if ratio_weight is None else float(ratio_weight)
        self.seen = [0.0] * len(self.base)
        self.accepted = [0.0] * len(self.base)
        self.pooled_accepted = 0.0
        self.pooled_expected = 0.0  # sum of q (drafter) or of the base prior of each event's cell (copies)
        self._table = None

    @property
    def ratio(self) -> float:
        if self.k_r is None:
            return 1.0
        return (self.pooled_accepted + self.k_r) / (self.pooled_expected + self.k_r)

    @property
    def table(self) -> list:
        """Posterior means per cell, rebuilt after an observation."""
        if self._table is None:
            r, k = self.ratio, self.k
            self._table = [
                (k * min(b * r, PRIOR_CAP) + a) / (k + s) for b, a, s in zip(self.base, self.accepted, self.seen)
            ]
        return self._table

    def observe(self, cells, expected, accepted):
        f = self.forget
        seen = self.seen = [x * f for x in self.seen]
        hits = self.accepted = [x * f for x in self.accepted]
        total = 0
        for cell, ok in zip(cells, accepted):
            seen[cell] += 1.0
            if ok:
                hits[cell] += 1.0
                total += 1
        self.pooled_accepted = self.pooled_accepted * f + total
        self.pooled_expected = self.pooled_expected * f + expected
        self._table = None


class AcceptanceModel:
    """
    P(draft node accepted | parent accepted, drafter probability q, depth), calibrated online (module docstring).

    observe(q, depth, accepted)   q: (n,) floats in [0, 1]; depth: (n,) ints >= 1; accepted: (n,) bools, for the
                                  nodes whose parent was accepted (the root's children always): `acceptance_events`.
    predict(q, depth) -> list     (n,) calibrated conditional acceptance probabilities.
    observe_coverage / coverage   P(the target's next token is among an accepted node's drafted children).
    """

    def __init__(self, num_bins=10, depth_edges=DEPTH_EDGES, prior_weight=4.0, ratio_weight=1.0, forget=0.995):
        self.num_bins, self.depth_buckets = num_bins, len(depth_edges)
        self._depth_of = _lookup(depth_edges)
        self._row_offset = [row * num_bins for row in self._depth_of]  # depth -> its row's first cell
        self.centers = [(b + 0.5) / num_bins for b in range(num_bins)]
        self.cells = _BetaCells(self.centers * self.depth_buckets, prior_weight, ratio_weight, forget)
        # a plain Beta per depth bucket (no pooled ratio), prior mean 1/2
        self.coverage_cells = _BetaCells([0.5] * self.depth_buckets, prior_weight, None, forget)

    def _row(self, depth) -> int:
        return self._depth_of[min(max(int(depth), 0), len(self._depth_of) - 1)]

    def observe(self, q, depth, accepted) -> None:
        q, depth, accepted = _as_list(q), _as_list(depth), _as_list(accepted)
        if not q:
            return
        b, last = self.num_bins, self.num_bins - 1
        cells = [self._row(d) * b + min(max(int(x * b), 0), last) for x, d in zip(q, depth)]
        self.cells.observe(cells, sum(q), accepted)

    def predict(self, q, depth) -> list:
        """Linear in q between bin centers, within the depth bucket."""
        table, b, last, rows, top = self.cells.table, self.num_bins, self.num_bins - 1, self._row_offset, 256
        out = []
        for x, d in zip(_as_list(q), _as_list(depth)):
            row = rows[d if d < top else top]
            x = x * b - 0.5
            x = 0.0 if x < 0.0 else (x if x < last else float(last))
            low = int(x)
            w = x - low
            high = low + 1 if low < last else low
            out.append(table[row + low] * (1.0 - w) + table[row + high] * w)
        return out

    def table(self) -> list:
        """[depth bucket][bin] calibrated acceptance at each bin center (for a profile printout)."""
        t, b = self.cells.table, self.num_bins
        return [t[r * b : (r + 1) * b] for r in range(self.depth_buckets)]

    def observe_coverage(self, depth, covered) -> None:
        """`covered` (n,) bools: whether an accepted node with children at `depth` (n,) (the children's depth: 1 for
        the root) had the target's next token among them (`coverage_events`)."""
        depth = _as_list(depth)
        if depth:
            self.coverage_cells.observe([self._row(d) for d in depth], 0.0, _as_list(covered))

    def coverage(self, depth: int) -> float:
        """P(the target's token after an accepted node is among its drafted children at `depth`): the expected gain
        of growing one more depth is this times the fed frontier's values (`draft_planner.should_grow`)."""
        return self.coverage_cells.table[self._row(depth)]


class CopyAcceptanceModel:
    """
    P(copied token accepted | previous accepted, match length m, position i, agreement a), calibrated online.

    observe(match_length, position, agreement, accepted)  (n,) each; position is 1-based within the copy.
    predict(match_length, position, agreement) -> list    (n,), 0.0 where match_length = 0 (not copied).
    """

    def __init__(self, prior_weight=4.0, ratio_weight=1.0, forget=0.995):
        self.shape = (len(MATCH_EDGES), len(POSITION_EDGES), AGREEMENT_BINS)
        # value -> offset of its bucket in the flat table (agreement bins: [0, 1/3), [1/3, 2/3), [2/3, 1])
        self._m_offset = [b * len(POSITION_EDGES) * AGREEMENT_BINS for b in _lookup(MATCH_EDGES)]
        self._i_offset = [b * AGREEMENT_BINS for b in _lookup(POSITION_EDGES)]
        self.prior = [  # flat over (m bucket, i bucket, a bin), at each bucket's lower edge and each bin's center
            m / (m + 1) * (0.5 + 0.5 * (a + 0.5) / AGREEMENT_BINS) * 0.98 ** (i - 1)
            for m in MATCH_EDGES
            for i in POSITION_EDGES
            for a in range(AGREEMENT_BINS)
        ]
        self.cells = _BetaCells(self.prior, prior_weight, ratio_weight, forget)

    def _cells(self, match_length, position, agreement):
        m_offset, i_offset, top = self._m_offset, self._i_offset, 256
        return [
            m_offset[m if m < top else top] + i_offset[i if i < top else top] + (2 if a >= 2 / 3 else a >= 1 / 3)
            for m, i, a in zip(_as_list(match_length), _as_list(position), _as_list(agreement))
        ]

    def observe(self, match_length, position, agreement, accepted) -> None:
        cells = self._cells(match_length, position, agreement)
        if cells:
            base = self.cells.base
            self.cells.observe(cells, sum(base[c] for c in cells), _as_list(accepted))

    def predict(self, match_length, position, agreement) -> list:
        """0.0 where match_length is 0 (not a copied node): pass a CopyTree's copy_* lists over all its nodes."""
        table = self.cells.table
        cells = self._cells(match_length, position, agreement)
        return [table[c] if m else 0.0 for c, m in zip(cells, _as_list(match_length))]


def path_values(conditional, parents) -> list:
    """
    (n,) P(node accepted) = the product of `conditional` (n,) along each node's path. `parents` (n,) index
    [root] + nodes (0 = the root, i + 1 = node i) with every parent before its children (grow_tree's order).
    A child's value never exceeds its parent's (a product of factors <= 1): the best N nodes are ancestor-closed.
    """
    values = [float(c) for c in _as_list(conditional)]
    for i, p in enumerate(_as_list(parents)):
        if p:  # parents come first, so values[p - 1] is already its path's product
            values[i] *= values[p - 1]
    return values


def acceptance_events(parents, path) -> tuple:
    """
    Which nodes the target judged in one verification, and which it accepted. `parents` (n,) as in `path_values`
    (the verified tree); `path` the accepted nodes as indices into [root] + nodes (the root may be included or not).
    Returns (judged: indices of the nodes whose parent was accepted, accepted: bools for them); feed
    `[q[i] for i in judged]`, `[depth[i] for i in judged]`, `accepted` to `AcceptanceModel.observe`.
    """
    on_path = {0, *(int(i) for i in _as_list(path))}
    judged = [i for i, p in enumerate(_as_list(parents)) if p in on_path]
    return judged, [i + 1 in on_path for i in judged]


def coverage_events(parents, path) -> tuple:
    """
    (depth, covered) lists for `AcceptanceModel.observe_coverage`: for each accepted node (the root first, then
    `path`, the accepted nodes in walk order as indices into [root] + nodes) that had children, the children's depth
    and whether the walk continued into one of them.
    """
    has_children = set(_as_list(parents))
    walk = [0] + [int(i) for i in _as_list(path) if int(i)]
    events = [(j + 1, j < len(walk) - 1) for j, node in enumerate(walk) if node in has_children]
    return [d for d, _ in events], [c for _, c in events]
