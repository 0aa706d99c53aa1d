"""The RGA's sequence: a persistent counted B-tree with parent links by uid.

The sequence (live elements and tombstones, in document order) is cut into
leaves of at most ``MAX_LEAF`` elements under branches of at most
``MAX_FANOUT`` children. Every node is immutable; an update copies the path
from the root to one leaf, O(log n) nodes of bounded size, and shares the rest
with the previous version, so the RGA state stays an immutable value.

Three questions must be answered without scanning the document:

* *Where is element ``id``?* Two persistent hash maps (``immutables.Map``):
  element id -> uid of its leaf, and node uid -> uid of its parent branch.
  Nodes keep their uid when copied, so these maps change only when an
  element is inserted or a node splits (amortised O(1) entries per insert).
  Walking up the uids gives the root-to-leaf path, which is then followed
  down by uid. O(log n).
* *Which element is the i-th visible one?* Branches count the visible
  elements under each child: descend by counts. O(log n).
* *What follows a position?* The path is kept in a cursor; the next leaf is
  found by going up and down the path. Amortised O(1).

Tombstones removed at causal stability are taken out of their leaf; leaves
are never merged, but when the tree holds on average fewer than
``SPARSE_FILL`` elements per leaf it is rebuilt from its elements (O(n),
amortised O(1) per removal).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import immutables

__all__ = [
    "Cursor",
    "Element",
    "Tree",
    "build",
    "elements",
    "first_cursor",
    "insert_after",
    "locate",
    "next_cursor",
    "remove_at",
    "replace_at",
    "visible_at",
]

MAX_LEAF = 64
MAX_FANOUT = 32
BUILD_LEAF = 48
BUILD_FANOUT = 24
SPARSE_FILL = 8

# An element: (id, value, deleted_by). ``id`` is any totally ordered, hashable
# key (the RGA uses ElementId); ``deleted_by`` is None while the element is live.
Element = tuple[Any, Any, Any]


class _Leaf:
    __slots__ = ("elements", "ids", "uid", "visible")

    uid: int
    elements: tuple[Element, ...]
    ids: tuple[Any, ...]  # the elements' ids, for tuple.index
    visible: int

    def __init__(
        self, uid: int, elements: tuple[Element, ...], ids: tuple[Any, ...], visible: int
    ) -> None:
        self.uid = uid
        self.elements = elements
        self.ids = ids
        self.visible = visible


def _leaf(uid: int, elements: tuple[Element, ...]) -> _Leaf:
    return _Leaf(
        uid,
        elements,
        tuple(element[0] for element in elements),
        sum(1 for element in elements if element[2] is None),
    )


class _Branch:
    __slots__ = ("children", "uid", "uids", "visible", "visibles")

    uid: int
    children: tuple[_Leaf | _Branch, ...]
    uids: tuple[int, ...]  # the children's uids, for tuple.index
    visibles: tuple[int, ...]  # live elements under each child
    visible: int

    def __init__(
        self,
        uid: int,
        children: tuple[_Node, ...],
        uids: tuple[int, ...],
        visibles: tuple[int, ...],
        visible: int,
    ) -> None:
        self.uid = uid
        self.children = children
        self.uids = uids
        self.visibles = visibles
        self.visible = visible


def _branch(uid: int, children: tuple[_Node, ...]) -> _Branch:
    visibles = tuple(child.visible for child in children)
    return _Branch(uid, children, tuple(child.uid for child in children), visibles, sum(visibles))


_Node = _Leaf | _Branch
_Path = tuple[tuple[_Branch, int], ...]


class Tree:
    """One immutable version of the sequence (treat every attribute as read-only)."""

    __slots__ = ("count", "leaf_of", "leaves", "next_uid", "parent", "root")

    def __init__(
        self,
        root: _Node,
        leaf_of: immutables.Map[Any, int],
        parent: immutables.Map[int, int],
        next_uid: int,
        count: int,
        leaves: int,
    ) -> None:
        self.root = root
        self.leaf_of = leaf_of
        self.parent = parent
        self.next_uid = next_uid
        self.count = count  # elements, tombstones included
        self.leaves = leaves

    @property
    def visible(self) -> int:
        return self.root.visible


EMPTY = Tree(_Leaf(0, (), (), 0), immutables.Map(), immutables.Map(), 1, 0, 1)


class Cursor:
    """A position in one tree version: the path to a leaf and an index in it.

    ``index`` -1 means "before the leaf's first element" (only for the
    cursor before the whole sequence).
    """

    __slots__ = ("index", "leaf", "path")

    def __init__(self, path: _Path, leaf: _Leaf, index: int) -> None:
        self.path = path
        self.leaf = leaf
        self.index = index

    @property
    def element(self) -> Element:
        return self.leaf.elements[self.index]


def _visible(element: Element) -> int:
    return 1 if element[2] is None else 0


def locate(tree: Tree, element_id: Any) -> Cursor | None:
    """The cursor at ``element_id``, or None if the tree does not hold it."""
    uid = tree.leaf_of.get(element_id)
    if uid is None:
        return None
    chain = [uid]
    parent = tree.parent
    up = parent.get(uid)
    while up is not None:
        chain.append(up)
        up = parent.get(up)
    node = tree.root
    path: list[tuple[_Branch, int]] = []
    for child_uid in reversed(chain[:-1]):
        assert isinstance(node, _Branch)
        position = node.uids.index(child_uid)
        path.append((node, position))
        node = node.children[position]
    assert isinstance(node, _Leaf)
    return Cursor(tuple(path), node, node.ids.index(element_id))


def first_cursor(tree: Tree) -> Cursor:
    """The cursor before the first element."""
    path: list[tuple[_Branch, int]] = []
    node = tree.root
    while isinstance(node, _Branch):
        path.append((node, 0))
        node = node.children[0]
    return Cursor(tuple(path), node, -1)


def next_cursor(cursor: Cursor) -> Cursor | None:
    """The cursor at the element after ``cursor``, or None at the end."""
    leaf, index = cursor.leaf, cursor.index + 1
    if index < len(leaf.elements):
        return Cursor(cursor.path, leaf, index)
    path = list(cursor.path)
    while path:
        branch, position = path[-1]
        if position + 1 >= len(branch.children):
            path.pop()
            continue
        path[-1] = (branch, position + 1)
        node = branch.children[position + 1]
        while isinstance(node, _Branch):
            path.append((node, 0))
            node = node.children[0]
        if node.elements:
            return Cursor(tuple(path), node, 0)
        # An empty leaf (emptied by compaction): keep going right.
    return None


def visible_at(tree: Tree, index: int) -> Element:
    """The ``index``-th live element (0-based); the caller checks the range."""
    node = tree.root
    while isinstance(node, _Branch):
        for position, count in enumerate(node.visibles):
            if index < count:
                node = node.children[position]
                break
            index -= count
        else:  # pragma: no cover - the caller checked the range
            raise IndexError(index)
    if node.visible == len(node.elements):
        return node.elements[index]
    for element in node.elements:
        if element[2] is None:
            if not index:
                return element
            index -= 1
    raise IndexError(index)  # pragma: no cover - the caller checked the range


def elements(tree: Tree) -> Iterator[Element]:
    """Every element, tombstones included, in sequence order."""
    stack: list[_Node] = [tree.root]
    while stack:
        node = stack.pop()
        if isinstance(node, _Leaf):
            yield from node.elements
        else:
            stack.extend(reversed(node.children))


def _rebuild_path(
    tree: Tree,
    path: _Path,
    nodes: tuple[_Node, ...],
    leaf_of: immutables.Map[Any, int],
    parent: immutables.Map[int, int],
    next_uid: int,
    count: int,
    leaves: int,
) -> Tree:
    """Replace the node at the end of ``path`` by ``nodes`` (one, or two after a split).

    Copies the branches on the path, O(MAX_FANOUT) each; a branch that
    overflows splits in two, and the root may grow a level.
    """
    parent_m = None
    for branch, position in reversed(path):
        after = position + 1
        children = branch.children[:position] + nodes + branch.children[after:]
        uids = branch.uids[:position] + tuple(node.uid for node in nodes) + branch.uids[after:]
        counts = tuple(node.visible for node in nodes)
        visibles = branch.visibles[:position] + counts + branch.visibles[after:]
        visible = branch.visible - branch.visibles[position] + sum(counts)
        if len(nodes) == 2:
            parent_m = parent_m or parent.mutate()
            parent_m[nodes[1].uid] = branch.uid
        if len(children) <= MAX_FANOUT:
            nodes = (_Branch(branch.uid, children, uids, visibles, visible),)
            continue
        half = len(children) // 2
        right_visible = sum(visibles[half:])
        right = _Branch(next_uid, children[half:], uids[half:], visibles[half:], right_visible)
        next_uid += 1
        parent_m = parent_m or parent.mutate()
        for uid in right.uids:
            parent_m[uid] = right.uid
        left = _Branch(
            branch.uid, children[:half], uids[:half], visibles[:half], visible - right_visible
        )
        nodes = (left, right)
    if len(nodes) == 1:
        root = nodes[0]
    else:
        root = _branch(next_uid, nodes)
        next_uid += 1
        parent_m = parent_m or parent.mutate()
        parent_m[nodes[0].uid] = root.uid
        parent_m[nodes[1].uid] = root.uid
    if parent_m is not None:
        parent = parent_m.finish()
    return Tree(root, leaf_of, parent, next_uid, count, leaves)


def insert_after(tree: Tree, cursor: Cursor, element: Element) -> Tree:
    """A tree with ``element`` right after the cursor's position."""
    leaf = cursor.leaf
    position = cursor.index + 1
    identity = element[0]
    items = (*leaf.elements[:position], element, *leaf.elements[position:])
    ids = (*leaf.ids[:position], identity, *leaf.ids[position:])
    visible = leaf.visible + _visible(element)
    next_uid = tree.next_uid
    leaves = tree.leaves
    nodes: tuple[_Node, ...]
    if len(items) <= MAX_LEAF:
        nodes = (_Leaf(leaf.uid, items, ids, visible),)
        leaf_of = tree.leaf_of.set(identity, leaf.uid)
    else:
        # Typing appends at a leaf's end: keep the left leaf full then.
        half = MAX_LEAF if position == len(items) - 1 else len(items) // 2
        right = _leaf(next_uid, items[half:])
        next_uid += 1
        leaves += 1
        left = _Leaf(leaf.uid, items[:half], ids[:half], visible - right.visible)
        nodes = (left, right)
        leaf_of_m = tree.leaf_of.mutate()
        leaf_of_m[identity] = leaf.uid
        for moved in right.ids:
            leaf_of_m[moved] = right.uid
        leaf_of = leaf_of_m.finish()
    return _rebuild_path(
        tree, cursor.path, nodes, leaf_of, tree.parent, next_uid, tree.count + 1, leaves
    )


