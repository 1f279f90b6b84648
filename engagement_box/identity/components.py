"""The connected components of the identity graph: which profiles are one person.

The graph's edges are `sql/intermediate/customer_merge_edges.sql` (profiles by their rank in
the survivorship order, linked when they share an email or handle);
`sql/intermediate/customer_merge.sql` then maps every profile to the surviving profile of its
component through the labels computed here (`customer_merge_labels`: rank, and the smallest
rank of its component).

The labels were a recursive CTE that propagated the smallest rank one edge per round: as many
rounds as the longest path from a component's first profile, each reading the whole label table,
so a chain of profiles each sharing a handle with the next cost its length squared (4,000
profiles 5.4 s, 12,000 31.6 s). scipy's connected components take one pass over the edges
whatever the graph's shape. The Spark engine keeps its edges distributed and halves the paths
each round instead (`engagement_box/spark/pipeline.py::component_labels`).
"""

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import numpy as np
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from engagement_box.sql import load_sql

# The name the labels are registered under while the merge statement runs (its SQL reads it).
LABELS_VIEW = "customer_merge_labels"


def component_labels(from_rank: np.ndarray, to_rank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rank, label): every node of the graph `from_rank -> to_rank` (ranks >= 1, an edge in
    either direction links its two nodes) with the smallest rank of its connected component,
    nodes in rank order."""
    from_rank = np.asarray(from_rank, dtype=np.int64)
    to_rank = np.asarray(to_rank, dtype=np.int64)
    nodes = np.unique(np.concatenate([from_rank, to_rank]))
    if nodes.size == 0:
        return nodes, nodes.copy()
    # Components of the nodes the edges name, numbered 0..k-1 (not of every rank up to the largest).
    index = np.searchsorted(nodes, from_rank), np.searchsorted(nodes, to_rank)
    graph = coo_matrix(
        (np.ones(from_rank.size, dtype=np.int8), index), shape=(nodes.size, nodes.size)
    ).tocsr()
    count, component = connected_components(graph, directed=False)
    smallest = np.full(count, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(smallest, component, nodes)
    return nodes, smallest[component]


@contextmanager
def merge_labels(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """While open, `customer_merge_labels` (rank, label) of the edges in the temporary table
    `customer_merge_edges` (run `intermediate/customer_merge_edges` first)."""
    edges = con.execute(load_sql("intermediate/customer_merge_edge_ranks")).fetchnumpy()
    rank, label = component_labels(edges["from_rank"], edges["to_rank"])
    con.register(LABELS_VIEW, pa.table({"rank": rank, "label": label}))
    try:
        yield
    finally:
        con.unregister(LABELS_VIEW)
