"""The look-ahead tree drawn: its nodes depth first, the table of paths, the icicle."""

from __future__ import annotations

import pytest

from ui.draw import lookahead_tree


def _node(token_id: int, display: str, path: tuple, p: float, pp: float, children=(), finish=None) -> dict:
    token = {"id": token_id, "text": display, "display": display, "special": False}
    return {
        "token": token, "path_ids": list(path), "p_base": p / 2, "p_final": p, "path_probability": pp,
        "finish_reason": finish, "children": list(children),
    }  # fmt: skip


TREE = {
    "width": 2,
    "depth": 2,
    "node_count": 5,
    "children": [
        _node(1, "␣a", (1,), 0.6, 0.6, [_node(3, "b", (1, 3), 0.5, 0.3), _node(4, "c", (1, 4), 0.5, 0.3)]),
        _node(2, "␣d", (2,), 0.4, 0.4, finish="eos"),
    ],
}


def test_nodes_are_depth_first_with_their_path_text_and_ids():
    nodes = lookahead_tree.nodes(TREE)
    assert [n.path_ids for n in nodes] == [(1,), (1, 3), (1, 4), (2,)]
    assert [n.path_text for n in nodes] == ["␣a", "␣ab", "␣ac", "␣d"]
    assert [n.depth for n in nodes] == [1, 2, 2, 1]


def test_the_table_indents_by_depth_and_says_why_a_path_ends_its_numbers_in_one_format():
    rows = lookahead_tree.path_rows(TREE)
    assert rows[0] == ["␣a", "60.00%", "30.00%", "60.00%"]
    assert rows[1][0] == "· ␣ab" and rows[3][0] == "␣d (eos)"


def test_the_icicle_nests_each_path_under_its_parent_with_room_for_its_children():
    trace = lookahead_tree.figure(TREE).data[0]
    ids, parents, values = list(trace.ids), list(trace.parents), list(trace.values)
    assert ids == ["root", "1", "1/3", "1/4", "2"] and parents == ["", "root", "1", "1", "root"]
    assert trace.labels[1] == "␣a<br>60%" and trace.customdata[2][0] == "␣ab"
    for i, parent in enumerate(ids):
        children = [values[j] for j, p in enumerate(parents) if p == parent]
        assert sum(children) <= values[i]  # Plotly drops a "total" branch whose children outgrow it
    assert values[1] == pytest.approx(0.6) and values[2] == pytest.approx(0.3)


def test_under_edits_a_row_shows_the_unedited_p_final_beside_the_edited_one():
    edited = _node(1, "␣a", (1,), 0.6, 0.6) | {"p_base_unedited": 0.2, "p_final_unedited": 0.25}
    rows = lookahead_tree.path_rows({"width": 1, "depth": 1, "node_count": 1, "children": [edited]})
    assert rows == [["␣a", "60.00% (unedited 25.00%)", "30.00%", "60.00%"]]


def test_with_a_reference_a_row_shows_its_p_final_beside_the_main_one_and_the_unedited_one():
    node = _node(1, "␣a", (1,), 0.6, 0.6) | {"p_final_reference": 0.125}
    both = node | {"p_final_unedited": 0.25}
    rows = lookahead_tree.path_rows({"width": 2, "depth": 1, "node_count": 2, "children": [node, both]})
    assert [row[1] for row in rows] == ["60.00% (reference 12.50%)", "60.00% (unedited 25.00%) (reference 12.50%)"]