def replace_at(tree: Tree, cursor: Cursor, element: Element) -> Tree:
    """A tree with the element at the cursor replaced (same id, e.g. now deleted)."""
    leaf = cursor.leaf
    index = cursor.index
    old = leaf.elements[index]
    items = (*leaf.elements[:index], element, *leaf.elements[index + 1 :])
    visible = leaf.visible - _visible(old) + _visible(element)
    return _rebuild_path(
        tree,
        cursor.path,
        (_Leaf(leaf.uid, items, leaf.ids, visible),),
        tree.leaf_of,
        tree.parent,
        tree.next_uid,
        tree.count,
        tree.leaves,
    )


def remove_at(tree: Tree, cursor: Cursor) -> Tree:
    """A tree without the element at the cursor; rebuilt when it has become sparse."""
    leaf = cursor.leaf
    index = cursor.index
    old = leaf.elements[index]
    items = leaf.elements[:index] + leaf.elements[index + 1 :]
    ids = leaf.ids[:index] + leaf.ids[index + 1 :]
    result = _rebuild_path(
        tree,
        cursor.path,
        (_Leaf(leaf.uid, items, ids, leaf.visible - _visible(old)),),
        tree.leaf_of.delete(old[0]),
        tree.parent,
        tree.next_uid,
        tree.count - 1,
        tree.leaves,
    )
    if result.leaves > 1 and result.count < result.leaves * SPARSE_FILL:
        return build(elements(result))
    return result


def build(items: Iterable[Element]) -> Tree:
    """A tree holding ``items`` in order, with well-filled nodes. O(n)."""
    everything = list(items)
    if not everything:
        return EMPTY
    next_uid = 0
    leaf_of = immutables.Map[Any, int]().mutate()
    parent = immutables.Map[int, int]().mutate()
    level: list[_Node] = []
    for start in range(0, len(everything), BUILD_LEAF):
        leaf = _leaf(next_uid, tuple(everything[start : start + BUILD_LEAF]))
        next_uid += 1
        for identity in leaf.ids:
            leaf_of[identity] = leaf.uid
        level.append(leaf)
    leaves = len(level)
    while len(level) > 1:
        upper: list[_Node] = []
        for start in range(0, len(level), BUILD_FANOUT):
            branch = _branch(next_uid, tuple(level[start : start + BUILD_FANOUT]))
            next_uid += 1
            for child in branch.children:
                parent[child.uid] = branch.uid
            upper.append(branch)
        level = upper
    return Tree(level[0], leaf_of.finish(), parent.finish(), next_uid, len(everything), leaves)
